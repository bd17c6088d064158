"""Where cortexfm keeps derived data (statistics, clip ids): never inside a data folder.

The cache directory is ``$CORTEXFM_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/cortexfm``,
else ``~/.cache/cortexfm``. Each session gets a sub-folder keyed by a fingerprint of its
absolute path and metadata (of the file itself for one-file sessions such as NWB), so a changed
tree never reuses stale values.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cortexfm.atomic import write_text_atomic


def cache_root() -> Path:
    if os.environ.get("CORTEXFM_CACHE_DIR"):
        return Path(os.environ["CORTEXFM_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cortexfm"


#: Files whose size and time key a session's cache (Sensorium trees, experanto folders).
FINGERPRINT_FILES = (
    "meta/trials/tiers.npy",
    "meta/neurons/unit_ids.npy",
    "meta/session.json",
    "screen/timestamps.npy",
    "responses/meta.yml",
    "responses/data.mem",
    "responses/data.npy",
)


def session_cache_dir(session_path: Path) -> Path:
    """A cache folder for one session tree (created on demand by writers)."""
    path = session_path.resolve()
    h = hashlib.sha1(str(path).encode())
    if path.is_file():  # a one-file session (NWB): a changed file gets a new folder
        st = path.stat()
        h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    for name in FINGERPRINT_FILES:
        f = path / name
        if f.exists():
            st = f.stat()
            h.update(f"{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return cache_root() / f"{path.name}-{h.hexdigest()[:12]}"


def write_cache_text(path: Path, text: str) -> bool:
    """Write a cache file atomically; False (nothing written) when the cache is unwritable."""
    try:
        write_text_atomic(path, text)
    except OSError:
        return False
    return True
