"""Time a callable beside a reference callable in one process and report the ratio of their medians.

These machines are shared and noisy (docs/original_timings.md: the original timed against itself gave 0.98 to
1.17), so goals are ratios measured side by side, never absolute times: the two callables run interleaved after a
warm-up, and the medians of several runs are compared.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Comparison", "compare", "format_table", "time_runs"]


@dataclass(frozen=True)
class Comparison:
    """Timings of a candidate and its reference, in seconds per call."""

    name: str
    candidate: list[float]
    reference: list[float]
    candidate_label: str = "sf2f"
    reference_label: str = "reference"

    @property
    def candidate_median(self) -> float:
        return statistics.median(self.candidate)

    @property
    def reference_median(self) -> float:
        return statistics.median(self.reference)

    @property
    def ratio(self) -> float:
        """Candidate time over reference time: below 1 means the candidate is faster."""
        return self.candidate_median / self.reference_median

    @property
    def speedup(self) -> float:
        return self.reference_median / self.candidate_median


def time_runs(fn: Callable[[], object], repeats: int, timer: Callable[[], float] = time.perf_counter) -> list[float]:
    """Seconds taken by each of `repeats` calls of `fn`."""
    times = []
    for _ in range(repeats):
        start = timer()
        fn()
        times.append(timer() - start)
    return times


def compare(
    name: str,
    candidate: Callable[[], object],
    reference: Callable[[], object],
    repeats: int = 10,
    warmup: int = 3,
    timer: Callable[[], float] = time.perf_counter,
    candidate_label: str = "sf2f",
    reference_label: str = "reference",
) -> Comparison:
    """Warm both up, then alternate single timed calls so that drifts in machine load hit both sides alike."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    for _ in range(warmup):
        candidate()
        reference()
    cand: list[float] = []
    ref: list[float] = []
    for _ in range(repeats):
        cand += time_runs(candidate, 1, timer)
        ref += time_runs(reference, 1, timer)
    return Comparison(name, cand, ref, candidate_label, reference_label)


def format_table(results: list[Comparison]) -> str:
    """A Markdown table: medians in milliseconds and the ratio candidate / reference."""
    lines = [
        "| benchmark | candidate | median ms | reference | median ms | ratio (cand/ref) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.candidate_label} | {1e3 * r.candidate_median:.2f} | {r.reference_label} | "
            f"{1e3 * r.reference_median:.2f} | {r.ratio:.3f} |"
        )
    return "\n".join(lines)
