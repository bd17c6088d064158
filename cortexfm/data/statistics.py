"""Per-session statistics and the exactly invertible normalisation built from them.

Statistics are read from ``meta/statistics/<key>/all/*.npy`` when the tree has them, else
computed from the session's *training* trials only and cached in the cache directory (never in
the data folder).

Normalisation (what the model sees):

- ``video``: ``(video - mean) / std`` with the scalar statistics of all training frames;
- ``responses``: ``responses / scale`` per neuron, ``scale = max(std, 0.01 * mean(std))``
  (no mean subtraction, so responses stay non-negative for a Poisson loss);
  with ``response_transform="shift"`` the per-neuron training minimum is subtracted first
  (for ΔF/F or z-scored traces, which have negative values; see :func:`check_response_sign`);
- ``behavior`` and ``pupil_center``: z-scored per channel.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from cortexfm.atomic import save_npz_atomic
from cortexfm.data import schema
from cortexfm.data.cache import session_cache_dir
from cortexfm.data.errors import DataFormatError
from cortexfm.data.npy import load_small
from cortexfm.data.session import MODALITIES, Session

#: Folder names of each modality under ``meta/statistics``.
_STAT_KEYS = {
    "video": ("videos", "images"),
    "responses": ("responses",),
    "behavior": ("behavior",),
    "pupil_center": ("pupil_center",),
}
_MEDIAN_FRAMES = 2_000  # frames kept for medians (bounded memory)


@dataclass
class Statistics:
    """``values[modality][stat]``: stat is one of mean, std, min, max, median."""

    values: dict[str, dict[str, np.ndarray]]
    source: str  # "meta" or "computed"

    def __getitem__(self, modality: str) -> dict[str, np.ndarray]:
        return self.values[modality]


def _read_meta_statistics(session: Session) -> Statistics | None:
    root = session.path / "meta" / "statistics"
    if not root.is_dir():
        return None
    values: dict[str, dict[str, np.ndarray]] = {}
    for modality, keys in _STAT_KEYS.items():
        folder = next((root / k / "all" for k in keys if (root / k / "all").is_dir()), None)
        if folder is None:
            return None
        values[modality] = {}
        for stat in schema.STATISTIC_NAMES:
            path = folder / f"{stat}.npy"
            if not path.exists():
                if stat in ("mean", "std"):
                    raise DataFormatError(path, "statistic is missing")
                continue
            values[modality][stat] = load_small(path).astype(np.float64)
    n = session.n_neurons
    for stat, v in values["responses"].items():
        if v.shape != (n,):
            raise DataFormatError(
                root / "responses", f"{stat}.npy has shape {v.shape}, expected ({n},)"
            )
    return Statistics(values, source="meta")


def compute_statistics(session: Session, progress: bool = True) -> Statistics:
    """Statistics of the training trials, streamed trial by trial (float64 sums)."""
    train = session.trials_in(schema.TRAIN_TIER)
    if len(train) == 0:
        raise DataFormatError(
            session.path / "meta/trials/tiers.npy", "no 'train' trials to compute statistics from"
        )
    lengths = session.trial_lengths[train]
    total = int(lengths.sum())
    step = max(1, total // _MEDIAN_FRAMES)
    acc: dict[str, dict] = {}
    for trial_id in tqdm(
        train, desc=f"statistics {session.session_id}", disable=not progress, leave=False
    ):
        for modality in MODALITIES:
            x = session.read(int(trial_id), modality).astype(np.float64)
            sub = x[::step].astype(np.float32)  # a copy: keeping views would pin whole trials
            if modality == "video":
                sub = sub[:, ::4, ::4].reshape(-1, 1)  # pixels subsampled for the median only
                x = x.reshape(-1, 1)
            a = acc.setdefault(
                modality, {"n": 0, "s": 0.0, "ss": 0.0, "min": np.inf, "max": -np.inf, "sub": []}
            )
            if x.shape[0] == 0:
                continue
            # response gaps (NaN inside a trial) are left out, neuron by neuron
            a["n"] = a["n"] + np.isfinite(x).sum(0)
            a["s"] = a["s"] + np.nansum(x, 0)
            a["ss"] = a["ss"] + np.nansum(x * x, 0)
            a["min"] = np.fmin(a["min"], np.nanmin(x, 0, initial=np.inf))
            a["max"] = np.fmax(a["max"], np.nanmax(x, 0, initial=-np.inf))
            a["sub"].append(sub)
    values: dict[str, dict[str, np.ndarray]] = {}
    for modality, a in acc.items():
        n = np.maximum(a["n"], 1)
        mean = a["s"] / n
        std = np.sqrt(np.maximum(a["ss"] / n - mean * mean, 0.0))
        sub = np.concatenate(a["sub"], axis=0)
        with np.errstate(all="ignore"):  # a neuron with no finite value gets NaN, not a warning
            median = np.nanmedian(sub, axis=0)
        v = {"mean": mean, "std": std, "min": a["min"], "max": a["max"], "median": median}
        if modality == "video":
            v = {k: np.asarray(x).reshape(()) for k, x in v.items()}
        values[modality] = v
    return Statistics(values, source="computed")


def _cache_file(session: Session) -> Path:
    return session_cache_dir(session.path) / "statistics.npz"


def session_statistics(
    session: Session, *, use_cache: bool = True, progress: bool = True
) -> Statistics:
    """The session's statistics: from the tree, else from the cache, else computed and cached."""
    given = _read_meta_statistics(session)
    if given is not None:
        return given
    path = _cache_file(session)
    if use_cache and path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                values: dict[str, dict[str, np.ndarray]] = {}
                for key in z.files:
                    modality, stat = key.split("/")
                    values.setdefault(modality, {})[stat] = z[key]
            if set(values) == set(MODALITIES):
                return Statistics(values, source="computed")
        except (OSError, ValueError):
            pass  # a broken cache file is recomputed
    stats = compute_statistics(session, progress=progress)
    if use_cache:
        _save_cache(path, {f"{m}/{k}": v for m, d in stats.values.items() for k, v in d.items()})
    return stats


def _save_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with contextlib.suppress(OSError):  # an unwritable cache only costs recomputation
        save_npz_atomic(path, arrays)


#: How responses are mapped to model units (see the module docstring).
RESPONSE_TRANSFORMS = ("scale", "shift")


def response_minimum(stats: Statistics) -> float:
    """The smallest training response over all neurons (negative for ΔF/F or z-scores)."""
    values = stats["responses"].get("min")
    return float(np.nanmin(values)) if values is not None and np.size(values) else 0.0


def has_negative_responses(stats: Statistics) -> bool:
    """True when responses are clearly not counts: below zero by more than float noise."""
    std = np.asarray(stats["responses"]["std"], dtype=np.float64)
    tolerance = 1e-3 * float(np.nanmean(std)) if std.size else 0.0
    return response_minimum(stats) < -tolerance


def check_response_sign(
    session: Session, stats: Statistics, loss: str, response_transform: str = "scale"
) -> None:
    """Refuse a count loss on signed traces with a message that gives the user the choice.

    A Poisson loss on negative targets is undefined (NaN gradients, or a silently wrong fit).
    """
    if response_transform not in RESPONSE_TRANSFORMS:
        raise ValueError(
            f"response_transform must be one of {RESPONSE_TRANSFORMS}, got {response_transform!r}"
        )
    if loss != "poisson" or response_transform == "shift" or not has_negative_responses(stats):
        return
    minimum = response_minimum(stats)
    raise DataFormatError(
        session.path / "data" / "responses",
        f"responses of session {session.session_id!r} go down to {minimum:.3g}: they look "
        "like ΔF/F or z-scored traces, not deconvolved activity, and a Poisson loss needs "
        "non-negative targets. Choose one: train with a loss for real-valued responses "
        "(--loss gaussian, i.e. `loss: gaussian` in the config), or shift each neuron by its "
        "training minimum (--response-transform shift). See docs/data.md, 'Responses that are "
        "not counts'.",
    )


def to_model_units(x, shift, scale):
    """Raw -> the model's units: ``(x - shift) / scale``. The one definition of normalisation;
    ``x``, ``shift`` and ``scale`` may be numpy arrays or torch tensors (broadcast on the last
    axis)."""
    return (x - shift) / scale


def to_raw_units(x, shift, scale):
    """The model's units -> raw: the inverse of :func:`to_model_units`."""
    return x * scale + shift


class Normalizer:
    """Maps raw arrays to the model's units and back; ``inverse(transform(x)) == x``."""

    def __init__(self, stats: Statistics, response_transform: str = "scale") -> None:
        if response_transform not in RESPONSE_TRANSFORMS:
            raise ValueError(
                f"response_transform must be one of {RESPONSE_TRANSFORMS}, "
                f"got {response_transform!r}"
            )
        v = stats.values
        self.response_transform = response_transform
        self.video_mean = float(v["video"]["mean"])
        self.video_std = float(v["video"]["std"]) or 1.0
        std = np.asarray(v["responses"]["std"], dtype=np.float64)
        floor = 0.01 * float(np.nanmean(std)) if std.size else 1.0
        self.response_scale = np.where(std > floor, std, floor if floor > 0 else 1.0)
        self.response_shift = (
            np.minimum(np.asarray(v["responses"]["min"], dtype=np.float64), 0.0)
            if response_transform == "shift"
            else np.zeros_like(self.response_scale)
        )
        self.behavior_mean = np.asarray(v["behavior"]["mean"], dtype=np.float64)
        self.behavior_std = _safe_std(v["behavior"]["std"])
        self.pupil_mean = np.asarray(v["pupil_center"]["mean"], dtype=np.float64)
        self.pupil_std = _safe_std(v["pupil_center"]["std"])

    #: The fields that define a normaliser (what a model checkpoint stores per session).
    PARAMETERS = (
        "video_mean",
        "video_std",
        "response_scale",
        "response_shift",
        "behavior_mean",
        "behavior_std",
        "pupil_mean",
        "pupil_std",
    )

    @classmethod
    def from_parameters(cls, **values) -> Normalizer:
        """A normaliser from its stored parameters (see ``PARAMETERS``), e.g. a checkpoint's."""
        missing = set(cls.PARAMETERS) - set(values)
        if missing:
            raise ValueError(f"missing normaliser parameters {sorted(missing)}")
        normalizer = cls.__new__(cls)
        normalizer.response_transform = "stored"
        normalizer.video_mean = float(values["video_mean"])
        normalizer.video_std = float(values["video_std"])
        for name in cls.PARAMETERS[2:]:
            setattr(normalizer, name, np.asarray(values[name], dtype=np.float64))
        return normalizer

    def _params(self, modality: str) -> tuple:
        return {
            "video": (self.video_mean, self.video_std),
            "responses": (self.response_shift, self.response_scale),
            "behavior": (self.behavior_mean, self.behavior_std),
            "pupil_center": (self.pupil_mean, self.pupil_std),
        }[modality]

    def transform(self, modality: str, x: np.ndarray) -> np.ndarray:
        """Raw -> model units (float32). ``x`` is time first; the last axis matches the stats."""
        shift, scale = self._params(modality)
        return to_model_units(x, shift, scale).astype(np.float32)

    def inverse(self, modality: str, x: np.ndarray) -> np.ndarray:
        """Model units -> raw units (float32)."""
        shift, scale = self._params(modality)
        return to_raw_units(x.astype(np.float64), shift, scale).astype(np.float32)

    def transform_all(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: self.transform(k, v) if k in MODALITIES else v for k, v in arrays.items()}


def _safe_std(std: np.ndarray) -> np.ndarray:
    std = np.asarray(std, dtype=np.float64)
    return np.where(std > 1e-8, std, 1.0)
