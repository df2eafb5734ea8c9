"""Training losses of SF2F and voice2face (reference §3.1, weights in §3.3).

Adversarial losses take raw discriminator logits, whatever their shape (a patch discriminator gives a map of
logits, the AC discriminator one logit per image), and average over every logit, as the original does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["GanType", "gan_generator_loss", "gan_discriminator_loss", "multiscale_targets", "l1_pixel_losses"]

GanType = Literal["gan", "lsgan", "wgan"]


def gan_generator_loss(fake_logits: Tensor, gan_type: GanType = "gan") -> Tensor:
    """The generator's adversarial loss on the discriminator's logits for generated images.

    `gan`: non-saturating BCE against "real" (the original's choice for every config); `lsgan`: sigmoid, then MSE
    against 1 (as the original implements it); `wgan`: minus the mean critic score.
    """
    if gan_type == "gan":
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
    if gan_type == "lsgan":
        return F.mse_loss(torch.sigmoid(fake_logits), torch.ones_like(fake_logits))
    if gan_type == "wgan":
        return -fake_logits.mean()
    raise ValueError(f"unknown gan_type '{gan_type}' (gan, lsgan or wgan)")


def gan_discriminator_loss(real_logits: Tensor, fake_logits: Tensor, gan_type: GanType = "gan") -> Tensor:
    """The discriminator's loss: real images towards 1, generated ones towards 0 (summed, as in §3.2 step 3)."""
    if gan_type == "gan":
        real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
        fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        return real + fake
    if gan_type == "lsgan":
        real = F.mse_loss(torch.sigmoid(real_logits), torch.ones_like(real_logits))
        fake = F.mse_loss(torch.sigmoid(fake_logits), torch.zeros_like(fake_logits))
        return real + fake
    if gan_type == "wgan":
        return fake_logits.mean() - real_logits.mean()
    raise ValueError(f"unknown gan_type '{gan_type}' (gan, lsgan or wgan)")


def multiscale_targets(target: Tensor, sizes: Sequence[int]) -> list[Tensor]:
    """The real image at each output size of a multi-resolution generator.

    The original makes the 64 px target by *nearest* down-sampling of the 128 px tensor with scale 0.5 (§2.5), not by
    a fresh resize of the source photo; nearest interpolation to the exact size does the same for any factor of 2.
    """
    full = target.shape[-1]
    out = []
    for size in sizes:
        if size > full or full % size:
            raise ValueError(f"cannot make a {size} px target from a {full} px image (need a divisor of {full})")
        out.append(target if size == full else F.interpolate(target, size=(size, size), mode="nearest"))
    return out


def l1_pixel_losses(preds: Sequence[Tensor], target: Tensor) -> list[Tensor]:
    """Mean absolute error per output scale, in ImageNet-normalised image space (§3.1 "L1 pixel").

    Each scale carries the same weight in the original (`L1_pixel_loss_{i}`); the caller applies it.
    """
    targets = multiscale_targets(target, [p.shape[-1] for p in preds])
    return [F.l1_loss(p, t) for p, t in zip(preds, targets)]
