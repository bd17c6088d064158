"""Output nonlinearities and losses; the first ``burn_in`` frames of each window are excluded.

- ``poisson``: negative log-likelihood ``rate - target * log(rate)`` (constant terms dropped),
  for non-negative targets (deconvolved activity);
- ``gaussian``: mean squared error, for real-valued targets (ΔF/F, z-scored traces).

Target values that are NaN (gaps inside a recorded trace, see :mod:`cortexfm.data.gaps`) are
masked out: the loss is the mean over the finite targets only.

``window_gain`` (``train.window_gain``, 0 to 1) is the share of the loss in which each neuron's
gain is fitted afresh in every window: the prediction is scaled by the factor that fits that
window best (closed form: ``sum(target) / sum(rate)`` for Poisson, ``sum(target * rate) /
sum(rate ** 2)`` for Gaussian) before the loss is taken. That share is the profile likelihood
of the response's time course within the window: slow changes of a neuron's gain (running,
arousal, unobserved state) cannot be fitted or mis-fitted there, so they drop out of its
gradient, which carries only what the stimulus does within the window. The remaining share
(``1 - window_gain``) is the ordinary loss and fixes the absolute level. By the envelope
theorem the gradient through the fitted factor is zero, so the factor is computed without one.

:func:`smoothness_penalty` is a prior on convolution kernels, not a loss on responses: the
Laplacian's energy relative to the kernels' own (Lurz et al. 2021's ``gamma_input``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

LOSSES = ("poisson", "gaussian")
_EPS = 1e-8


def output_nonlinearity(x: Tensor, kind: str, log_gain: Tensor | None = None) -> Tensor:
    """The readout's drive ``x [batch, time, neurons]`` -> rates: ``kind`` (softplus, exp or
    identity) of ``x``, times ``exp(log_gain)`` (a per-neuron behavioural gain, capped at
    ``e^10``) when given; for ``exp`` that is one exponential of the sum."""
    gain = None if log_gain is None else log_gain.clamp(max=10.0)
    if kind == "exp":
        return torch.exp(x.clamp(max=20.0) if gain is None else x.clamp(max=20.0) + gain)
    rates = F.softplus(x) if kind == "softplus" else x
    return rates if gain is None else rates * torch.exp(gain)


def response_loss(
    prediction: Tensor, target: Tensor, loss: str, burn_in: int = 0, window_gain: float = 0.0
) -> Tensor:
    """Mean loss over ``[batch, time, neurons]`` from frame ``burn_in`` on; ``window_gain`` is
    the share of it with each (window, neuron)'s gain fitted in closed form (module doc)."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ"
        )
    if burn_in >= prediction.shape[1]:
        raise ValueError(
            f"burn_in {burn_in} leaves no frames of a {prediction.shape[1]}-frame window"
        )
    if not 0.0 <= window_gain <= 1.0:
        raise ValueError(f"train.window_gain must be in [0, 1], got {window_gain}")
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {LOSSES}")
    p, y = prediction[:, burn_in:], target[:, burn_in:]
    valid = torch.isfinite(y)
    y = torch.where(valid, y, torch.zeros((), dtype=y.dtype, device=y.device))
    values = _pointwise(p, y, loss)
    if window_gain > 0:
        gain = _window_gain(p.detach(), y, valid, loss)
        values = (1 - window_gain) * values + window_gain * _pointwise(gain * p, y, loss)
    if bool(valid.all()):
        return values.mean()
    return (values * valid).sum() / valid.sum().clamp(min=1)


def _pointwise(p: Tensor, y: Tensor, loss: str) -> Tensor:
    if loss == "poisson":
        return p - y * torch.log(p + _EPS)
    return (p - y) ** 2


def _window_gain(p: Tensor, y: Tensor, valid: Tensor, loss: str) -> Tensor:
    """The factor ``[batch, 1, neurons]`` that best scales each window's prediction onto its
    finite targets; bounded to [0.01, 100] so an empty or silent window stays harmless."""
    p = p * valid
    if loss == "poisson":
        gain = y.sum(1, keepdim=True) / p.sum(1, keepdim=True).clamp(min=_EPS)
    else:
        gain = (y * p).sum(1, keepdim=True) / (p * p).sum(1, keepdim=True).clamp(min=_EPS)
    return gain.clamp(0.01, 100.0)


_LAPLACE = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])


def smoothness_penalty(weight: Tensor) -> Tensor:
    """``sum ||laplace(w)||^2 / sum ||w||^2`` over the kernels ``weight [C_out, C_in, k, k]``
    (zero-padded, so a smooth kernel also fades towards its edges): ~20 for white noise, ~2
    for a Gabor of 6-pixel period in a 7x7 kernel; scale-free, so it shapes the kernels
    without shrinking them."""
    kernels = weight.flatten(0, 1).unsqueeze(1)  # [C_out * C_in, 1, k, k]
    laplace = _LAPLACE.to(weight)[None, None]
    rough = F.conv2d(kernels, laplace, padding=1).pow(2).sum()
    return rough / weight.pow(2).sum().clamp(min=_EPS)
