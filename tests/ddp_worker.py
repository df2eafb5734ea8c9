"""Run by tests/test_distributed.py under torchrun: a few DDP steps on different data per rank, a few steps of a
second network whose optimiser averages the gradients itself (as the discriminators' do), precise BatchNorm
statistics averaged over the ranks, then a dump of all three."""

from __future__ import annotations

import sys

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from sf2f.train.distributed import (
    average_across_processes,
    average_gradients_before_steps,
    init_distributed,
    shutdown,
    wrap_ddp,
)


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
    params = {k: v.detach().clone() for k, v in model.module.named_parameters()}
    # a network called twice before its backward pass, which DDP does not allow: its optimiser averages instead
    torch.manual_seed(1)
    critic = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    critic_optim = torch.optim.Adam(critic.parameters(), lr=1e-2)
    average_gradients_before_steps(critic_optim)
    for _ in range(3):
        loss = critic(torch.randn(16, 4, generator=data)).mean() - critic(torch.randn(16, 4, generator=data)).mean()
        critic_optim.zero_grad()
        loss.backward()
        critic_optim.step()
    # precise BatchNorm statistics from each rank's own batches, then averaged over the ranks
    layer = model.module[1]
    update_bn([torch.randn(16, 4, generator=data) for _ in range(3)], model.module)
    local = layer.running_mean.clone()
    average_across_processes([layer.running_mean, layer.running_var])
    torch.save({"rank": ctx.rank, "world": ctx.world_size, "main": ctx.is_main, "params": params,
                "critic": {k: v.detach().clone() for k, v in critic.named_parameters()},
                "bn_local_mean": local, "bn_mean": layer.running_mean.clone()}, f"{out}/rank{ctx.rank}.pt")
    shutdown(ctx)


if __name__ == "__main__":
    main(sys.argv[1])
