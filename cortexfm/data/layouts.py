"""Which layout a path holds, and opening it: Sensorium 2023 (dynamic), Sensorium 2022
(static), cajal/fnn, NWB (one ``.nwb`` file) or experanto."""

from __future__ import annotations

from pathlib import Path

from cortexfm.data.errors import DataFormatError
from cortexfm.data.experanto import ExperantoSession, is_experanto_folder
from cortexfm.data.fnn import FnnSession, is_fnn_folder
from cortexfm.data.nwb import NwbSession, is_nwb_file
from cortexfm.data.session import DynamicSession, Session, StaticSession

#: What ``cortexfm validate`` calls each layout.
LAYOUT_NAMES = {
    "sensorium2023": "Sensorium 2023 tree",
    "sensorium2022": "Sensorium 2022 tree",
    "fnn": "cajal/fnn folder",
    "nwb": "NWB file",
    "experanto": "experanto folder",
}


def open_session(path: str | Path, *, clip_frames: int = 30) -> Session:
    """Open a session folder (or NWB file), recognising its layout."""
    path = Path(path)
    if is_nwb_file(path):
        return NwbSession(path)
    if not path.is_dir():
        raise DataFormatError(path, "session folder (or .nwb file) does not exist")
    if is_experanto_folder(path):
        return ExperantoSession(path)
    if is_fnn_folder(path):
        return FnnSession(path)
    if (path / "data" / "images").is_dir():
        return StaticSession(path, clip_frames=clip_frames)
    if (path / "data").is_dir() or (path / "meta").is_dir():
        return DynamicSession(path)
    raise DataFormatError(
        path,
        "not a session: expected data/ and meta/ folders (Sensorium layout), "
        "training_data/ (cajal/fnn layout), screen/ and responses/ (experanto) or a .nwb file",
    )


def is_session_folder(path: Path) -> bool:
    """True for a session: a Sensorium, cajal/fnn or experanto folder, or an NWB file."""
    return (
        ((path / "data").is_dir() and (path / "meta").is_dir())
        or is_fnn_folder(path)
        or is_experanto_folder(path)
        or is_nwb_file(path)
    )
