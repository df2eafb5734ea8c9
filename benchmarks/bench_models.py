"""Inference speed of the generators (encoder [+ fuser] + decoder, no grad), full size, mel length 125.

Reference: the straightforward formulation the original computes (recipe §2.1, §2.3): our `Generator` in eval mode
under `torch.no_grad()`, with four separate Inception branches and a concatenation, BatchNorm as its own op, nearest
upsampling materialised before every 3x3 conv. Its layers and parameter counts are the original's (tests assert them),
so it stands in for the original code, which cannot run here (GPU-only, TF1 imports).

Candidate: `sf2f.models.optimize.optimize_for_inference` (BatchNorm folded into the convs, each up-block as four 2x2
sub-pixel convs on the small image, the decoders in channels-last memory) under `torch.inference_mode()`. Both compute the same function (tests check 1e-4).

Besides the ratio table, `run` prints our absolute times beside the original's (docs/original_timings.md, 2 threads,
median of 10), for orientation only: absolute times drift with the machine's load. Batch-64 CPU timings also swing
with the memory allocator's state; `THP_MEM_ALLOC_ENABLE=1` in the environment steadies them (both sides alike).
"""

from __future__ import annotations

import torch

from benchmarks.harness import Comparison, compare
from sf2f.config import load_config
from sf2f.models import build_generator
from sf2f.models.optimize import optimize_for_inference

#: the original's inference times here (docs/original_timings.md), seconds: (config, batch, segments) -> time
ANCHORS: dict[tuple[str, int, int], float] = {
    ("sf2f_1st_stage", 1, 0): 0.017,
    ("sf2f_1st_stage", 64, 0): 0.93,
    ("sf2f_mid_1st_stage", 1, 0): 0.023,
    ("sf2f_mid_1st_stage", 64, 0): 1.47,
    ("v2f", 1, 0): 0.038,
    ("v2f", 64, 0): 0.58,
    ("sf2f_fuser", 1, 20): 0.034,
}


def _inputs(batch: int, segments: int) -> torch.Tensor:
    shape = (batch, segments, 40, 125) if segments else (batch, 40, 125)
    return torch.randn(*shape)


def run(repeats: int = 10) -> list[Comparison]:
    torch.manual_seed(0)
    results: list[Comparison] = []
    models: dict[str, tuple[torch.nn.Module, torch.nn.Module]] = {}
    for (name, batch, segments), anchor in ANCHORS.items():
        if name not in models:
            reference_model = build_generator(load_config(name)).eval()
            models[name] = reference_model, optimize_for_inference(reference_model)
        reference_model, fast_model = models[name]
        mel = _inputs(batch, segments)

        def reference(model: torch.nn.Module = reference_model, x: torch.Tensor = mel) -> None:
            with torch.no_grad():
                model(x)

        def candidate(model: torch.nn.Module = fast_model, x: torch.Tensor = mel) -> None:
            with torch.inference_mode():
                model(x)

        what = f"{segments} segments" if segments else f"batch {batch}"
        result = compare(f"inference {name}, {what}", candidate, reference, repeats=repeats,
                         candidate_label="optimised", reference_label="straightforward")
        results.append(result)
        print(f"{result.name}: ours {1e3 * result.candidate_median:.1f} ms (straightforward "
              f"{1e3 * result.reference_median:.1f} ms); original here {1e3 * anchor:.0f} ms "
              f"[{torch.get_num_threads()} threads]", flush=True)
    return results
