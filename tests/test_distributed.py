"""Two processes on the CPU with the gloo backend: DDP (or, for a network DDP cannot wrap, its optimiser) keeps the
replicas' weights identical, and precise BatchNorm statistics are averaged over them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from subprocess_runs import run_checked

from sf2f.train.distributed import init_distributed, wrap_ddp


@pytest.mark.slow
def test_two_process_ddp_replicas_hold_identical_weights(tmp_path: Path) -> None:
    worker = Path(__file__).with_name("ddp_worker.py")
    run_checked([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(worker),
                 str(tmp_path)], timeout=180)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert (r0["world"], r0["main"], r1["main"]) == (2, True, False)
    assert r0["params"].keys() == r1["params"].keys()
    for name in r0["params"]:
        assert torch.equal(r0["params"][name], r1["params"][name]), name
    for name in r0["critic"]:  # averaged by its optimiser's step hook, from different data on each rank
        assert torch.equal(r0["critic"][name], r1["critic"][name]), name
    # precise BatchNorm statistics: each rank's own differ, and after averaging both hold their mean
    assert not torch.equal(r0["bn_local_mean"], r1["bn_local_mean"])
    assert torch.equal(r0["bn_mean"], r1["bn_mean"])
    assert torch.allclose(r0["bn_mean"], (r0["bn_local_mean"] + r1["bn_local_mean"]) / 2)
    # and training moved them: the replicas agree on something other than the seed-0 initial weights
    torch.manual_seed(0)
    initial = torch.nn.Linear(4, 8).weight
    assert not torch.equal(r0["params"]["0.weight"], initial)


def test_single_process_needs_no_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = init_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed) == (0, 1, True, False)
    layer = torch.nn.Linear(2, 2)
    assert wrap_ddp(layer, ctx) is layer
