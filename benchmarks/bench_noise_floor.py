"""The noise floor: the same workload timed against itself. Ratios of other benchmarks within this band mean nothing.

(docs/original_timings.md saw 0.98 to 1.17 for the original timed against itself on these 2-core machines.)
"""

from __future__ import annotations

import torch

from benchmarks.harness import Comparison, compare


def run(repeats: int = 10) -> list[Comparison]:
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(40, 256, 3, stride=2, padding=1)
    mel = torch.randn(64, 40, 125)

    def step() -> None:
        with torch.no_grad():
            conv(mel)

    return [compare("noise floor: Conv1d(40->256) batch 64 vs itself", step, step, repeats=repeats,
                    candidate_label="same", reference_label="same")]
