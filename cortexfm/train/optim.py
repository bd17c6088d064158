"""How the parameters move: the optimizer and its parameter groups, the learning-rate
schedule (``torch.optim.lr_scheduler.LambdaLR``), gradient clipping and the weights' moving
average (``torch.optim.swa_utils.AveragedModel``)."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from cortexfm.model.network import FoundationModel
from cortexfm.train.config import RunConfig


def learning_rate_factor(step: int, config: RunConfig) -> float:
    """Linear warm-up, then cosine decay to ``min_lr_fraction``."""
    t = config.train
    if step < t.warmup_steps:
        return (step + 1) / t.warmup_steps
    progress = min(1.0, (step - t.warmup_steps) / max(1, t.max_steps - t.warmup_steps))
    return t.min_lr_fraction + (1 - t.min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: FoundationModel, config: RunConfig) -> torch.optim.Optimizer:
    """AdamW or SGD. Readouts learn at ``lr x readout_lr_factor``, perspectives at
    ``lr x perspective_lr_factor``, the core's feed-forward layers at ``lr x
    feedforward_lr_factor`` (each group's ``lr_scale``; the schedule multiplies it)."""
    t = config.train
    scales = {"readout": t.readout_lr_factor, "perspective": t.perspective_lr_factor}
    if t.feedforward_lr_factor != 1.0:  # its own group only when scaled: older checkpoints resume
        scales["feedforward"] = t.feedforward_lr_factor
    grouped: dict[str, list[torch.nn.Parameter]] = {"other": [], **{k: [] for k in scales}}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if "feedforward" in scales and name.startswith("core.layers."):
            grouped["feedforward"].append(p)
        else:
            grouped[next((k for k in scales if f".{k}." in name), "other")].append(p)
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


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: RunConfig, done_steps: int = 0
) -> LambdaLR:
    """The schedule of :func:`learning_rate_factor` on every group's ``lr x lr_scale``,
    positioned for step ``done_steps`` (0 for a new run, the step reached when resuming).

    Call ``scheduler.step()`` after each ``optimizer.step()``.
    """
    for group in optimizer.param_groups:
        group["initial_lr"] = config.train.lr * group.get("lr_scale", 1.0)
    return LambdaLR(
        optimizer, lambda step: learning_rate_factor(step, config), last_epoch=done_steps - 1
    )


def make_ema(model: FoundationModel, decay: float) -> AveragedModel | None:
    """An exponential moving average of ``model``'s parameters, starting at its current
    weights (``None`` when ``decay`` is 0). Buffers (statistics, unit ids, coordinates) do
    not change in training and stay as copied."""
    if decay <= 0:
        return None
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)
    ema.update_parameters(model)  # the first update copies: the average starts at the weights
    return ema
