"""One training iteration (recipe §3.2), separate from the loop around it so benchmarks can time it by phase.

Phases, in order: `g_forward` (the generator makes faces), `g_losses` (pixel and adversarial terms, through the
discriminators with their weights frozen), `perceptual` (the perceptual terms against the real faces' targets),
`g_backward_step`, `d_steps` (every discriminator: forward on fakes and reals, backward, Adam).

During the generator's pass the discriminators' weights are frozen: the original computes their gradients and
zeroes them unused, so freezing changes nothing but the time. They stay in train mode, so their BatchNorm statistics
see the fakes as in the original. A non-finite generator loss skips the whole iteration (as the original's
`continue` does) and also restores the BatchNorm statistics that its forward passes changed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
from torch import Tensor, nn

from sf2f.config import ExperimentConfig
from sf2f.data.datasets import face_keys, generator_inputs
from sf2f.losses import multiscale_targets
from sf2f.models.discriminators import Discriminators
from sf2f.models.generator import Generator
from sf2f.train.objectives import PerceptualTargets, generator_terms, perceptual_terms, weighted_total

__all__ = ["PhaseTimer", "TrainingStep"]


class PhaseTimer:
    """Wall-clock seconds of each phase of :class:`TrainingStep`, summed over calls (CUDA is synchronised)."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.seconds: dict[str, float] = defaultdict(float)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        self._sync()
        start = time.perf_counter()
        yield
        self._sync()
        self.seconds[phase] += time.perf_counter() - start


def _untimed(phase: str) -> AbstractContextManager:
    return nullcontext()


class TrainingStep:
    """The networks, optimisers and losses of one iteration; call it with a collated batch.

    `g_forward` and `d_forward` are what is called for the generator and the discriminator objective (the modules
    themselves, or their DDP / compiled wrappers); `generator` and `discriminators` are the plain modules.
    `g_optimizer` may be replaced between calls (the eval-mode switch re-creates it).
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        generator: Generator,
        discriminators: Discriminators,
        g_forward: nn.Module,
        d_forward: nn.Module,
        g_optimizer: torch.optim.Optimizer,
        d_optimizers: Sequence[torch.optim.Optimizer],
        perceptual: PerceptualTargets | None,
    ) -> None:
        self.cfg = cfg
        self.generator = generator
        self.discriminators = discriminators
        self.g_forward = g_forward
        self.d_forward = d_forward
        self.g_optimizer = g_optimizer
        self.d_optimizers = list(d_optimizers)
        self.perceptual = perceptual
        self.device = next(generator.parameters()).device

    def autocast(self) -> AbstractContextManager:
        """bf16 autocast when `run.amp` asks for it (GPU, and CPUs with bf16 support), else nothing."""
        if self.cfg.run.amp == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def __call__(
        self,
        batch: Mapping[str, Tensor],
        l1_on: bool = True,
        adversarial_on: bool = True,
        timer: Callable[[str], AbstractContextManager] = _untimed,
    ) -> dict[str, Tensor] | None:
        """One iteration. Returns the detached loss terms (and totals), or None when it was skipped.

        With `adversarial_on` False (the pixel warm-up, `optim.pixel_warmup_epochs`) the generator minimises its L1
        terms alone and the discriminators are neither run nor updated.
        """
        device, loss = self.device, self.cfg.loss
        voice, mask = generator_inputs(batch, device)
        labels = batch["label"].to(device)
        reals = multiscale_targets(batch["image"].to(device), self.generator.image_sizes)
        buffers = [b for m in (self.generator, self.discriminators) for b in m.buffers()]
        snapshot = [b.clone() for b in buffers] if self.cfg.optim.skip_nonfinite else []
        self.discriminators.requires_grad_(False)
        with self.autocast():
            with timer("g_forward"):
                fakes = [x.float() for x in self.g_forward(voice, mask).images]
            with timer("g_losses"):
                terms = generator_terms(fakes, reals, labels, self.discriminators, loss, l1_on, adversarial_on)
            with timer("perceptual"):
                if self.perceptual is not None and adversarial_on:
                    terms += perceptual_terms(fakes, reals, face_keys(batch), self.perceptual, loss)
        g_total = weighted_total(terms)
        self.discriminators.requires_grad_(True)
        if self.cfg.optim.skip_nonfinite and not torch.isfinite(g_total):
            for buffer, saved in zip(buffers, snapshot):
                buffer.copy_(saved)
            return None
        with timer("g_backward_step"):
            self.g_optimizer.zero_grad(set_to_none=True)
            g_total.backward()
            self.g_optimizer.step()
        values = {t.name: t.value.detach() for t in terms} | {"g_total": g_total.detach()}
        if not adversarial_on:
            return values
        with timer("d_steps"):
            with self.autocast():
                d_terms = self.d_forward(reals, [f.detach() for f in fakes], labels)
            d_total = weighted_total(d_terms)
            for optimizer in self.d_optimizers:
                optimizer.zero_grad(set_to_none=True)
            d_total.backward()
            for optimizer in self.d_optimizers:
                optimizer.step()
        return values | {t.name: t.value.detach() for t in d_terms} | {"d_total": d_total.detach()}
