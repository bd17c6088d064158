"""Predictions for users: any movie through a trained twin, and the Sensorium 2023 submission."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cortexfm.predict.run import predict_file, predict_submission
from cortexfm.predict.stream import PredictionResult, predict_movie

__all__ = [
    "PredictionResult",
    "predict_file",
    "predict_movie",
    "predict_submission",
    "sensorium2023_submission",
]


def __getattr__(name: str) -> Any:
    # the submission writer loads on first use: it imports pyarrow, which a movie's
    # prediction (cortexfm predict's start-up) does not need
    if name != "sensorium2023_submission":
        raise AttributeError(f"module 'cortexfm.predict' has no attribute {name!r}")
    from cortexfm.predict.submission import sensorium2023_submission

    return sensorium2023_submission


if TYPE_CHECKING:
    from cortexfm.predict.submission import sensorium2023_submission
