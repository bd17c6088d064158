"""Visual stimuli on a documented monitor geometry (degrees, Hz): natural movies, the paper's
out-of-distribution families, and gratings/sparse noise for tuning and receptive fields."""

from cortexfm.stimuli.geometry import Monitor, Stimulus, concatenate, to_uint8
from cortexfm.stimuli.natural import dead_leaves, film, load_images, natural_movie
from cortexfm.stimuli.parametric import (
    BLANK_SECONDS,
    OOD_FAMILIES,
    directional_pink_noise,
    drifting_gabor,
    drifting_grating,
    flashed_images,
    gaussian_dots,
    grey,
    ood_clip,
    random_dot_kinematogram,
    sparse_noise,
)
from cortexfm.stimuli.tuning import DIRECTIONS_16, selectivity

__all__ = [
    "BLANK_SECONDS",
    "DIRECTIONS_16",
    "Monitor",
    "OOD_FAMILIES",
    "Stimulus",
    "concatenate",
    "dead_leaves",
    "directional_pink_noise",
    "drifting_gabor",
    "drifting_grating",
    "film",
    "flashed_images",
    "gaussian_dots",
    "grey",
    "load_images",
    "natural_movie",
    "ood_clip",
    "random_dot_kinematogram",
    "selectivity",
    "sparse_noise",
    "to_uint8",
]
