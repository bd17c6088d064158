"""Reading recordings in place: Sensorium 2022/2023 trees, sessions, cohorts, loaders."""

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
    "Trial",
    "TrainingWindows",
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
