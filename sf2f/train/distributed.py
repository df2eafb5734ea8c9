"""`torchrun --nproc_per_node=N -m sf2f train ...`: one device per process (the original's `nn.DataParallel`, recipe
§0.3). DDP averages G's gradients; the discriminators' optimisers average theirs before stepping, as a discriminator is
called twice (fakes, then reals, §3.2) before its backward, which DDP forbids. BatchNorm statistics stay per replica."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from sf2f.runtime import select_device


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:  # rank 0 alone logs, evaluates and writes checkpoints
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistContext:
    """Join torchrun's process group (NCCL, a GPU per LOCAL_RANK; gloo on CPUs), or run as a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistContext(0, 1, select_device(device))
    local_rank = int(os.environ["LOCAL_RANK"])
    wants_cuda = device != "cpu" and torch.cuda.is_available()
    if wants_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if wants_cuda else "gloo")
    chosen = torch.device("cuda", local_rank) if wants_cuda else torch.device("cpu")
    return DistContext(dist.get_rank(), dist.get_world_size(), chosen)


def wrap_ddp(module: nn.Module, ctx: DistContext) -> nn.Module:
    """DistributedDataParallel around a module with trainable parameters; the module itself when not distributed."""
    if not ctx.distributed or not any(p.requires_grad for p in module.parameters()):
        return module
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)


def average_across_processes(tensors: Iterable[Tensor]) -> None:
    """Replace each process's copy of every tensor by the mean over the processes (a no-op in a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    world = dist.get_world_size()
    for tensor in tensors:
        dist.all_reduce(tensor)  # a sum: gloo has no average
        tensor.div_(world)


def average_gradients_before_steps(optimizer: torch.optim.Optimizer) -> None:
    """From now on `optimizer` averages its gradients over the processes before each step (as DDP does for G)."""

    def average(opt: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        average_across_processes(p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None)

    optimizer.register_step_pre_hook(average)


def parameter_hash(*modules: nn.Module) -> str:
    digest = hashlib.sha256()
    for module in modules:
        for name, p in module.named_parameters():
            digest.update(name.encode())
            digest.update(p.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def replica_hashes(ctx: DistContext, *modules: nn.Module) -> list[str]:
    """:func:`parameter_hash` of each rank's copy of the modules: a run records that the replicas stayed identical."""
    own = parameter_hash(*modules)
    if not ctx.distributed:
        return [own]
    gathered: list[object] = [None] * ctx.world_size
    dist.all_gather_object(gathered, own)
    return [str(h) for h in gathered]


def shutdown(ctx: DistContext) -> None:
    """Leave the process group once every rank is done: destroying it while another rank is still on its way can hang
    (pytorch/pytorch#75097), so the ranks meet at a barrier first. Then a pause without the GIL: gloo's worker thread
    frees the barrier's work, and the tensors of the collectives it waited for, just after the barrier returns, and
    needs the GIL to; tearing the group down joins that thread with the GIL held (a deadlock seen, under heavy load,
    with gdb: ProcessGroupGloo's destructor against ~AsyncBarrierWork)."""
    if ctx.distributed and dist.is_initialized():
        dist.barrier()
        time.sleep(1.0)
        dist.destroy_process_group()
