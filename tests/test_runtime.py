"""Seeding, device choice, threads and determinism."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from sf2f.runtime import seed_everything, select_device, set_determinism, set_threads, setup_runtime


def _draw() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_seed_everything_repeats_every_generator() -> None:
    g1 = seed_everything(123)
    first = (*_draw(), float(torch.rand(1, generator=g1)))
    g2 = seed_everything(123)
    second = (*_draw(), float(torch.rand(1, generator=g2)))
    seed_everything(124)
    assert first == second
    assert _draw() != first[:3]


def test_select_device() -> None:
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type in {"cpu", "cuda", "mps"}
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            select_device("cuda")
    with pytest.raises(RuntimeError):
        select_device(f"cuda:{max(torch.cuda.device_count(), 0) + 7}")


def test_threads_and_determinism_round_trip() -> None:
    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1
        assert set_threads(0) == 1  # 0 keeps what is in force
        set_determinism(True)
        assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
        set_determinism(False)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.set_num_threads(before)


def test_setup_runtime_describes_itself() -> None:
    before = torch.get_num_threads()
    try:
        info = setup_runtime(seed=5, device="cpu", threads=1)
        assert info.device.type == "cpu" and info.threads == 1 and info.seed == 5
        assert "seed 5" in info.describe() and torch.__version__ in info.describe()
    finally:
        torch.set_num_threads(before)
