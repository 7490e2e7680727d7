"""What the training loop needs inside a data-parallel process group (see
:mod:`pipeline.training.launch` for how the ranks are started): each rank's share of a
global batch, the mean of a value over the ranks, and the model in DDP. Outside a process
group every function here is the identity, so one process runs the same code.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

Batch = dict[str, torch.Tensor]


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) unless a process group is running."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def batch_rows(batch: Batch) -> int:
    """Rows in a collated batch (its first tensor's first dimension)."""
    return int(next(iter(batch.values())).shape[0])


def shard(batch: Batch, rank: int, world: int) -> tuple[Batch, float]:
    """This rank's share of a global batch, and the factor that makes the average of the
    ranks' losses the global batch's mean loss.

    Rows ``rank, rank + world, ...``: a length-sorted batch gives each rank about the same
    number of tokens; padding columns that no row of the share needs are dropped. A rank
    left with no row (a last batch smaller than the world) computes on the first row with
    factor 0, so every rank still takes part in the gradient average. For a loss that is a
    mean over rows the result is the single-process gradient (up to float rounding)."""
    rows = batch_rows(batch)
    take = torch.arange(rank, rows, world)
    share = len(take) * world / rows
    if not len(take):
        take = torch.arange(1)
    part = {k: v[take] if v.ndim and v.shape[0] == rows else v for k, v in batch.items()}
    mask = part.get("attention_mask")
    if mask is not None and mask.ndim == 2:
        used = mask.any(0).nonzero()
        width = int(used.max()) + 1 if len(used) else 1
        part = {k: v[:, :width] if v.ndim == 2 and v.shape[1] == mask.shape[1] else v for k, v in part.items()}
    return part, share


def all_mean(value: float) -> float:
    """The mean of ``value`` over the ranks (the value itself in a single process)."""
    world = rank_and_world()[1]
    if world == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64,
                          device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(tensor)
    return float(tensor.item()) / world


def all_gather(value: Any) -> list[Any]:
    """Every rank's ``value`` (a picklable object), in rank order."""
    world = rank_and_world()[1]
    if world == 1:
        return [value]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, value)
    return out


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model in DistributedDataParallel when a process group runs, else as it is."""
    if rank_and_world()[1] == 1:
        return model
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


