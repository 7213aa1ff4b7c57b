"""Process-group setup for single-process, ``torchrun`` multi-GPU and multi-node runs.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and the rendezvous variables);
without them the run is a plain single process and nothing is initialised.
NCCL is used when the device is CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from codec.runtime.devices import resolve_device


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool  # True when setup_distributed created the process group (and must destroy it)

    @property
    def is_main(self) -> bool:
        """Only the main process logs and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """In a process group: several ranks, or one started by ``torchrun`` (which then runs the DDP code path)."""
        return self.world_size > 1 or self.owns_group


def setup_distributed(device_kind: str = "auto") -> DistInfo:
    """Join (or create from the ``torchrun`` environment) the default process group.

    An already initialised group (e.g. a test's ``torch.multiprocessing`` workers) is used as is.
    """
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        return DistInfo(rank, world, local_rank, resolve_device(device_kind, local_rank), owns_group=False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_kind, local_rank)
    # torchrun marks its processes with TORCHELASTIC_RUN_ID: they form a group even alone, so that
    # `torchrun --nproc_per_node 1` exercises the DDP code path (wrapper, collectives) on one GPU.
    if world <= 1 and "TORCHELASTIC_RUN_ID" not in os.environ:
        return DistInfo(0, 1, 0, device, owns_group=False)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend="nccl" if device.type == "cuda" else "gloo",
        rank=rank,
        world_size=world,
        device_id=device if device.type == "cuda" else None,
    )
    return DistInfo(rank, world, local_rank, device, owns_group=True)


def teardown_distributed(info: DistInfo) -> None:
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def any_true(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is true on any rank (so all ranks take the same branch)."""
    if not info.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def average_gradients(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """Average the gradients of ``params`` over ranks in one all-reduce (for modules not wrapped in DDP)."""
    if not info.distributed:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= info.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def from_rank0(obj, info: DistInfo):
    """Rank 0's value of a small picklable ``obj`` (a path, a flag) on every rank."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_objects(obj, info: DistInfo) -> list:
    """Every rank's value of a small picklable ``obj``, in rank order (``[obj]`` without a group)."""
    if not info.distributed:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def launched_rank() -> int:
    """The rank ``torchrun`` gave this process (0 without a launcher), readable before any setup."""
    return int(os.environ.get("RANK", "0"))
