"""Reading recordings in place: Sensorium 2022/2023 trees, sessions, cohorts, loaders.

The names below load their module on first use (PEP 562), so a command that needs one small
part of the data layer (``cortexfm predict`` reads a movie, not a cohort) does not pay for
importing all of it (pandas, the experanto and NWB readers).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> the module that defines it
_EXPORTS = {
    "Cohort": "cohort",
    "open_cohort": "cohort",
    "DataFormatError": "errors",
    "FnnSession": "fnn",
    "open_session": "layouts",
    "TrainingWindows": "loader",
    "WindowConfig": "loader",
    "iterate_trials": "loader",
    "make_loader": "loader",
    "repeat_groups": "loader",
    "DynamicSession": "session",
    "Session": "session",
    "StaticSession": "session",
    "Trial": "session",
    "Normalizer": "statistics",
    "Statistics": "statistics",
    "check_response_sign": "statistics",
    "has_negative_responses": "statistics",
    "session_statistics": "statistics",
    "validate_tree": "validate",
    "SessionWriter": "writer",
    "copy_session": "writer",
}

__all__ = [
    "Cohort",
    "DataFormatError",
    "DynamicSession",
    "FnnSession",
    "Normalizer",
    "Session",
    "SessionWriter",
    "StaticSession",
    "Statistics",
    "TrainingWindows",
    "Trial",
    "WindowConfig",
    "check_response_sign",
    "copy_session",
    "has_negative_responses",
    "iterate_trials",
    "make_loader",
    "open_cohort",
    "open_session",
    "repeat_groups",
    "session_statistics",
    "validate_tree",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cortexfm.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"cortexfm.data.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from cortexfm.data.cohort import Cohort, open_cohort
    from cortexfm.data.errors import DataFormatError
    from cortexfm.data.fnn import FnnSession
    from cortexfm.data.layouts import open_session
    from cortexfm.data.loader import (
        TrainingWindows,
        WindowConfig,
        iterate_trials,
        make_loader,
        repeat_groups,
    )
    from cortexfm.data.session import DynamicSession, Session, StaticSession, Trial
    from cortexfm.data.statistics import (
        Normalizer,
        Statistics,
        check_response_sign,
        has_negative_responses,
        session_statistics,
    )
    from cortexfm.data.validate import validate_tree
    from cortexfm.data.writer import SessionWriter, copy_session
