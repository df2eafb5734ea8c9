"""Precise BatchNorm statistics: running means and variances recomputed for the weights a network has now.

BatchNorm's running statistics are exponential moving averages over past batches, seen through past weights. When the
weights move fast (short schedules with large steps, such as the `demo` profile's) the averages lag behind them, and in
eval mode that lag shifts and rescales every activation alike: embeddings of different inputs crowd together and the
outputs look alike. Recomputing the statistics with the weights frozen ("precise BN", Wu & Johnson, *Rethinking
"Batch" in BatchNorm*, 2021) removes the lag. The trainer does it for the generator at the eval-mode switch (recipe
§3.4) when `optim.precise_bn_at_switch` asks for it, with torch's `torch.optim.swa_utils.update_bn`, which gives the
same statistics as :func:`precise_batchnorm` (a test checks it); the trained face embedder uses
:func:`precise_batchnorm` after its training.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["precise_batchnorm"]

BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@contextmanager
def precise_batchnorm(module: nn.Module) -> Iterator[None]:
    """Inside: `module` in train mode, without gradients, each BatchNorm's statistics reset to a plain average over
    the batches that go through it (momentum None), so forward passes made inside set them to the mean of those
    batches' statistics. On exit, the momenta and every submodule's train/eval mode are as they were.
    """
    layers = [m for m in module.modules() if isinstance(m, BATCHNORMS)]
    momenta = [layer.momentum for layer in layers]
    modes = [(m, m.training) for m in module.modules()]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
    module.train()
    try:
        with torch.no_grad():
            yield
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        for m, training in modes:
            m.training = training
