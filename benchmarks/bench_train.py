"""One training iteration (generator + every discriminator: forward, losses, backward, Adam), batch 16, on the CPU.

Candidate: `sf2f.train.step.TrainingStep` as the trainer runs it: FaceNet frozen, the real faces' perceptual targets
cached (the trainer fills the cache before training), the discriminators' weights frozen during the generator's pass.
Reference: `benchmarks.original_train.original_training_step`, the same networks and losses the original's way
(FaceNet trainable, real-face features recomputed every iteration, discriminator gradients in the generator's pass).
FaceNet is InceptionResnetV1 with random weights (the VGGFace2 file is not needed to time it; the sizes are the
same). Networks at full width, mel (16, 40, 125), 3,200 identities in the AC heads (about the paper's training split).

Goal (issue 6): our SF2F-64 step takes at most 0.8x the reference's. Besides the ratio, `run` prints each side's
phases and the original's times on this kind of machine (docs/original_timings.md: 1.62 s for SF2F-64, 4.20 s for
SF2F-128, 2 threads), for orientation only.
"""

from __future__ import annotations

import copy
import statistics

import torch
from facenet_pytorch import InceptionResnetV1

from benchmarks.harness import Comparison, compare
from benchmarks.original_train import original_training_step
from sf2f.config import ExperimentConfig, load_config
from sf2f.data.datasets import face_keys
from sf2f.losses import PerceptualLoss, multiscale_targets
from sf2f.models import build_discriminators, build_generator
from sf2f.models.discriminators import Discriminators
from sf2f.models.face_embedders import FaceNetEmbedder
from sf2f.models.generator import Generator
from sf2f.train.objectives import DiscriminatorObjective, PerceptualTargets
from sf2f.train.step import PhaseTimer, TrainingStep

#: the original's median seconds per step here (docs/original_timings.md) and its phases
ANCHORS: dict[str, tuple[float, dict[str, float]]] = {
    "sf2f_1st_stage": (1.62, {"g_forward": 0.15, "perceptual": 0.49, "g_backward_step": 0.82, "d_steps": 0.14}),
    "sf2f_mid_1st_stage": (4.20, {"g_forward": 0.20, "perceptual": 1.04, "g_backward_step": 1.82, "d_steps": 0.90}),
}
BATCH, IDENTITIES, THREADS = 16, 3200, 2


def synthetic_batch(size: int, batch: int = BATCH, identities: int = IDENTITIES) -> dict[str, torch.Tensor]:
    """A seeded stage-1 batch of random mels (40 x 125) and faces (`size` pixels), as the collate would give."""
    g = torch.Generator().manual_seed(1)
    return {
        "mel": torch.randn(batch, 40, 125, generator=g),
        "image": torch.randn(batch, 3, size, size, generator=g).clamp(-2, 2),
        "label": torch.randint(0, identities, (batch,), generator=g),
        "face_row": torch.arange(batch),
        "flipped": torch.zeros(batch, dtype=torch.bool),
    }


def _adam(cfg: ExperimentConfig, params) -> torch.optim.Adam:  # noqa: ANN001
    return torch.optim.Adam(params, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas))


def our_step(cfg: ExperimentConfig, generator: Generator, discriminators: Discriminators, facenet: FaceNetEmbedder,
             batch: dict[str, torch.Tensor]) -> TrainingStep:
    """sf2f's iteration over these networks, on the device they are on, as the trainer sets it up: FaceNet frozen and
    the real faces' perceptual targets of `batch` cached (keys as `face_keys` makes them)."""
    device = next(generator.parameters()).device
    loss = PerceptualLoss(facenet, cfg.loss.perceptual_layer_weights)
    targets = PerceptualTargets(loss, generator.image_sizes, 1 << 30)
    keys = face_keys(batch)
    for scale, real in enumerate(multiscale_targets(batch["image"].to(device), list(generator.image_sizes))):
        targets.caches[scale].put(keys, loss.target_features(real))
    return TrainingStep(cfg, generator, discriminators, generator, DiscriminatorObjective(discriminators, cfg.loss),
                        _adam(cfg, generator.parameters()),
                        [_adam(cfg, d.parameters()) for d in [*discriminators.image, *discriminators.ac]], targets)


def _sides(name: str):
    """(our step, the reference step, their timers): both from the same initial weights."""
    cfg = load_config(name)
    torch.manual_seed(0)
    generator = build_generator(cfg).train()
    discriminators = build_discriminators(cfg, IDENTITIES).train()
    facenet = FaceNetEmbedder(InceptionResnetV1(pretrained=None)).eval()
    batch = synthetic_batch(cfg.data.image_size)
    ours = our_step(cfg, copy.deepcopy(generator), copy.deepcopy(discriminators), copy.deepcopy(facenet), batch)
    ours_timer, reference_timer = PhaseTimer(), PhaseTimer()
    d_optimizers = [_adam(cfg, d.parameters()) for d in [*discriminators.image, *discriminators.ac]]
    g_optimizer = _adam(cfg, generator.parameters())

    def candidate() -> None:
        ours(batch, timer=ours_timer)

    def reference() -> None:
        original_training_step(batch, generator, discriminators, facenet, g_optimizer, d_optimizers, cfg.loss,
                               reference_timer)

    return candidate, reference, ours_timer, reference_timer


def _phases(timer: PhaseTimer, calls: int) -> str:
    return ", ".join(f"{k} {v / calls:.2f}" for k, v in timer.seconds.items())


def run(repeats: int = 10) -> list[Comparison]:
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    results = []
    try:
        for name, (anchor, anchor_phases) in ANCHORS.items():
            candidate, reference, ours_timer, reference_timer = _sides(name)
            warmup = 2
            result = compare(f"train step {name}, batch {BATCH}", candidate, reference, repeats=repeats, warmup=warmup,
                             candidate_label="sf2f", reference_label="original's way")
            results.append(result)
            calls = repeats + warmup
            print(f"{result.name}: ours {result.candidate_median:.2f} s/step [{_phases(ours_timer, calls)}]; "
                  f"the original's way {result.reference_median:.2f} s [{_phases(reference_timer, calls)}]; "
                  f"ratio {result.ratio:.2f}; the original measured here: {anchor:.2f} s "
                  f"[{', '.join(f'{k} {v:.2f}' for k, v in anchor_phases.items())}] ({THREADS} threads; "
                  f"spread of ours {statistics.pstdev(result.candidate):.2f} s)", flush=True)
    finally:
        torch.set_num_threads(threads)
    return results
