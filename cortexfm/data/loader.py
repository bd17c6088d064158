"""Feeding a cohort to a model: random training windows and whole-trial evaluation.

Training: every batch holds ``batch_size`` random windows of ``window`` frames from the
training trials of *one* session (each session has its own readout). The session is drawn in
proportion to its training frames (``sampling="proportional"``) or uniformly. Batch ``k`` of
epoch ``e`` is a pure function of ``(seed, e, k)``, which makes sampling deterministic whatever
the number of workers, and lets distributed ranks take disjoint shares of one global stream
(rank ``r`` of ``W`` takes batches ``r, r + W, r + 2W, ...``).

Evaluation: :func:`iterate_trials` yields whole trials of chosen tiers, each with its clip id
and repeat index, and :func:`repeat_groups` groups the repeats of each clip (noise ceilings).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from cortexfm.data import schema
from cortexfm.data.session import MODALITIES, Session, Trial
from cortexfm.data.statistics import Normalizer, session_statistics

if TYPE_CHECKING:  # the type only: `cortexfm predict` loads no cohort readers
    from cortexfm.data.cohort import Cohort


@dataclass(frozen=True)
class WindowConfig:
    """How training windows are drawn."""

    window: int = 64  # frames per window
    batch_size: int = 8  # windows per batch (all from one session)
    batches_per_epoch: int = 100  # global batches per epoch, over all ranks
    sampling: Literal["proportional", "uniform"] = "proportional"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.window < 1 or self.batch_size < 1 or self.batches_per_epoch < 1:
            raise ValueError(f"window, batch_size and batches_per_epoch must be >= 1: {self}")
        if self.sampling not in ("proportional", "uniform"):
            raise ValueError(f"sampling must be 'proportional' or 'uniform', got {self.sampling!r}")


class TrainingWindows(IterableDataset):
    """Random windows of training trials across the sessions of a cohort.

    Yields dicts: ``session_id`` (str), ``video`` ``[batch, time, height, width]``,
    ``responses`` ``[batch, time, neurons]``, ``behavior`` ``[batch, time, 2]``,
    ``pupil_center`` ``[batch, time, 2]`` (float32 tensors, normalised unless
    ``normalize=False``; ``normalizers`` maps session id to a :class:`Normalizer` when the
    defaults are not wanted), ``trial_id`` and ``start`` ``[batch]``. ``allowed_trials`` (session
    id -> trial ids) restricts a session's windows to those trials, e.g. its first minutes.
    """

    def __init__(
        self,
        cohort: Cohort,
        config: WindowConfig,
        *,
        normalize: bool = True,
        rank: int = 0,
        world_size: int = 1,
        tiers: Sequence[str] = (schema.TRAIN_TIER,),
        normalizers: dict[str, Normalizer] | None = None,
        allowed_trials: dict[str, np.ndarray] | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of size {world_size}")
        self.cohort, self.config = cohort, config
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        if normalize and normalizers is None:
            normalizers = {s.session_id: Normalizer(session_statistics(s)) for s in cohort}
        self.normalizers = normalizers if normalize else None
        self._trials: list[np.ndarray] = []
        self._starts: list[np.ndarray] = []  # number of window start positions per trial
        for s in cohort:
            ids = s.trials_in(*tiers)
            if allowed_trials is not None and s.session_id in allowed_trials:
                ids = np.intersect1d(ids, np.asarray(allowed_trials[s.session_id]))
            n_starts = s.trial_lengths[ids] - config.window + 1
            keep = n_starts > 0
            self._trials.append(ids[keep])
            self._starts.append(n_starts[keep])
        frames = np.array([float(s.sum()) for s in self._starts])
        if frames.sum() == 0:
            raise ValueError(
                f"no {list(tiers)} trial in the cohort is at least {config.window} frames long"
            )
        p = frames if config.sampling == "proportional" else (frames > 0).astype(float)
        self.session_p = p / p.sum()

    def trials(self, session_index: int) -> np.ndarray:
        """Ids of the trials this dataset draws windows from in session ``session_index``."""
        return self._trials[session_index]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.config.batches_per_epoch // self.world_size

    def plan(self, k: int) -> tuple[int, np.ndarray, np.ndarray]:
        """Session index, trial ids and window starts of global batch ``k`` of this epoch."""
        rng = np.random.default_rng([self.config.seed, self.epoch, k])
        si = int(rng.choice(len(self.cohort), p=self.session_p))
        starts = self._starts[si]
        pick = rng.choice(len(starts), size=self.config.batch_size, p=starts / starts.sum())
        offsets = (rng.random(self.config.batch_size) * starts[pick]).astype(np.int64)
        return si, self._trials[si][pick], offsets

    def batch(self, k: int) -> dict:
        si, trial_ids, offsets = self.plan(k)
        session = self.cohort[si]
        windows = [
            session.window(int(t), int(o), self.config.window)
            for t, o in zip(trial_ids, offsets, strict=True)
        ]
        out: dict = {"session_id": session.session_id}
        for m in MODALITIES:
            x = np.stack([w[m] for w in windows])
            if self.normalizers is not None:
                x = self.normalizers[session.session_id].transform(m, x)
            out[m] = torch.from_numpy(x)
        out["trial_id"] = torch.from_numpy(trial_ids.astype(np.int64))
        out["start"] = torch.from_numpy(offsets)
        return out

    def batch_indices(self) -> range:
        """Global batch indices that this rank yields this epoch."""
        n = len(self) * self.world_size
        return range(self.rank, n, self.world_size)

    def __iter__(self) -> Iterator[dict]:
        indices = self.batch_indices()
        info = get_worker_info()
        if info is not None:
            indices = indices[info.id :: info.num_workers]
        for k in indices:
            yield self.batch(k)


def make_loader(dataset: TrainingWindows, num_workers: int = 0) -> DataLoader:
    """A DataLoader over prepared batches; with workers, order equals the 0-worker order."""
    return DataLoader(
        dataset,
        batch_size=None,
        num_workers=num_workers,
        persistent_workers=False,
        prefetch_factor=2 if num_workers else None,
    )


def iterate_trials(
    session: Session,
    tiers: str | Sequence[str],
    *,
    only_ground_truth: bool = True,
) -> Iterator[Trial]:
    """Whole trials of ``tiers`` in trial order, every repeat kept with its clip id.

    Trials whose responses were withheld (zero-filled hidden tests) are skipped unless
    ``only_ground_truth=False``; check ``trial.has_ground_truth`` then.
    """
    tiers = (tiers,) if isinstance(tiers, str) else tiers
    for trial_id in session.trials_in(*tiers):
        if only_ground_truth and not session.has_ground_truth(int(trial_id)):
            continue
        yield session.trial(int(trial_id))


def repeat_groups(session: Session, tiers: str | Sequence[str]) -> dict[str, np.ndarray]:
    """Clip id -> trial ids showing that clip, for trials of ``tiers`` with ground truth."""
    tiers = (tiers,) if isinstance(tiers, str) else tiers
    groups: dict[str, list[int]] = {}
    for trial_id in session.trials_in(*tiers):
        if session.has_ground_truth(int(trial_id)):
            groups.setdefault(str(session.video_ids[trial_id]), []).append(int(trial_id))
    return {k: np.array(v) for k, v in groups.items()}
