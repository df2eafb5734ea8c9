"""Datasets: the synthetic default, the VoxCeleb/HQ-VoxCeleb layouts, the packed cache and torch datasets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import as_completed
from typing import Any

from tqdm.auto import tqdm


def run_jobs(work: Callable[[Any], object], jobs: Sequence[Any], workers: int, bar: tqdm) -> None:
    """`work(job)` for every independent job, ticking `bar`, in `workers` processes (<= 1: this one, to debug it)."""
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            work(job)
            bar.update()
        return
    # imported here: spawned workers import this package and must not pay for torch, which sf2f.runtime imports
    from sf2f.runtime import process_pool
    with process_pool(workers) as pool:
        for future in as_completed([pool.submit(work, job) for job in jobs]):
            future.result()
            bar.update()
