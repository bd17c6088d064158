"""Which layout a folder holds, and opening it: Sensorium 2023 (dynamic), Sensorium 2022
(static) or cajal/fnn."""

from __future__ import annotations

from pathlib import Path

from cortexfm.data.errors import DataFormatError
from cortexfm.data.fnn import FnnSession, is_fnn_folder
from cortexfm.data.session import DynamicSession, Session, StaticSession


def open_session(path: str | Path, *, clip_frames: int = 30) -> Session:
    """Open a session folder, recognising its layout."""
    path = Path(path)
    if not path.is_dir():
        raise DataFormatError(path, "session folder does not exist")
    if is_fnn_folder(path):
        return FnnSession(path)
    if (path / "data" / "images").is_dir():
        return StaticSession(path, clip_frames=clip_frames)
    if (path / "data").is_dir() or (path / "meta").is_dir():
        return DynamicSession(path)
    raise DataFormatError(
        path,
        "not a session: expected data/ and meta/ folders (Sensorium layout) "
        "or training_data/ (cajal/fnn layout)",
    )


def is_session_folder(path: Path) -> bool:
    """True for a Sensorium session folder or a cajal/fnn data folder."""
    return ((path / "data").is_dir() and (path / "meta").is_dir()) or is_fnn_folder(path)
