"""Seeding, device choice, thread count and determinism switches. The original seeds nothing and sets `cudnn.benchmark =
True`, so no two of its runs agree (recipe §1.7, §6 item 16); sf2f passes seeds or generators explicitly, and the global
seeds here serve code that does not (a notebook cell)."""

from __future__ import annotations

import multiprocessing
import os
import platform
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from sf2f.errors import UnavailableError


def process_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes for the data pipelines and `make weights`, spawned on every platform: a forked child of a
    process that has used torch's thread pools can deadlock, and one start method behaves alike everywhere."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a CPU generator seeded the same for explicit use."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def select_device(preference: str = "auto") -> torch.device:
    """`auto` picks CUDA, then Apple MPS, then the CPU; a named device that is not there is an error, not a fallback."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UnavailableError(f"device '{preference}' was asked for, but torch sees no CUDA GPU (use 'auto' or 'cpu')")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UnavailableError(f"device '{preference}' was asked for, but there are {torch.cuda.device_count()} GPU(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UnavailableError(f"device '{preference}' was asked for, but MPS is not available on this machine")
    return device


def set_threads(threads: int) -> int:
    """Set torch's intra-op thread count (0 keeps the default); return the count in force."""
    if threads > 0:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def set_determinism(enabled: bool) -> None:
    """Deterministic kernels (slower on GPU; torch raises on ops that have none) or the fastest ones."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # CUDA's deterministic GEMMs require it
    torch.use_deterministic_algorithms(enabled, warn_only=False)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


@dataclass(frozen=True)
class RuntimeInfo:
    """What a run is running on, for logs and the notebooks' first cell."""

    device: torch.device
    threads: int
    seed: int
    deterministic: bool

    def describe(self) -> str:
        gpu = f" ({torch.cuda.get_device_name(self.device)})" if self.device.type == "cuda" else ""
        return (f"device {self.device}{gpu}, {self.threads} CPU thread(s), seed {self.seed}, deterministic "
                f"{self.deterministic}; torch {torch.__version__}, Python {platform.python_version()}")


def setup_runtime(seed: int = 0, device: str = "auto", threads: int = 0, deterministic: bool = False) -> RuntimeInfo:
    """Apply the run settings (see RunConfig) and report them."""
    chosen = select_device(device)
    count = set_threads(threads)
    set_determinism(deterministic)
    seed_everything(seed)
    return RuntimeInfo(device=chosen, threads=count, seed=seed, deterministic=deterministic)
