"""Predictions for users: any movie through a trained twin, and the Sensorium 2023 submission."""

from cortexfm.predict.run import predict_file, predict_submission
from cortexfm.predict.stream import PredictionResult, predict_movie
from cortexfm.predict.submission import sensorium2023_submission

__all__ = [
    "PredictionResult",
    "predict_file",
    "predict_movie",
    "predict_submission",
    "sensorium2023_submission",
]
