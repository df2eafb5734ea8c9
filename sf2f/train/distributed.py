"""Several processes, one model: torch.distributed set-up for `torchrun --nproc_per_node=N -m sf2f train ...`.

The original wraps everything in `nn.DataParallel` (recipe §0.3), whose `training` flag caused the fuser stage's
BatchNorm to flip back to train mode (§3.4). Here each process owns one device and DistributedDataParallel averages
gradients. `broadcast_buffers=False`: a discriminator sees real and fake images in separate forward calls (§3.2),
and DDP's default re-broadcast of BatchNorm buffers at every forward would both cost a collective per call and make
the second call's statistics depend on call order; each replica keeps its own running statistics instead, and rank 0's
are the ones saved.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sf2f.runtime import select_device

__all__ = ["DistContext", "init_distributed", "shutdown", "wrap_ddp", "unwrap"]


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Logging, checkpoints and evaluation happen on rank 0 only."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group that torchrun describes in the environment, or run as a single process.

    NCCL on CUDA (one GPU per process, by LOCAL_RANK), gloo on the CPU (which is how the tests run two processes).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistContext(0, 1, 0, select_device(device))
    local_rank = int(os.environ["LOCAL_RANK"])
    wants_cuda = device != "cpu" and torch.cuda.is_available()
    if wants_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if wants_cuda else "gloo")
    chosen = torch.device("cuda", local_rank) if wants_cuda else torch.device("cpu")
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, chosen)


def wrap_ddp(module: nn.Module, ctx: DistContext) -> nn.Module:
    """DistributedDataParallel around a module with trainable parameters; the module itself when not distributed."""
    if not ctx.distributed or not any(p.requires_grad for p in module.parameters()):
        return module
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper (what checkpoints store, without a `module.` prefix)."""
    return module.module if isinstance(module, DistributedDataParallel) else module


def shutdown(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
