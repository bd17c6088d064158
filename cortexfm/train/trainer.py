"""Training the foundation model on a cohort (one process, or many with torchrun).

One optimizer step uses ``batches_per_step`` global batches (each batch: windows of one
session). With ``W`` distributed ranks, rank ``r`` computes batches ``k ≡ r (mod W)`` of each
step and the gradients are summed across ranks, so the step equals the single-process step
with the same global batch. Per-session parameters get a gradient only from the ranks that saw
their session; parameters no rank used keep ``grad=None`` and are not touched by the
optimizer, exactly as in one process.

Every ``steps_per_epoch`` steps: validation correlation on the ``validation`` trials, a JSONL
log line, ``last.safetensors`` (resumable: weights, optimizer, EMA, RNG, counters) and, on
improvement, ``best.safetensors``. ``resume=True`` continues from ``last.safetensors``; on CPU
the loss trajectory equals an uninterrupted run's.

The pieces live next door: the optimizer, schedule, clipping and EMA in
:mod:`cortexfm.train.optim`, which trials validate in :mod:`cortexfm.train.validation`, the
readout position search in :mod:`cortexfm.train.positions`, checkpoints in
:mod:`cortexfm.train.checkpoint`, the log in :mod:`cortexfm.train.log`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from cortexfm.data.loader import TrainingWindows, WindowConfig
from cortexfm.data.session import Session
from cortexfm.data.statistics import Normalizer, check_response_sign, session_statistics
from cortexfm.metrics import correlation
from cortexfm.model.loss import response_loss, smoothness_penalty
from cortexfm.model.network import FoundationModel, SessionInfo
from cortexfm.train import distributed
from cortexfm.train.checkpoint import (
    load_checkpoint,
    optimizer_tensors,
    restore_optimizer,
    save_checkpoint,
)
from cortexfm.train.config import RunConfig
from cortexfm.train.log import TrainingLog, progress_line
from cortexfm.train.optim import (
    adaptive_gradient_clip,
    learning_rate_factor,
    make_ema,
    make_optimizer,
    make_scheduler,
)
from cortexfm.train.positions import search_positions
from cortexfm.train.validation import TRAIN_TIER, plan_validation

if TYPE_CHECKING:  # the type only: `cortexfm predict` loads no cohort readers
    from cortexfm.data.cohort import Cohort

__all__ = [
    "LoopState",
    "Trainer",
    "TrainResult",
    "build_model",
    "learning_rate_factor",
    "make_optimizer",
    "train",
    "validation_correlation",
]


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    best_score: float
    best_step: int
    losses: list[float]
    stopped_early: bool

    def describe(self) -> str:
        """One line: steps, and what the best checkpoint is (or why there is no score)."""
        if math.isnan(self.best_score) or self.best_step < 0:
            return (
                f"{self.steps} steps, no validation score (train.validation=none, or no "
                f"validation trials): best.safetensors holds the weights of step "
                f"{self.steps}; checkpoints in {self.out_dir}"
            )
        return (
            f"{self.steps} steps; best validation correlation {self.best_score:.4f} at step "
            f"{self.best_step}; checkpoints in {self.out_dir}"
        )


@dataclass
class LoopState:
    """The training loop's counters (saved in ``last.safetensors`` to resume)."""

    step: int = 0
    epoch: int = 0
    best_score: float = -math.inf
    best_step: int = -1
    bad_epochs: int = 0  # epochs since the validation score last improved
    losses: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    def record_validation(self, scores: dict[str, float]) -> bool:
        """Update the best score with this epoch's ``scores``; True if it improved. Without
        scores there is nothing to select on, and the latest weights are the result."""
        if not scores:
            self.best_score, self.best_step = math.nan, self.step
            return False
        score = float(np.mean(list(scores.values())))
        if score > self.best_score:
            self.best_score, self.best_step, self.bad_epochs = score, self.step, 0
            return True
        self.bad_epochs += 1
        return False


#: run settings a resumed run may change: they bound how long it runs or what it logs, not
#: what a training step does
RESUMABLE_CHANGES = ("train.max_minutes", "train.tensorboard")


def _changed_fields(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """Dotted names of the config fields that differ between two ``to_dict`` configs, less
    :data:`RESUMABLE_CHANGES`."""
    changed = []
    for key in sorted(set(saved) | set(current)):
        name = f"{prefix}{key}"
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += _changed_fields(a, b, f"{name}.")
        elif a != b and name not in RESUMABLE_CHANGES:
            changed.append(name)
    return changed


def session_info(session: Session, response_transform: str, loss: str) -> SessionInfo:
    stats = session_statistics(session)
    check_response_sign(session, stats, loss, response_transform)
    return SessionInfo(
        session.session_id,
        np.asarray(session.unit_ids),
        np.asarray(session.coordinates),
        Normalizer(stats, response_transform=response_transform),
    )


def build_model(cohort: Cohort, config: RunConfig) -> FoundationModel:
    torch.manual_seed(config.train.seed)
    infos = [session_info(s, config.train.response_transform, config.train.loss) for s in cohort]
    model = FoundationModel(config.model, infos)
    init_biases(model, cohort, infos)
    return model


def init_biases(model: FoundationModel, cohort: Cohort, infos: list[SessionInfo]) -> None:
    """Start each neuron at its mean training response (inverse of the output nonlinearity)."""
    for session, info in zip(cohort, infos, strict=True):
        stats = session_statistics(session)
        mean = info.normalizer.transform("responses", np.asarray(stats["responses"]["mean"])[None])[
            0
        ]
        mean = torch.as_tensor(mean, dtype=torch.float32)
        kind = model.config.readout.output
        if kind == "softplus":
            mean = mean.clamp(min=1e-3)
            bias = mean + torch.log(-torch.expm1(-mean))
        elif kind == "exp":
            bias = torch.log(mean.clamp(min=1e-3))
        else:
            bias = mean
        with torch.no_grad():
            model.session(session.session_id).readout.bias.copy_(bias)


@torch.no_grad()
def validation_correlation(
    model: FoundationModel,
    cohort: Cohort,
    config: RunConfig,
    device: torch.device,
    trials: dict[str, np.ndarray],
) -> dict[str, float]:
    """Mean per-neuron correlation on each session's validation ``trials`` (session id ->
    trial ids, from :func:`plan_validation`), burn-in skipped."""
    model.eval()
    scores: dict[str, float] = {}
    burn_in = config.train.burn_in
    for session in cohort:
        ids = trials.get(session.session_id, np.array([], dtype=np.int64))
        if len(ids) == 0:
            continue
        norm = model.session(session.session_id).normalization
        predictions, targets = [], []
        for trial_id in ids:
            trial = session.trial(int(trial_id))
            if trial.n_frames <= burn_in:
                continue
            inputs = [
                torch.as_tensor(x, device=device)[None]
                for x in (trial.video, trial.behavior, trial.pupil_center)
            ]
            out, _ = model(session.session_id, *norm.inputs(*inputs), sample=False)
            predictions.append(out[0, burn_in:].float().cpu().numpy())
            recorded = torch.as_tensor(trial.responses[burn_in:], device=device)
            targets.append(norm.targets(recorded).cpu().numpy())
        if predictions:
            r = correlation(np.concatenate(predictions), np.concatenate(targets))
            scores[session.session_id] = float(np.nanmean(r))
    model.train()
    return scores


class Trainer:
    """Trains a model on a cohort; :meth:`fit` is the loop (see the module docstring)."""

    def __init__(
        self,
        cohort: Cohort,
        config: RunConfig,
        out_dir: str | Path,
        *,
        progress: bool = True,
        allowed_trials: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.cohort, self.config = cohort, config
        self.allowed_trials = allowed_trials
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.dist = distributed.setup()
        self.device = self.dist.device
        t = config.train
        if t.batches_per_step % self.dist.world_size:
            raise ValueError(
                f"train.batches_per_step={t.batches_per_step} must be a multiple of the "
                f"{self.dist.world_size} distributed processes"
            )
        self.model: FoundationModel | None = None
        self.windows: TrainingWindows | None = None
        self.averaged: torch.optim.swa_utils.AveragedModel | None = None  # the EMA
        self.masked_responses = 0  # NaN response values (gaps) left out of the loss
        self.last_lr = math.nan

    # -- set-up -------------------------------------------------------------------------------

    def _prepare(self, model: FoundationModel | None) -> None:
        t = self.config.train
        self.model = (model if model is not None else build_model(self.cohort, self.config)).to(
            self.device
        )
        missing = [s for s in self.cohort.session_ids if s not in self.model.session_ids]
        if missing:
            raise KeyError(f"sessions {missing} are not in the model; add them first")
        if t.freeze_core:
            for p in self.model.shared_parameters():
                p.requires_grad_(False)
        self.validation = plan_validation(
            self.cohort,
            t.validation,
            fraction=t.validation_fraction,
            seed=t.seed,
            limit=t.validation_trials,
            allowed_trials=self.allowed_trials,
        )
        self.windows = TrainingWindows(
            self.cohort,
            WindowConfig(
                window=t.window,
                batch_size=t.batch_size,
                batches_per_epoch=t.steps_per_epoch * t.batches_per_step,
                sampling=t.sampling,
                seed=t.seed,
            ),
            normalizers={
                s.session_id: self.model.session(s.session_id).normalization.to_normalizer()
                for s in self.cohort
            },
            allowed_trials={
                s.session_id: self.validation.training_trials(
                    s.session_id,
                    s.trials_in(TRAIN_TIER),
                    None if self.allowed_trials is None else self.allowed_trials.get(s.session_id),
                )
                for s in self.cohort
            },
        )
        self.optimizer = make_optimizer(self.model, self.config)
        self.scheduler = make_scheduler(self.optimizer, self.config)  # resuming: re-made there
        self.averaged = make_ema(self.model, t.ema_decay)

    @property
    def ema(self) -> dict[str, torch.Tensor]:
        """The moving average's weights by state-dict name (empty without EMA)."""
        return {} if self.averaged is None else self.averaged.module.state_dict()

    @property
    def selected_model(self) -> FoundationModel:
        """The weights that are validated and saved as best: the EMA's, else the model's."""
        assert self.model is not None
        return self.model if self.averaged is None else self.averaged.module

    # -- one step -----------------------------------------------------------------------------

    def _step(self, epoch: int, step_in_epoch: int, global_step: int) -> float:
        t = self.config.train
        assert self.model is not None and self.windows is not None
        self.windows.set_epoch(epoch)
        self.optimizer.zero_grad(set_to_none=True)
        first = step_in_epoch * t.batches_per_step
        total = torch.zeros((), device=self.device)
        for k in range(first + self.dist.rank, first + t.batches_per_step, self.dist.world_size):
            batch = self.windows.batch(k)
            self.masked_responses += int((~torch.isfinite(batch["responses"])).sum())
            args = [batch[m].to(self.device) for m in ("video", "behavior", "pupil_center")]
            with torch.autocast(
                device_type=self.device.type,
                dtype=torch.bfloat16,
                enabled=t.amp and self.device.type == "cuda",
            ):
                prediction, _ = self.model(batch["session_id"], *args)
            loss = (
                response_loss(
                    prediction.float(),
                    batch["responses"].to(self.device),
                    t.loss,
                    t.burn_in,
                    t.window_gain,
                )
                / t.batches_per_step
            )
            if t.readout_l1 > 0:
                barcodes = self.model.session(batch["session_id"]).readout.barcodes()
                loss = loss + t.readout_l1 * barcodes.abs().sum(1).mean() / t.batches_per_step
            loss.backward()
            total += loss.detach()
        if t.first_layer_smoothness > 0:  # once per step; each rank's share sums to one
            kernels = self.model.core.layers[0].spatial.weight
            prior = t.first_layer_smoothness * smoothness_penalty(kernels) / self.dist.world_size
            prior.backward()
            total += prior.detach()
        params = [p for p in self.model.parameters() if p.requires_grad]
        distributed.sum_gradients(params, self.dist)
        total = distributed.sum_scalar(total, self.dist)
        if not torch.isfinite(total):
            raise FloatingPointError(
                f"step {global_step}: the loss is {total.item()}; the data were finite (gaps "
                "are masked), so the fit diverged: lower train.lr or train.grad_clip"
            )
        if t.optimizer == "sgd":
            adaptive_gradient_clip(params, t.agc_clip)
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], t.grad_clip)
        self.last_lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        if self.averaged is not None:
            self.averaged.update_parameters(self.model)
        return float(total)

    # -- the loop -----------------------------------------------------------------------------

    def fit(self, *, resume: bool = False, model: FoundationModel | None = None) -> TrainResult:
        t = self.config.train
        self.out_dir.mkdir(parents=True, exist_ok=True)
        state = self._start(resume, model)
        assert self.model is not None
        log = TrainingLog(self.out_dir, tensorboard=t.tensorboard, enabled=self.dist.is_main)
        frames_per_step = t.window * t.batch_size * t.batches_per_step
        stopped_early = False
        started = time.perf_counter() - state.elapsed_s
        bar = tqdm(
            total=t.max_steps,
            initial=state.step,
            desc="training",
            disable=not (self.progress and self.dist.is_main),
            unit="step",
        )
        while state.step < t.max_steps:
            epoch_start = time.perf_counter()
            epoch_losses = []
            for i in range(min(t.steps_per_epoch, t.max_steps - state.step)):
                if state.step in t.position_search_steps:
                    self._search_positions(state.step, bar)
                epoch_losses.append(self._step(state.epoch, i, state.step))
                state.step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{epoch_losses[-1]:.4f}")
            state.losses += epoch_losses
            seconds = time.perf_counter() - epoch_start
            scores = validation_correlation(
                self.selected_model, self.cohort, self.config, self.device, self.validation.trials
            )
            improved = state.record_validation(scores)
            record = {
                "step": state.step,
                "epoch": state.epoch,
                "loss": float(np.mean(epoch_losses)),
                "lr": self.last_lr,
                "frames_per_s": len(epoch_losses) * frames_per_step / seconds,
                "validation_correlation": (
                    float(np.mean(list(scores.values()))) if scores else math.nan
                ),
                "validation_by_session": scores,
                "masked_responses": self.masked_responses,
            }
            self.masked_responses = 0
            state.epoch += 1
            state.elapsed_s = time.perf_counter() - started
            log.write(record)
            if self.dist.is_main:
                bar.write(progress_line(record, validated=bool(scores)))
                if improved or not scores:
                    save_checkpoint(
                        self.out_dir / "best.safetensors",
                        self.selected_model,
                        self.config,
                        trainer={"step": state.step, "best_score": state.best_score},
                    )
                if t.snapshot_every and state.step % t.snapshot_every == 0:
                    save_checkpoint(
                        self.out_dir / f"step_{state.step:05d}.safetensors",
                        self.selected_model,
                        self.config,
                        trainer={"step": state.step, "score": record["validation_correlation"]},
                    )
                self._save_last(state)
            if t.early_stopping_patience and state.bad_epochs >= t.early_stopping_patience:
                stopped_early = True
                break
            if t.max_minutes and state.elapsed_s >= 60 * t.max_minutes:
                break
        bar.close()
        log.close()
        distributed.barrier(self.dist)
        return TrainResult(
            self.out_dir,
            state.step,
            state.best_score,
            state.best_step,
            state.losses,
            stopped_early,
        )

    def _start(self, resume: bool, model: FoundationModel | None) -> LoopState:
        """Set up a new run, or restore one from ``last.safetensors``; say how it validates."""
        last = self.out_dir / "last.safetensors"
        if resume and last.exists():
            ckpt = load_checkpoint(last, self.device)
            changed = _changed_fields(ckpt.config.to_dict(), self.config.to_dict())
            if changed:
                raise ValueError(
                    f"{last}: was written with a different config ({', '.join(changed)}); "
                    "resume with the same config or start a new output folder"
                )
            state = LoopState(**{k: ckpt.trainer[k] for k in asdict(LoopState())})
            self._prepare(ckpt.model)
            restore_optimizer(self.optimizer, ckpt.optimizer, ckpt.trainer["optimizer"])
            if self.averaged is not None:
                self.averaged.module.load_state_dict(
                    {k: v.to(self.device) for k, v in ckpt.ema.items()}
                )
            if ckpt.rng is not None:
                torch.set_rng_state(ckpt.rng)
        else:
            if resume and self.dist.is_main:
                print(f"no checkpoint at {last}; starting from scratch")
            state = LoopState()
            self._prepare(model)
            torch.manual_seed(self.config.train.seed + 1 + self.dist.rank)
        if state.step:
            self.scheduler = make_scheduler(self.optimizer, self.config, done_steps=state.step)
        if self.dist.is_main:
            for line in self.validation.messages:
                print(f"validation: {line}")
            for line in self.validation.warnings:
                print(f"warning: {line}")
        return state

    def _search_positions(self, step: int, bar: tqdm) -> None:
        """Move every trained session's readouts to their best positions (and the EMA's)."""
        t = self.config.train
        assert self.model is not None and self.windows is not None
        for index, session in enumerate(self.cohort):
            stats = search_positions(
                self.model,
                session,
                self.windows.trials(index),
                max_frames=t.position_search_frames,
                burn_in=t.burn_in,
                device=self.device,
                pooling_um=t.position_search_pooling_um,
            )
            readout = self.model.session(session.session_id).readout
            distributed.broadcast_(readout.delta.data, self.dist)
            if self.averaged is not None:
                averaged = self.averaged.module.session(session.session_id).readout
                averaged.delta.data.copy_(readout.delta.detach())
            if self.dist.is_main and self.progress:
                bar.write(
                    f"step {step}: readout positions of {session.session_id} searched on "
                    f"{stats['frames']} frames; median move {stats['median_shift_cells']:.2f} "
                    f"cells, median variance explained {stats['median_variance_explained']:.3f}"
                )

    def _save_last(self, state: LoopState) -> None:
        assert self.model is not None
        tensors, scalars = optimizer_tensors(self.optimizer)
        save_checkpoint(
            self.out_dir / "last.safetensors",
            self.model,
            self.config,
            trainer={**asdict(state), "optimizer": scalars},
            optimizer=tensors,
            ema=self.ema,
            rng=torch.get_rng_state(),
        )


def train(
    cohort: Cohort,
    config: RunConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    model: FoundationModel | None = None,
    progress: bool = True,
    allowed_trials: dict[str, np.ndarray] | None = None,
) -> TrainResult:
    """Train (or, with ``model`` and ``freeze_core``, adapt) a model; see :class:`Trainer`.

    ``allowed_trials`` (session id -> trial ids) limits the training windows of a session.
    """
    trainer = Trainer(cohort, config, out_dir, progress=progress, allowed_trials=allowed_trials)
    return trainer.fit(resume=resume, model=model)
