"""One SF2F training iteration (recipe §3.2), top to bottom in :meth:`TrainingStep.__call__`, and the schedule (§3.4).
Changes from the original change only the time: the discriminators are frozen during G's pass (still in train mode, so
their BatchNorm sees the fakes as in the original) and the real faces' perceptual targets are cached. A non-finite G
loss skips the iteration (the original's `continue`) and also undoes its BatchNorm statistics updates."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sf2f.config import ExperimentConfig, OptimConfig
from sf2f.data.datasets import face_keys, generator_inputs
from sf2f.data.prepared import PreparedSplit
from sf2f.faces import normalize_images
from sf2f.losses import PerceptualLoss, gan_discriminator_loss, gan_generator_loss, multiscale_targets
from sf2f.models.discriminators import Discriminators
from sf2f.models.face_embedders import FaceEmbedder
from sf2f.models.generator import Generator


# the schedule's switches fire at fixed epochs (§3.4; in the paper's 12,000 epochs the decay and the generator's eval
# mode both start at 10,000, though the original's help calls the decay disabled)
def learning_rate(optim: OptimConfig, epoch: int, decays: bool = True) -> float:
    """The learning rate for `epoch` (0-based): lr0 = `lr * lr_scale`, from `decay_lr_after_epochs` on decaying
    linearly towards `decay_lr_final_ratio * lr0` as the original computes it; `decays=False` keeps lr0 (the original
    never decays the AC-discriminator optimisers unless `decay_ac_lr`)."""
    lr0 = optim.lr * optim.lr_scale
    start = optim.decay_lr_after_epochs
    if not decays or epoch < start:
        return lr0
    fraction = min(1.0, (epoch - start + 1) / (optim.epochs - start + 1e-5))
    return lr0 - fraction * (lr0 - lr0 * optim.decay_lr_final_ratio)


def eval_mode_now(optim: OptimConfig, epoch: int) -> bool:
    """True from the epoch at which the generator runs with frozen BatchNorm statistics (§3.4 "eval-mode switch")."""
    return epoch >= optim.eval_mode_after_epochs


def l1_enabled(optim: OptimConfig, epoch: int) -> bool:
    """The L1 pixel loss is dropped from `disable_l1_after_epochs` on (never, in every paper config)."""
    return epoch < optim.disable_l1_after_epochs


def adversarial_enabled(optim: OptimConfig, epoch: int) -> bool:
    """The adversarial, AC and perceptual terms and the discriminators' updates run from `pixel_warmup_epochs` on."""
    return epoch >= optim.pixel_warmup_epochs


class Term(NamedTuple):
    """One loss term: its log name, its weight in the total, its (unweighted) value."""

    name: str
    weight: float
    value: Tensor


def weighted_total(terms: Sequence[Term]) -> Tensor:
    return torch.stack([t.weight * t.value.float() for t in terms]).sum()


def adam(params: Iterable[Tensor], lr: float, cfg: ExperimentConfig) -> torch.optim.Adam:
    """The optimiser of every network (§3.4: Adam, betas 0.9/0.999)."""
    return torch.optim.Adam(params, lr=lr, betas=tuple(cfg.optim.betas), weight_decay=cfg.optim.weight_decay)


def _descend(total: Tensor, optimizers: Sequence[torch.optim.Optimizer]) -> None:
    """One step of each optimiser down `total`, with gradients from this total alone."""
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    total.backward()
    for optimizer in optimizers:
        optimizer.step()


@dataclass
class TrainingStep:
    """What one iteration trains, and how; `g_forward`: G or its DDP wrapper; `perceptual`: None without that loss."""

    cfg: ExperimentConfig
    generator: Generator
    discriminators: Discriminators
    g_optimizer: torch.optim.Optimizer
    image_d_optimizers: Sequence[torch.optim.Optimizer]
    ac_d_optimizers: Sequence[torch.optim.Optimizer]
    perceptual: PerceptualTargets | None = None
    g_forward: nn.Module | None = None

    def __post_init__(self) -> None:
        if self.g_forward is None:
            self.g_forward = self.generator

    @property
    def d_optimizers(self) -> list[torch.optim.Optimizer]:
        """Every discriminator's Adam: the image discriminators', then the AC discriminators' (checkpoint order)."""
        return [*self.image_d_optimizers, *self.ac_d_optimizers]

    @classmethod
    def build(cls, cfg: ExperimentConfig, generator: Generator, discriminators: Discriminators,
              embedder: FaceEmbedder | None) -> TrainingStep:
        """The iteration of `cfg` over these networks: the fuser stage freezes all of G but the fuser (§3.4), one Adam
        per network at the first epoch's rate, the perceptual loss through `embedder` (its cache still empty)."""
        if cfg.optim.stage == "fuser":
            g_params = generator.freeze_all_but_fuser(freeze_batchnorm=cfg.optim.bn_mode == "frozen")
        else:
            g_params = list(generator.parameters())
        perceptual, lr = None, learning_rate(cfg.optim, 0)
        if cfg.loss.perceptual_weight > 0:
            loss = PerceptualLoss(embedder, cfg.loss.perceptual_layer_weights, cfg.data.image_norm)
            perceptual = PerceptualTargets(loss, generator.image_sizes, cfg.loss.perceptual_cache_mb << 20)
        return cls(cfg, generator, discriminators, adam(g_params, lr, cfg),
                   [adam(d.parameters(), lr, cfg) for d in discriminators.image],
                   [adam(d.parameters(), lr, cfg) for d in discriminators.ac], perceptual)

    def autocast(self) -> AbstractContextManager:
        """bf16 autocast when `run.amp` asks for it (GPU, and CPUs with bf16 support), else nothing."""
        if self.cfg.run.amp == "bf16":
            return torch.autocast(next(self.generator.parameters()).device.type, dtype=torch.bfloat16)
        return nullcontext()

    def __call__(self, batch: Mapping[str, Tensor], l1_on: bool = True,
                 adversarial_on: bool = True) -> dict[str, Tensor] | None:
        """One iteration: the detached loss terms and totals, or None when it was skipped. `l1_on=False` drops the pixel
        terms (`optim.disable_l1_after_epochs`); `adversarial_on=False` (the pixel warm-up) trains G on L1 alone."""
        loss, d = self.cfg.loss, self.discriminators
        device = next(self.generator.parameters()).device
        voice, mask = generator_inputs(batch, device)
        labels = batch["label"].to(device)
        reals = multiscale_targets(batch["image"].to(device), self.generator.image_sizes)
        buffers = [b for m in (self.generator, d) for b in m.buffers()]
        saved = [b.clone() for b in buffers] if self.cfg.optim.skip_nonfinite else []
        image_weight, ac_weight = loss.d_loss_weight * loss.d_img_weight, loss.d_loss_weight * loss.ac_loss_weight

        # 1. G forward: a face per output scale (64 px, or 64 and 128 px)
        d.requires_grad_(False)  # for G's pass only: the original computes these gradients and zeroes them unused
        with self.autocast():
            fakes = [x.float() for x in self.g_forward(voice, mask).images]

            # 2. G losses, per scale: L1, the image D's GAN loss, the AC D's cross-entropy and GAN loss; then perceptual
            terms: list[Term] = []
            for i, (fake, real) in enumerate(zip(fakes, reals)):
                size = fake.shape[-1]
                if l1_on and loss.l1_weight > 0:
                    terms.append(Term(f"l1_{size}", loss.l1_weight, F.l1_loss(fake, real)))
                if not adversarial_on:
                    continue
                if i < len(d.image):  # voice2face has no image discriminator
                    logits = d.image[i](fake).float()
                    terms.append(Term(f"g_gan_img_{size}", image_weight, gan_generator_loss(logits, loss.gan_type)))
                out = d.ac[i](fake)
                terms.append(Term(f"g_ac_ce_{size}", ac_weight, F.cross_entropy(out.id_logits.float(), labels)))
                gan = gan_generator_loss(out.real_logits.float(), loss.gan_type)
                terms.append(Term(f"g_gan_ac_{size}", ac_weight, gan))
            if self.perceptual is not None and adversarial_on and loss.perceptual_weight > 0:
                keys = face_keys(batch)
                for i, (fake, real) in enumerate(zip(fakes, reals)):
                    value = self.perceptual.loss(fake, self.perceptual(i, real, keys))
                    terms.append(Term(f"perceptual_{fake.shape[-1]}", loss.perceptual_weight, value))
        g_total = weighted_total(terms)
        d.requires_grad_(True)
        if self.cfg.optim.skip_nonfinite and not torch.isfinite(g_total):
            for buffer, value in zip(buffers, saved):
                buffer.copy_(value)
            return None

        # 3. G step
        _descend(g_total, [self.g_optimizer])
        logged = {t.name: t.value.detach() for t in terms} | {"g_total": g_total.detach()}
        if not adversarial_on:
            return logged

        # 4. image discriminators: real faces towards 1, G's (detached) towards 0, in separate calls, fakes first
        # (sg2im's order) so that BatchNorm sees one kind at a time; `scaled`: loss.scale_discriminator_update
        fakes = [f.detach() for f in fakes]
        scaled = loss.scale_discriminator_update
        image_terms: list[Term] = []
        with self.autocast():
            for i, image_d in enumerate(d.image):
                fake_logits, real_logits = image_d(fakes[i]), image_d(reals[i])
                value = gan_discriminator_loss(real_logits.float(), fake_logits.float(), loss.gan_type)
                image_terms.append(Term(f"d_img_{reals[i].shape[-1]}", image_weight if scaled else 1.0, value))
        if image_terms:
            _descend(weighted_total(image_terms), self.image_d_optimizers)

        # 5. AC discriminators: the same GAN loss, plus the identity's cross-entropy on the real faces only
        ac_terms: list[Term] = []
        weight = ac_weight if scaled else 1.0
        with self.autocast():
            for i, ac_d in enumerate(d.ac):
                size = reals[i].shape[-1]
                on_fake, on_real = ac_d(fakes[i]), ac_d(reals[i])
                value = gan_discriminator_loss(on_real.real_logits.float(), on_fake.real_logits.float(), loss.gan_type)
                ac_terms.append(Term(f"d_ac_gan_{size}", weight, value))
                identity = F.cross_entropy(on_real.id_logits.float(), labels)
                ac_terms.append(Term(f"d_ac_ce_real_{size}", weight, identity))
        _descend(weighted_total(ac_terms), self.ac_d_optimizers)
        d_terms = image_terms + ac_terms
        return logged | {t.name: t.value.detach() for t in d_terms} | {"d_total": weighted_total(d_terms).detach()}


class PerceptualTargets:
    """The perceptual loss (`loss`) and its real faces' targets per output scale, keyed by
    :func:`~sf2f.data.datasets.face_keys`. :meth:`fill` computes them before training in face-row order (so a value
    never depends on the batch a face first appeared in: resumes stay exact) and keeps them in float16 on the CPU up
    to `budget_bytes` (about 230 KB per 64 px face for FaceNet); faces beyond it are computed in their batch."""

    def __init__(self, loss: PerceptualLoss, sizes: Sequence[int], budget_bytes: int) -> None:
        self.loss = loss
        self.sizes = tuple(sizes)
        self.budget = budget_bytes // len(self.sizes)
        self.stores: list[dict[int, list[Tensor]]] = [{} for _ in self.sizes]

    def __len__(self) -> int:
        """How many faces have their targets at every scale."""
        return min(len(store) for store in self.stores)

    @torch.no_grad()
    def add(self, images: Tensor, keys: Sequence[int]) -> None:
        """Compute and keep the targets of real faces (full size, normalised) at every scale, while the budget lasts."""
        for scale, real in enumerate(multiscale_targets(images, self.sizes)):
            features, store = self.loss.target_features(real), self.stores[scale]
            for i, key in enumerate(keys):
                if key in store:
                    continue
                item = [f[i].to("cpu", torch.float16) for f in features]
                # every face of a scale has targets of the same shapes, hence of the same size
                if (len(store) + 1) * sum(t.nbytes for t in item) > self.budget:
                    break
                store[key] = item

    def fill(self, split: PreparedSplit, image_norm: str, hflip: bool, device: torch.device, chunk: int = 64) -> int:
        """The targets of every face of the split's identities (and of their mirror images when the training flips
        faces), in face-row order, until the budget is spent. Returns how many faces are stored."""
        if not self.budget:
            return 0
        rows = np.arange(split.face_rows(0).start, split.face_rows(len(split) - 1).stop)
        attempted = 0
        for flipped in (False, True) if hflip else (False,):
            for start in range(0, len(rows), chunk):
                part = rows[start : start + chunk]
                pixels = np.asarray(split.face_pixels[part])
                images = normalize_images(pixels[:, :, ::-1] if flipped else pixels, image_norm).to(device)
                self.add(images, [int(r) * 2 + flipped for r in part])
                attempted += len(part)
                if len(self) < attempted:  # the budget ran out
                    return len(self)
        return attempted

    def __call__(self, scale: int, real: Tensor, keys: Sequence[int]) -> list[Tensor]:
        """The targets of a batch at one scale: stored when every face is, else computed; float32 either way
        (outside any autocast, as :meth:`add` computed them)."""
        store = self.stores[scale]
        with torch.autocast(real.device.type, enabled=False):
            if all(k in store for k in keys):
                layers = zip(*(store[k] for k in keys))
                return [torch.stack(layer).to(device=real.device, dtype=torch.float32) for layer in layers]
            return self.loss.target_features(real)
