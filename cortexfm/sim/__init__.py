"""Ground-truth simulator of mouse visual cortex: the built-in data set and the reference
against which model claims are checked."""

from cortexfm.sim.cohort import (
    SimulationConfig,
    load_ground_truth,
    rebuild_simulator,
    simulate_cohort,
    simulate_mouse,
)
from cortexfm.sim.population import Population, sample_population
from cortexfm.sim.response import NoiseConfig, ResponseModel

__all__ = [
    "NoiseConfig",
    "Population",
    "ResponseModel",
    "SimulationConfig",
    "load_ground_truth",
    "rebuild_simulator",
    "sample_population",
    "simulate_cohort",
    "simulate_mouse",
]
