"""In-silico experiments on a digital twin: tuning, receptive fields, most exciting inputs."""

from cortexfm.insilico.experiments import (
    direction_tuning,
    fit_von_mises,
    frequency_tuning,
    mean_responses,
    most_exciting_inputs,
    receptive_fields,
)

__all__ = [
    "direction_tuning",
    "fit_von_mises",
    "frequency_tuning",
    "mean_responses",
    "most_exciting_inputs",
    "receptive_fields",
]
