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
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from cortexfm.data.cohort import Cohort
from cortexfm.data.loader import TrainingWindows, WindowConfig
from cortexfm.data.session import Session
from cortexfm.data.statistics import Normalizer, check_response_sign, session_statistics
from cortexfm.metrics import correlation
from cortexfm.model.loss import response_loss
from cortexfm.model.network import FoundationModel, SessionInfo
from cortexfm.train import distributed
from cortexfm.train.checkpoint import (
    load_checkpoint,
    optimizer_tensors,
    restore_optimizer,
    save_checkpoint,
)
from cortexfm.train.config import RunConfig
from cortexfm.train.positions import search_positions
from cortexfm.train.validation import TRAIN_TIER, plan_validation


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


def learning_rate_factor(step: int, config: RunConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_fraction``."""
    t = config.train
    if step < t.warmup_steps:
        return (step + 1) / t.warmup_steps
    progress = min(1.0, (step - t.warmup_steps) / max(1, t.max_steps - t.warmup_steps))
    return t.min_lr_fraction + (1 - t.min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: FoundationModel, config: RunConfig) -> torch.optim.Optimizer:
    """AdamW or SGD. Readouts learn at ``lr x readout_lr_factor``, perspectives at
    ``lr x perspective_lr_factor`` (each group's ``lr_scale``; the schedule multiplies it)."""
    t = config.train
    scales = {"readout": t.readout_lr_factor, "perspective": t.perspective_lr_factor}
    grouped: dict[str, list[torch.nn.Parameter]] = {"other": [], **{k: [] for k in scales}}
    for name, p in model.named_parameters():
        if p.requires_grad:
            kind = next((k for k in scales if f".{k}." in name), "other")
            grouped[kind].append(p)
    groups = [
        {"params": params, "lr": t.lr * scales.get(kind, 1.0), "lr_scale": scales.get(kind, 1.0)}
        for kind, params in grouped.items()
        if params
    ]
    if t.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=t.lr, weight_decay=t.weight_decay)
    if t.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    raise ValueError(f"train.optimizer must be adamw or sgd, got {t.optimizer!r}")


def adaptive_gradient_clip(params: list[torch.nn.Parameter], clip: float) -> None:
    """AGC (Brock et al. 2021): rescale each gradient to at most ``clip`` x its weight norm."""
    for p in params:
        if p.grad is None:
            continue
        w = p.detach().norm().clamp(min=1e-3)
        g = p.grad.norm()
        limit = clip * w
        if g > limit:
            p.grad.mul_(limit / (g + 1e-6))


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
        self.masked_responses = 0  # NaN response values (gaps) left out of the loss

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
        normalizers = {
            s.session_id: self.model.session(s.session_id).normalization.to_normalizer()
            for s in self.cohort
        }
        self.validation = plan_validation(
            self.cohort,
            t.validation,
            fraction=t.validation_fraction,
            seed=t.seed,
            limit=t.validation_trials,
            allowed_trials=self.allowed_trials,
        )
        allowed = {
            s.session_id: self.validation.training_trials(
                s.session_id,
                s.trials_in(TRAIN_TIER),
                None if self.allowed_trials is None else self.allowed_trials.get(s.session_id),
            )
            for s in self.cohort
        }
        self.windows = TrainingWindows(
            self.cohort,
            WindowConfig(
                window=t.window,
                batch_size=t.batch_size,
                batches_per_epoch=t.steps_per_epoch * t.batches_per_step,
                sampling=t.sampling,
                seed=t.seed,
            ),
            normalizers=normalizers,
            allowed_trials=allowed,
        )
        self.optimizer = make_optimizer(self.model, self.config)
        self.ema: dict[str, torch.Tensor] = (
            {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            if t.ema_decay > 0
            else {}
        )

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
            loss.backward()
            total += loss.detach()
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
        factor = learning_rate_factor(global_step, self.config)
        for group in self.optimizer.param_groups:
            group["lr"] = t.lr * factor * group.get("lr_scale", 1.0)
        self.optimizer.step()
        if self.ema:
            with torch.no_grad():
                for k, v in self.model.state_dict().items():
                    if v.dtype.is_floating_point:
                        self.ema[k].mul_(t.ema_decay).add_(v, alpha=1 - t.ema_decay)
                    else:
                        self.ema[k].copy_(v)
        return float(total)

    # -- the loop -----------------------------------------------------------------------------

    def fit(self, *, resume: bool = False, model: FoundationModel | None = None) -> TrainResult:
        t = self.config.train
        self.out_dir.mkdir(parents=True, exist_ok=True)
        last = self.out_dir / "last.safetensors"
        state = {
            "step": 0,
            "epoch": 0,
            "best_score": -math.inf,
            "best_step": -1,
            "bad_epochs": 0,
            "losses": [],
            "elapsed_s": 0.0,
        }
        if resume and last.exists():
            ckpt = load_checkpoint(last, self.device)
            if ckpt.config.to_dict() != self.config.to_dict():
                raise ValueError(
                    f"{last}: was written with a different config; resume with the same "
                    "config or start a new output folder"
                )
            self._prepare(ckpt.model)
            restore_optimizer(self.optimizer, ckpt.optimizer, ckpt.trainer["optimizer"])
            if self.ema:
                self.ema = {k: v.to(self.device) for k, v in ckpt.ema.items()}
            if ckpt.rng is not None:
                torch.set_rng_state(ckpt.rng)
            state = {k: ckpt.trainer[k] for k in state}
        else:
            if resume and self.dist.is_main:
                print(f"no checkpoint at {last}; starting from scratch")
            self._prepare(model)
            torch.manual_seed(t.seed + 1 + self.dist.rank)
        assert self.model is not None
        if self.dist.is_main:
            for line in self.validation.messages:
                print(f"validation: {line}")
            for line in self.validation.warnings:
                print(f"warning: {line}")
        log_path = self.out_dir / "metrics.jsonl"
        writer = _tensorboard(self.out_dir) if t.tensorboard and self.dist.is_main else None
        frames_per_step = t.window * t.batch_size * t.batches_per_step
        stopped_early = False
        started = time.perf_counter() - state["elapsed_s"]
        bar = tqdm(
            total=t.max_steps,
            initial=state["step"],
            desc="training",
            disable=not (self.progress and self.dist.is_main),
            unit="step",
        )
        while state["step"] < t.max_steps:
            epoch_start = time.perf_counter()
            epoch_losses = []
            steps = min(t.steps_per_epoch, t.max_steps - state["step"])
            for i in range(steps):
                if state["step"] in t.position_search_steps:
                    self._search_positions(state["step"], bar)
                loss = self._step(state["epoch"], i, state["step"])
                epoch_losses.append(loss)
                state["step"] += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
            state["losses"] += epoch_losses
            seconds = time.perf_counter() - epoch_start
            with self._ema_weights():  # validation and the best checkpoint use the EMA weights
                scores = validation_correlation(
                    self.model, self.cohort, self.config, self.device, self.validation.trials
                )
            score = float(np.mean(list(scores.values()))) if scores else math.nan
            record = {
                "step": state["step"],
                "epoch": state["epoch"],
                "loss": float(np.mean(epoch_losses)),
                "lr": self.optimizer.param_groups[0]["lr"],
                "frames_per_s": steps * frames_per_step / seconds,
                "validation_correlation": score,
                "validation_by_session": scores,
                "masked_responses": self.masked_responses,
            }
            self.masked_responses = 0
            improved = bool(scores) and score > state["best_score"]
            if improved:
                state["best_score"], state["best_step"], state["bad_epochs"] = (
                    score,
                    state["step"],
                    0,
                )
            elif scores:
                state["bad_epochs"] += 1
            else:  # nothing to select on: the latest weights are the result
                state["best_score"], state["best_step"] = math.nan, state["step"]
            state["epoch"] += 1
            state["elapsed_s"] = time.perf_counter() - started
            if self.dist.is_main:
                with log_path.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                if writer is not None:
                    for key in ("loss", "lr", "frames_per_s", "validation_correlation"):
                        writer.add_scalar(key, record[key], state["step"])
                validated = f"validation r {score:.4f}" if scores else "no validation"
                masked = record["masked_responses"]
                gaps = f", {masked} NaN response values masked" if masked else ""
                bar.write(
                    f"step {state['step']}: loss {record['loss']:.4f}, {validated}, "
                    f"{record['frames_per_s']:.0f} frames/s{gaps}"
                )
                if improved or not scores:
                    with self._ema_weights():
                        save_checkpoint(
                            self.out_dir / "best.safetensors",
                            self.model,
                            self.config,
                            trainer={k: state[k] for k in ("step", "best_score")},
                        )
                self._save_last(state)
            if t.early_stopping_patience and state["bad_epochs"] >= t.early_stopping_patience:
                stopped_early = True
                break
            if t.max_minutes and state["elapsed_s"] >= 60 * t.max_minutes:
                break
        bar.close()
        if writer is not None:
            writer.close()
        distributed.barrier(self.dist)
        return TrainResult(
            self.out_dir,
            state["step"],
            state["best_score"],
            state["best_step"],
            state["losses"],
            stopped_early,
        )

    def _search_positions(self, step: int, bar: tqdm) -> None:
        """Move every trained session's readouts to their best positions (and the EMA copy)."""
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
            if self.ema:
                key = f"sessions.{self.model._key(session.session_id)}.readout.delta"
                self.ema[key].copy_(readout.delta.detach())
            if self.dist.is_main and self.progress:
                bar.write(
                    f"step {step}: readout positions of {session.session_id} searched on "
                    f"{stats['frames']} frames; median move {stats['median_shift_cells']:.2f} "
                    f"cells, median variance explained {stats['median_variance_explained']:.3f}"
                )

    @contextlib.contextmanager
    def _ema_weights(self):
        """Temporarily swap the EMA weights in (a no-op without EMA)."""
        assert self.model is not None
        if not self.ema:
            yield
            return
        current = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(self.ema)
        try:
            yield
        finally:
            self.model.load_state_dict(current)

    def _save_last(self, state: dict) -> None:
        assert self.model is not None
        tensors, scalars = optimizer_tensors(self.optimizer)
        save_checkpoint(
            self.out_dir / "last.safetensors",
            self.model,
            self.config,
            trainer={**state, "optimizer": scalars},
            optimizer=tensors,
            ema=self.ema,
            rng=torch.get_rng_state(),
        )


def _tensorboard(out_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print(
            "tensorboard is not installed (pip install tensorboard); logging to metrics.jsonl only"
        )
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))


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
