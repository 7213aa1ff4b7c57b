"""The few collectives the EMA codebooks need, as no-ops when there is a single process.

Every rank must hold identical codebooks, so the EMA statistics are summed over ranks before
each update and anything drawn at random (initial codebooks, replacement vectors) comes from
rank 0. The same code runs unchanged without ``torch.distributed`` set up.
"""

from __future__ import annotations

import torch
from torch import distributed as dist


def is_distributed() -> bool:
    """True inside an initialised process group with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process' rank; 0 when not distributed."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of ranks; 1 when not distributed."""
    return dist.get_world_size() if is_distributed() else 1


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks, in place; returns it. No-op in a single process."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite ``tensor`` on every rank with rank ``src``'s copy, in place; returns it."""
    if is_distributed():
        dist.broadcast(tensor, src=src)
    return tensor
