"""The losses of one training iteration, in the order of recipe §3.2, and the real faces' perceptual targets.

* :func:`generator_terms` and :func:`perceptual_terms`: what the generator minimises (step 2): L1 per scale (weight
  `l1_weight`), the image discriminators' GAN loss (`d_loss_weight * d_img_weight`), the AC discriminators'
  cross-entropy on the fakes *and* their GAN loss (both `d_loss_weight * ac_loss_weight`), the perceptual loss per
  scale (`perceptual_weight`).
* :class:`DiscriminatorObjective`: what the discriminators minimise (steps 3 and 4): per scale, the image
  discriminator's GAN loss on the detached fakes and the (downsampled) reals, the AC discriminator's GAN loss plus its
  cross-entropy on the reals only; all with weight 1 unless `scale_discriminator_update` (§6 item 14). Fakes and reals
  go through each discriminator in separate calls, fakes first (sg2im's order), so BatchNorm sees one kind at a time.
  It is an `nn.Module` so that DistributedDataParallel can wrap all discriminators at once: one forward, one backward.
* :class:`PerceptualTargets`: the real faces' hidden states, computed once before training (in a fixed order, so the
  values never depend on which batch a face first appeared in, which keeps resumes exact) and kept in float16 up to a
  memory budget; faces beyond the budget are recomputed in their batch, as the original does for all of them.

Each term is logged under a name that ends with its scale's image size (`l1_64`, `perceptual_128`, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sf2f.config import LossConfig
from sf2f.data.cache import PreparedSplit
from sf2f.faces import normalize_images
from sf2f.losses import (
    FeatureCache,
    PerceptualLoss,
    gan_discriminator_loss,
    gan_generator_loss,
    multiscale_targets,
)
from sf2f.models.discriminators import Discriminators

__all__ = [
    "DiscriminatorObjective",
    "PerceptualTargets",
    "Term",
    "generator_terms",
    "perceptual_terms",
    "weighted_total",
]


class Term(NamedTuple):
    """One loss term: its log name, its weight in the total, its (unweighted) value."""

    name: str
    weight: float
    value: Tensor


def weighted_total(terms: Sequence[Term]) -> Tensor:
    return torch.stack([t.weight * t.value.float() for t in terms]).sum()


class PerceptualTargets:
    """Perceptual-loss targets of real faces, one :class:`FeatureCache` per output scale, keyed by
    :func:`sf2f.data.datasets.face_keys` (face row, mirrored or not)."""

    def __init__(self, loss: PerceptualLoss, sizes: Sequence[int], budget_bytes: int) -> None:
        self.loss = loss
        self.sizes = tuple(sizes)
        self.caches = [FeatureCache(budget_bytes // len(self.sizes)) for _ in self.sizes]

    @torch.no_grad()
    def fill(
        self,
        split: PreparedSplit,
        image_norm: str,
        hflip: bool,
        device: torch.device,
        chunk: int = 64,
    ) -> int:
        """Compute the targets of every face of the split's identities (and their mirror images when the training
        flips faces), in face-row order, until the budget is spent. Returns how many faces are cached."""
        if not len(split) or not self.caches[0].max_bytes:
            return 0
        rows = np.arange(split.face_rows(0).start, split.face_rows(len(split) - 1).stop)
        attempted = 0
        for flipped in (False, True) if hflip else (False,):
            for start in range(0, len(rows), chunk):
                part = rows[start : start + chunk]
                pixels = np.asarray(split.face_pixels[part])
                images = normalize_images(pixels[:, :, ::-1] if flipped else pixels, image_norm).to(device)
                keys = [int(r) * 2 + flipped for r in part]
                for cache, real in zip(self.caches, multiscale_targets(images, self.sizes)):
                    cache.put(keys, self.loss.target_features(real))
                attempted += len(keys)
                if min(len(c) for c in self.caches) < attempted:  # the budget ran out
                    return min(len(c) for c in self.caches)
        return attempted

    def __call__(self, scale: int, real: Tensor, keys: Sequence[int]) -> list[Tensor]:
        """The targets of a batch at one scale: from the cache when every face is in it, else computed; float32
        either way (outside any autocast, as :meth:`fill` computed them)."""
        with torch.autocast(real.device.type, enabled=False):
            cached = self.caches[scale].get(keys, real.device)
            return cached if cached is not None else self.loss.target_features(real)


def generator_terms(
    fakes: Sequence[Tensor],
    reals: Sequence[Tensor],
    labels: Tensor,
    discriminators: Discriminators,
    loss: LossConfig,
    l1_on: bool = True,
    adversarial_on: bool = True,
) -> list[Term]:
    """The generator's pixel and adversarial terms for one batch (§3.2 step 2); `fakes` and `reals` hold one batch
    per scale. The perceptual terms are :func:`perceptual_terms`. `adversarial_on=False` leaves the L1 terms only
    (the pixel warm-up)."""
    terms: list[Term] = []
    adversarial = loss.d_loss_weight * loss.d_img_weight
    auxiliary = loss.d_loss_weight * loss.ac_loss_weight
    for i, (fake, real) in enumerate(zip(fakes, reals)):
        size = fake.shape[-1]
        if l1_on and loss.l1_weight > 0:
            terms.append(Term(f"l1_{size}", loss.l1_weight, F.l1_loss(fake, real)))
        if not adversarial_on:
            continue
        if i < len(discriminators.image):
            logits = discriminators.image[i](fake)
            terms.append(Term(f"g_gan_img_{size}", adversarial, gan_generator_loss(logits.float(), loss.gan_type)))
        out = discriminators.ac[i](fake)
        terms.append(Term(f"g_ac_ce_{size}", auxiliary, F.cross_entropy(out.id_logits.float(), labels)))
        terms.append(Term(f"g_gan_ac_{size}", auxiliary, gan_generator_loss(out.real_logits.float(), loss.gan_type)))
    return terms


def perceptual_terms(
    fakes: Sequence[Tensor], reals: Sequence[Tensor], keys: Sequence[int], targets: PerceptualTargets, loss: LossConfig
) -> list[Term]:
    """The perceptual term of every scale, each with weight `perceptual_weight` (§3.1)."""
    if loss.perceptual_weight <= 0:
        return []
    return [
        Term(f"perceptual_{fake.shape[-1]}", loss.perceptual_weight, targets.loss(fake, targets(i, real, keys)))
        for i, (fake, real) in enumerate(zip(fakes, reals))
    ]


class DiscriminatorObjective(nn.Module):
    """The discriminators' loss terms (§3.2 steps 3 and 4) as a module around :class:`Discriminators`."""

    def __init__(self, discriminators: Discriminators, loss: LossConfig) -> None:
        super().__init__()
        self.discriminators = discriminators
        self.gan_type = loss.gan_type
        scaled = loss.scale_discriminator_update
        self.image_weight = loss.d_loss_weight * loss.d_img_weight if scaled else 1.0
        self.ac_weight = loss.d_loss_weight * loss.ac_loss_weight if scaled else 1.0

    def forward(self, reals: Sequence[Tensor], fakes: Sequence[Tensor], labels: Tensor) -> list[Term]:
        terms: list[Term] = []
        for i, d in enumerate(self.discriminators.image):
            fake_logits, real_logits = d(fakes[i]), d(reals[i])
            value = gan_discriminator_loss(real_logits.float(), fake_logits.float(), self.gan_type)
            terms.append(Term(f"d_img_{reals[i].shape[-1]}", self.image_weight, value))
        for i, d in enumerate(self.discriminators.ac):
            size = reals[i].shape[-1]
            fake, real = d(fakes[i]), d(reals[i])
            value = gan_discriminator_loss(real.real_logits.float(), fake.real_logits.float(), self.gan_type)
            terms.append(Term(f"d_ac_gan_{size}", self.ac_weight, value))
            terms.append(Term(f"d_ac_ce_real_{size}", self.ac_weight, F.cross_entropy(real.id_logits.float(), labels)))
        return terms
