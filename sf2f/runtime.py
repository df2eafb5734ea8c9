"""The one place for seeding, device choice, thread count and determinism switches.

The original seeds nothing and sets `cudnn.benchmark = True`, so no two of its runs agree (recipe §1.7, §6 item 16).
Everything in sf2f that draws random numbers takes a seed or a `torch.Generator`; this module sets the global seeds
for code that does not (for example a notebook cell) and picks the device.
"""

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

__all__ = ["RuntimeInfo", "seed_everything", "select_device", "set_threads", "set_determinism", "setup_runtime"]


def process_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes for the data pipelines and `make weights`, started with spawn on every platform: a forked child
    of a process that has used torch's thread pools can deadlock, and one start method behaves alike on Linux, macOS
    and Windows (a script that starts a pool needs the usual `if __name__ == "__main__":` guard)."""
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
        raise UnavailableError(f"device '{preference}' was asked for, but only {torch.cuda.device_count()} GPU(s) exist")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UnavailableError(f"device '{preference}' was asked for, but MPS is not available on this machine")
    return device


def set_threads(threads: int) -> int:
    """Set torch's intra-op thread count (0 keeps the default); return the count in force."""
    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    if threads > 0:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def set_determinism(enabled: bool) -> None:
    """Deterministic kernels (slower on GPU) or the fastest ones.

    With `enabled`, cuDNN autotuning is off and torch raises on ops that have no deterministic implementation;
    CUBLAS_WORKSPACE_CONFIG is set as CUDA's deterministic GEMMs require.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
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
        gpu = ""
        if self.device.type == "cuda":
            gpu = f" ({torch.cuda.get_device_name(self.device)})"
        return (
            f"device {self.device}{gpu}, {self.threads} CPU thread(s), seed {self.seed}, "
            f"deterministic {self.deterministic}; torch {torch.__version__}, Python {platform.python_version()}"
        )


def setup_runtime(seed: int = 0, device: str = "auto", threads: int = 0, deterministic: bool = False) -> RuntimeInfo:
    """Apply the run settings (see RunConfig) and report them."""
    chosen = select_device(device)
    count = set_threads(threads)
    set_determinism(deterministic)
    seed_everything(seed)
    return RuntimeInfo(device=chosen, threads=count, seed=seed, deterministic=deterministic)
