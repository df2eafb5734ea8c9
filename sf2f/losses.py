"""Training losses of SF2F and voice2face (recipe §3.1, weights in §3.3), put together in :mod:`sf2f.train.iteration`.
Adversarial losses average over every logit (a patch map or one per image), as the original does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sf2f.models.face_embedders import FaceEmbedder, embedder_input

GanType = Literal["gan", "lsgan", "wgan"]


def _towards(logits: Tensor, target: float, gan_type: GanType) -> Tensor:
    """`gan`: BCE of the logits against `target`; `lsgan`: MSE of their sigmoid (as the original implements it)."""
    if gan_type == "gan":
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))
    if gan_type == "lsgan":
        return F.mse_loss(torch.sigmoid(logits), torch.full_like(logits, target))
    raise ValueError(f"unknown gan_type '{gan_type}' (gan, lsgan or wgan)")


def gan_generator_loss(fake_logits: Tensor, gan_type: GanType = "gan") -> Tensor:
    """The generator's adversarial loss: generated images towards "real" (non-saturating, the original's choice for
    every config), or minus the mean critic score (`wgan`)."""
    return -fake_logits.mean() if gan_type == "wgan" else _towards(fake_logits, 1.0, gan_type)


def gan_discriminator_loss(real_logits: Tensor, fake_logits: Tensor, gan_type: GanType = "gan") -> Tensor:
    """The discriminator's loss: real images towards 1, generated ones towards 0 (summed, as in §3.2 step 3)."""
    if gan_type == "wgan":
        return fake_logits.mean() - real_logits.mean()
    return _towards(real_logits, 1.0, gan_type) + _towards(fake_logits, 0.0, gan_type)


def multiscale_targets(target: Tensor, sizes: Sequence[int]) -> list[Tensor]:
    """The real image at each output size of a multi-resolution generator: *nearest* down-sampling of the full-size
    tensor, as the original makes its 64 px target from the 128 px one (§2.5), not a fresh resize of the photo."""
    full = target.shape[-1]
    out = []
    for size in sizes:
        if size > full or full % size:
            raise ValueError(f"cannot make a {size} px target from a {full} px image (need a divisor of {full})")
        out.append(target if size == full else F.interpolate(target, size=(size, size), mode="nearest"))
    return out


class PerceptualLoss(nn.Module):
    """The FaceNet perceptual loss of SF2F (§3.1): sum_k w_k * mean|h_k(pred) - h_k(real)| over the frozen embedder's
    hidden states [repeat_1, repeat_2, repeat_3, embedding], w = [1/16, 1/8, 1/4, 1]. Real faces never change, so
    their features can be computed once (:meth:`target_features`); the original recomputed them at every step."""

    def __init__(self, embedder: FaceEmbedder, layer_weights: Sequence[float] = (0.0625, 0.125, 0.25, 1.0),
                 image_norm: Literal["imagenet", "standard"] = "imagenet") -> None:
        super().__init__()
        self.embedder = embedder.freeze()
        self.layer_weights = tuple(float(w) for w in layer_weights)
        self.image_norm = image_norm

    def train(self, mode: bool = True) -> PerceptualLoss:
        # the embedder stays in eval mode whatever the trainer switches (dropout and BatchNorm frozen, §3.1)
        super().train(mode)
        self.embedder.eval()
        return self

    def features(self, images: Tensor) -> list[Tensor]:
        """Hidden states of generator-space images (differentiable with respect to the images)."""
        return self.embedder.hidden_states(embedder_input(images, self.embedder.input_size, self.image_norm))

    @torch.no_grad()
    def target_features(self, images: Tensor) -> list[Tensor]:
        return self.features(images)

    def forward(self, pred: Tensor, target: Sequence[Tensor]) -> Tensor:
        return sum(w * F.l1_loss(p, t) for w, p, t in zip(self.layer_weights, self.features(pred), target, strict=True))
