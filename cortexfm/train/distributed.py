"""Distributed data parallel training under ``torchrun`` (gloo on CPU, NCCL on GPU).

Gradients are summed across ranks explicitly (one flat all-reduce) rather than through
``DistributedDataParallel``, because each rank's batch comes from a different session and so
touches different per-session parameters. A parameter that no rank used keeps ``grad=None``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistributedInfo:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def setup() -> DistributedInfo:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world_size <= 1:
        return DistributedInfo(0, 1, device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedInfo(dist.get_rank(), dist.get_world_size(), device)


def sum_gradients(params: list[torch.nn.Parameter], info: DistributedInfo) -> None:
    """All-reduce (sum) gradients; parameters unused on every rank keep ``grad=None``."""
    if not info.active or not params:
        return
    used = torch.tensor(
        [p.grad is not None for p in params], dtype=torch.float32, device=info.device
    )
    flat = torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]
    )
    dist.all_reduce(used)
    dist.all_reduce(flat)
    offset = 0
    for p, u in zip(params, used.tolist(), strict=True):
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone() if u > 0 else None
        offset += n


def sum_scalar(value: torch.Tensor, info: DistributedInfo) -> torch.Tensor:
    if info.active:
        value = value.clone()
        dist.all_reduce(value)
    return value


def broadcast_(tensor: torch.Tensor, info: DistributedInfo) -> None:
    """Overwrite ``tensor`` on every rank with rank 0's values (in place)."""
    if info.active:
        dist.broadcast(tensor, src=0)


def barrier(info: DistributedInfo) -> None:
    if info.active:
        dist.barrier()
