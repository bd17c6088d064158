"""A cohort: several sessions (mice) that one foundation model is trained on."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from cortexfm.data.errors import DataFormatError
from cortexfm.data.layouts import is_session_folder, open_session
from cortexfm.data.session import Session


class Cohort(Sequence[Session]):
    """An ordered collection of sessions with unique session ids."""

    def __init__(self, sessions: Sequence[Session]) -> None:
        self.sessions = list(sessions)
        if not self.sessions:
            raise ValueError("a cohort needs at least one session")
        seen: dict[str, Path] = {}
        for s in self.sessions:
            if s.session_id in seen:
                raise DataFormatError(
                    s.path, f"session id {s.session_id!r} already used by {seen[s.session_id]}"
                )
            seen[s.session_id] = s.path
        self._by_id = {s.session_id: s for s in self.sessions}

    def __getitem__(self, index):  # type: ignore[override]
        return self.sessions[index]

    def __len__(self) -> int:
        return len(self.sessions)

    def __iter__(self) -> Iterator[Session]:
        return iter(self.sessions)

    @property
    def session_ids(self) -> list[str]:
        return [s.session_id for s in self.sessions]

    def session(self, session_id: str) -> Session:
        """The session with this id; a clear error for an unknown id."""
        try:
            return self._by_id[session_id]
        except KeyError:
            raise KeyError(
                f"unknown session id {session_id!r}; this cohort has {self.session_ids}"
            ) from None

    def subset(self, session_ids: Sequence[str]) -> Cohort:
        return Cohort([self.session(i) for i in session_ids])

    def __repr__(self) -> str:
        return f"Cohort({len(self)} sessions: {self.session_ids})"


def open_cohort(source: str | Path | Sequence[str | Path], *, clip_frames: int = 30) -> Cohort:
    """Open a cohort from a folder of sessions (folders or NWB files), one session, or a list.

    Opening reads only metadata and ``.npy`` headers, never response arrays.
    """
    if isinstance(source, (str, Path)):
        root = Path(source)
        if not root.exists():
            raise DataFormatError(root, "cohort folder does not exist")
        if is_session_folder(root):
            paths = [root]
        else:
            paths = sorted(p for p in root.iterdir() if is_session_folder(p))
            if not paths:
                raise DataFormatError(
                    root, "no session folders (with data/ and meta/) found inside"
                )
    else:
        paths = [Path(p) for p in source]
    return Cohort([open_session(p, clip_frames=clip_frames) for p in paths])
