"""Precise BatchNorm statistics: running means and variances recomputed for the weights a network has now.

BatchNorm's running statistics are exponential moving averages over past batches, seen through past weights. When the
weights move fast (short schedules with large steps, such as the `demo` profile's) the averages lag behind them, and in
eval mode that lag shifts and rescales every activation alike: embeddings of different inputs crowd together and the
outputs look alike. Recomputing the statistics with the weights frozen ("precise BN", Wu & Johnson, *Rethinking
"Batch" in BatchNorm*, 2021) removes the lag. sf2f uses it for the trained face embedder after its training, and, when
`optim.precise_bn_at_switch` asks for it, for the generator at the eval-mode switch (recipe §3.4), where the
original freezes the lagging averages instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["average_across_processes", "precise_batchnorm"]


@contextmanager
def precise_batchnorm(module: nn.Module) -> Iterator[list[_BatchNorm]]:
    """Inside: `module` in train mode, without gradients, each BatchNorm's statistics reset to a plain average over
    the batches that go through it (momentum None), so forward passes made inside set them to the mean of those
    batches' statistics. On exit, the momenta and every submodule's train/eval mode are as they were.

    Yields the BatchNorm layers (for :func:`average_across_processes`).
    """
    layers = [m for m in module.modules() if isinstance(m, _BatchNorm)]
    momenta = [layer.momentum for layer in layers]
    modes = [(m, m.training) for m in module.modules()]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
    module.train()
    try:
        with torch.no_grad():
            yield layers
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        for m, training in modes:
            m.training = training


def average_across_processes(layers: list[_BatchNorm]) -> None:
    """Under torch.distributed, replace each process's recomputed statistics by their mean over the processes (each
    saw its own share of the batches), so that every replica freezes the same ones. A no-op in a single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    world = dist.get_world_size()
    for layer in layers:
        for buffer in (layer.running_mean, layer.running_var):
            if buffer is not None:
                dist.all_reduce(buffer)  # a sum: gloo has no average
                buffer.div_(world)
