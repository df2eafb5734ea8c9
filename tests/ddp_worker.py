"""Run by tests/test_distributed.py under torchrun: a few DDP steps on different data per rank, precise BatchNorm
statistics averaged over the ranks, then a dump of both."""

from __future__ import annotations

import sys

import torch
from torch import nn

from sf2f.train.distributed import init_distributed, shutdown, unwrap, wrap_ddp
from sf2f.train.precise_bn import average_across_processes, precise_batchnorm


def main(out: str) -> None:
    ctx = init_distributed("cpu")
    torch.manual_seed(0)  # the same initial weights everywhere (DDP also broadcasts them from rank 0)
    model = wrap_ddp(nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1)), ctx)
    optim = torch.optim.Adam(model.parameters(), lr=1e-2)
    data = torch.Generator().manual_seed(100 + ctx.rank)  # every rank sees other samples
    for _ in range(5):
        x = torch.randn(16, 4, generator=data)
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
    params = {k: v.detach().clone() for k, v in unwrap(model).named_parameters()}
    # precise BatchNorm statistics from each rank's own batches, then averaged over the ranks
    with precise_batchnorm(unwrap(model)) as layers:
        for _ in range(3):
            unwrap(model)(torch.randn(16, 4, generator=data))
    local = layers[0].running_mean.clone()
    average_across_processes(layers)
    torch.save({"rank": ctx.rank, "world": ctx.world_size, "main": ctx.is_main, "params": params,
                "bn_local_mean": local, "bn_mean": layers[0].running_mean.clone()}, f"{out}/rank{ctx.rank}.pt")
    shutdown(ctx)


if __name__ == "__main__":
    main(sys.argv[1])
