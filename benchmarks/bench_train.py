"""One training iteration (generator + every discriminator: forward, losses, backward, Adam), batch 16, on the CPU.

Candidate: `sf2f.train.iteration.TrainingStep` as the trainer runs it: FaceNet frozen, the real faces' perceptual
targets cached (the trainer fills the cache before training), the discriminators' weights frozen during the generator's pass.
Reference: `benchmarks.original_train.original_training_step`, the same networks and losses the original's way
(FaceNet trainable, real-face features recomputed every iteration, discriminator gradients in the generator's pass).
FaceNet is InceptionResnetV1 with random weights (the VGGFace2 file is not needed to time it; the sizes are the
same). Networks at full width, mel (16, 40, 125), 3,200 identities in the AC heads (about the paper's training split).

Goal (issue 6): our SF2F-64 step takes at most 0.8x the reference's. Besides the ratio, `run` prints each side's
phases and the original's times on this kind of machine (docs/original_timings.md: 1.62 s for SF2F-64, 4.20 s for
SF2F-128, 2 threads), for orientation only. The phases are read from outside both steps (:class:`PhaseClock`), through
the public hooks of the modules and optimisers they share.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections import defaultdict
from collections.abc import Callable

import torch
from facenet_pytorch import InceptionResnetV1

from benchmarks.harness import Comparison, compare
from benchmarks.original_train import original_training_step
from sf2f.config import ExperimentConfig, load_config
from sf2f.data.datasets import face_keys
from sf2f.losses import PerceptualLoss
from sf2f.models import build_discriminators, build_generator
from sf2f.models.discriminators import Discriminators
from sf2f.models.face_embedders import FaceNetEmbedder
from sf2f.models.generator import Generator
from sf2f.train.iteration import PerceptualTargets, TrainingStep

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
    targets.add(batch["image"].to(device), face_keys(batch))
    return TrainingStep(cfg, generator, discriminators, _adam(cfg, generator.parameters()),
                        [_adam(cfg, d.parameters()) for d in discriminators.image],
                        [_adam(cfg, d.parameters()) for d in discriminators.ac], targets)


class PhaseClock:
    """Seconds per phase of training iterations, read from outside through public hooks (on the CPU: no waiting for
    a device). Each event starts a phase; the time since the previous event goes to the phase it ends.

    `g_forward` starts with the call, `g_losses` when G's forward returns, `perceptual` when FaceNet's first stage
    starts, `g_backward_step` (the weighted sum, backward and Adam) when its last stage returns, `d_steps` when G's
    optimiser has stepped; the phase in progress ends with the call.
    """

    def __init__(self, generator: Generator, facenet: FaceNetEmbedder, g_optimizer: torch.optim.Optimizer) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.phase, self.since = "", 0.0
        generator.register_forward_hook(lambda *_: self.start("g_losses"))
        facenet.net.conv2d_1a.register_forward_pre_hook(lambda *_: self.start("perceptual"))
        facenet.net.last_bn.register_forward_hook(lambda *_: self.start("g_backward_step"))
        g_optimizer.register_step_post_hook(lambda *_: self.start("d_steps"))

    def start(self, phase: str) -> None:
        now = time.perf_counter()
        if self.phase:
            self.seconds[self.phase] += now - self.since
        self.phase, self.since = phase, now

    def timed(self, step: Callable[[], object]) -> Callable[[], None]:
        """`step` wrapped so that its calls are timed by phase."""

        def call() -> None:
            self.start("g_forward")
            step()
            self.start("")

        return call

    def summary(self, calls: int) -> str:
        return ", ".join(f"{k} {v / calls:.2f}" for k, v in self.seconds.items())


def _sides(name: str):
    """(our step, the reference step, their phase clocks): both from the same initial weights."""
    cfg = load_config(name)
    torch.manual_seed(0)
    generator = build_generator(cfg).train()
    discriminators = build_discriminators(cfg, IDENTITIES).train()
    facenet = FaceNetEmbedder(InceptionResnetV1(pretrained=None)).eval()
    batch = synthetic_batch(cfg.data.image_size)
    ours = our_step(cfg, copy.deepcopy(generator), copy.deepcopy(discriminators), copy.deepcopy(facenet), batch)
    d_optimizers = [_adam(cfg, d.parameters()) for d in [*discriminators.image, *discriminators.ac]]
    g_optimizer = _adam(cfg, generator.parameters())
    ours_clock = PhaseClock(ours.generator, ours.perceptual.loss.embedder, ours.g_optimizer)
    reference_clock = PhaseClock(generator, facenet, g_optimizer)
    candidate = ours_clock.timed(lambda: ours(batch))
    reference = reference_clock.timed(lambda: original_training_step(
        batch, generator, discriminators, facenet, g_optimizer, d_optimizers, cfg.loss))
    return candidate, reference, ours_clock, reference_clock


def run(repeats: int = 10) -> list[Comparison]:
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    results = []
    try:
        for name, (anchor, anchor_phases) in ANCHORS.items():
            candidate, reference, ours_clock, reference_clock = _sides(name)
            warmup = 2
            result = compare(f"train step {name}, batch {BATCH}", candidate, reference, repeats=repeats, warmup=warmup,
                             candidate_label="sf2f", reference_label="original's way")
            results.append(result)
            calls = repeats + warmup
            print(f"{result.name}: ours {result.candidate_median:.2f} s/step [{ours_clock.summary(calls)}]; "
                  f"the original's way {result.reference_median:.2f} s [{reference_clock.summary(calls)}]; "
                  f"ratio {result.ratio:.2f}; the original measured here: {anchor:.2f} s "
                  f"[{', '.join(f'{k} {v:.2f}' for k, v in anchor_phases.items())}] ({THREADS} threads; "
                  f"spread of ours {statistics.pstdev(result.candidate):.2f} s)", flush=True)
    finally:
        torch.set_num_threads(threads)
    return results
