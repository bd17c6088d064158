"""Atomic writes, the one place that owns them: a file appears complete under its name or not
at all.

Everything is written to a temporary file in the destination's folder and renamed into place
(``os.replace`` is atomic on one file system); an error or a crash removes (or leaves behind,
dot-prefixed) only the temporary file. Files get the usual ``0o644`` permissions.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` when the block succeeds.

    >>> with atomic_path("out.parquet") as tmp:  # doctest: +SKIP
    ...     table.to_parquet(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes, *, durable: bool = False) -> Path:
    """Write ``data``; ``durable`` also flushes it to disk before the rename (checkpoints)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def save_npy_atomic(path: str | Path, array: np.ndarray) -> Path:
    """``np.save`` without pickles, atomically (the name is kept as given: no ``.npy`` added)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.asarray(array), allow_pickle=False)
    return Path(path)


def save_npz_atomic(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    return Path(path)
