"""The one error type the data layer raises for bad input."""

from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """A data tree (or one file in it) does not follow the expected format.

    The message always names the file (or folder) and the field that is wrong, so that a user
    can fix the tree without reading a traceback.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
