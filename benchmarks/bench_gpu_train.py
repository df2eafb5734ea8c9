"""Training throughput on a GPU: images per second of one training iteration, fp32 against bf16 autocast.

Issue 6 asks for images per second in fp32 and with bf16 autocast where a GPU is available. The iteration is
sf2f's `TrainingStep` as the trainer runs it (the generator, every discriminator, the perceptual loss through a frozen
FaceNet with the real faces' targets cached, Adam), at the paper's width and batch (256), for SF2F-64 and SF2F-128.
Candidate: `run.amp: bf16`; reference: fp32 as PyTorch runs it by default (cuDNN may pick TF32 convolutions; matrix
products stay fp32). Both sides start from the same weights and alternate, as every benchmark here does.

Without a CUDA device it prints why and times nothing (CI has none). Nothing here is a goal; the figures belong in
notes beside the card they were measured on.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from facenet_pytorch import InceptionResnetV1

from benchmarks.bench_train import IDENTITIES, our_step, synthetic_batch
from benchmarks.harness import Comparison, compare
from sf2f.config import load_config
from sf2f.models import build_discriminators, build_generator
from sf2f.models.face_embedders import FaceNetEmbedder

CONFIGS, BATCH = ("sf2f_1st_stage", "sf2f_mid_1st_stage"), 256


def _timed_step(name: str, amp: str, device: torch.device, weights: tuple) -> Callable[[], None]:
    """A callable running one iteration on copies of `weights` (and waiting for the GPU to finish it)."""
    cfg = load_config(name, overrides=[f"run.amp={amp}"])
    generator, discriminators, facenet = (copy.deepcopy(m).to(device) for m in weights)
    batch = synthetic_batch(cfg.data.image_size, BATCH, IDENTITIES)
    step = our_step(cfg, generator, discriminators, facenet, batch)

    def call() -> None:
        step(batch)
        torch.cuda.synchronize(device)

    return call


def run(repeats: int = 10) -> list[Comparison]:
    if not torch.cuda.is_available():
        print("bench_gpu_train: torch sees no CUDA device here, nothing timed", flush=True)
        return []
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True  # the fastest kernels for these fixed shapes, as a long run would pick
    results = []
    for name in CONFIGS:
        cfg = load_config(name)
        torch.manual_seed(0)
        weights = (build_generator(cfg).train(), build_discriminators(cfg, IDENTITIES).train(),
                   FaceNetEmbedder(InceptionResnetV1(pretrained=None)).eval())
        bf16, fp32 = _timed_step(name, "bf16", device, weights), _timed_step(name, "none", device, weights)
        torch.cuda.reset_peak_memory_stats(device)
        result = compare(f"GPU train step {name}, batch {BATCH}", bf16, fp32, repeats=repeats, warmup=3,
                         candidate_label="bf16 autocast", reference_label="fp32")
        results.append(result)
        peak = torch.cuda.max_memory_allocated(device) / 2**30
        print(f"{result.name} on {torch.cuda.get_device_name(device)}: fp32 {BATCH / result.reference_median:,.0f} "
              f"images/s ({result.reference_median * 1e3:.1f} ms/step), bf16 autocast "
              f"{BATCH / result.candidate_median:,.0f} images/s ({result.candidate_median * 1e3:.1f} ms/step), "
              f"speed-up {result.speedup:.2f}x; peak GPU memory of both sides {peak:.1f} GiB", flush=True)
        del bf16, fp32
        torch.cuda.empty_cache()
    return results
