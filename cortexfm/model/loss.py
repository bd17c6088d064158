"""Output nonlinearities and losses; the first ``burn_in`` frames of each window are excluded.

- ``poisson``: negative log-likelihood ``rate - target * log(rate)`` (constant terms dropped),
  for non-negative targets (deconvolved activity);
- ``gaussian``: mean squared error, for real-valued targets (ΔF/F, z-scored traces).

Target values that are NaN (gaps inside a recorded trace, see :mod:`cortexfm.data.gaps`) are
masked out: the loss is the mean over the finite targets only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

LOSSES = ("poisson", "gaussian")
_EPS = 1e-8


def output_nonlinearity(x: Tensor, kind: str) -> Tensor:
    if kind == "softplus":
        return F.softplus(x)
    if kind == "exp":
        return torch.exp(x.clamp(max=20.0))
    return x


def response_loss(prediction: Tensor, target: Tensor, loss: str, burn_in: int = 0) -> Tensor:
    """Mean loss over ``[batch, time, neurons]`` from frame ``burn_in`` on."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ"
        )
    if burn_in >= prediction.shape[1]:
        raise ValueError(
            f"burn_in {burn_in} leaves no frames of a {prediction.shape[1]}-frame window"
        )
    p, y = prediction[:, burn_in:], target[:, burn_in:]
    valid = torch.isfinite(y)
    y = torch.where(valid, y, torch.zeros((), dtype=y.dtype, device=y.device))
    if loss == "poisson":
        values = p - y * torch.log(p + _EPS)
    elif loss == "gaussian":
        values = (p - y) ** 2
    else:
        raise ValueError(f"unknown loss {loss!r}; choose one of {LOSSES}")
    if bool(valid.all()):
        return values.mean()
    return (values * valid).sum() / valid.sum().clamp(min=1)
