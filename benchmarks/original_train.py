"""The original SF2F training iteration written plainly (recipe §3.1, §3.2), the baseline of bench_train.py.

It runs the same networks and losses as `sf2f.train.iteration.TrainingStep`, with what the original does differently:

* FaceNet's weights are left trainable, so the generator's backward pass also computes their gradients (never used);
* the real faces' FaceNet hidden states are recomputed at every iteration (under no_grad), although they never change;
* the discriminators' weights get gradients during the generator's pass too (zeroed before their own step).

Written from the description in docs/original_recipe.md; no code is copied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from sf2f.config import LossConfig
from sf2f.losses import gan_discriminator_loss, gan_generator_loss, multiscale_targets
from sf2f.models.discriminators import Discriminators
from sf2f.models.face_embedders import FaceEmbedder, embedder_input
from sf2f.models.generator import Generator

__all__ = ["original_training_step"]


def _facenet_loss(facenet: FaceEmbedder, fake: Tensor, real: Tensor, weights: Sequence[float]) -> Tensor:
    """§3.1: de-normalise, standardise, VGG box, resize; hidden states of both; the target's under no_grad."""
    fake_states = facenet.hidden_states(embedder_input(fake, facenet.input_size))
    with torch.no_grad():
        real_states = facenet.hidden_states(embedder_input(real, facenet.input_size))
    return sum(w * F.l1_loss(f, r) for w, f, r in zip(weights, fake_states, real_states))


def original_training_step(
    batch: Mapping[str, Tensor],
    generator: Generator,
    discriminators: Discriminators,
    facenet: FaceEmbedder,
    g_optimizer: torch.optim.Optimizer,
    d_optimizers: Sequence[torch.optim.Optimizer],
    loss: LossConfig,
) -> float:
    """One iteration the original's way; returns the generator's total loss."""
    labels = batch["label"]
    fakes = generator(batch["mel"]).images
    reals = multiscale_targets(batch["image"], [f.shape[-1] for f in fakes])
    total = torch.zeros(())
    for i, (fake, real) in enumerate(zip(fakes, reals)):
        total = total + loss.l1_weight * F.l1_loss(fake, real)
        if i < len(discriminators.image):
            weight = loss.d_loss_weight * loss.d_img_weight
            total = total + weight * gan_generator_loss(discriminators.image[i](fake))
        out = discriminators.ac[i](fake)
        weight = loss.d_loss_weight * loss.ac_loss_weight
        total = total + weight * (F.cross_entropy(out.id_logits, labels) + gan_generator_loss(out.real_logits))
    for fake, real in zip(fakes, reals):
        total = total + loss.perceptual_weight * _facenet_loss(facenet, fake, real, loss.perceptual_layer_weights)
    g_optimizer.zero_grad()
    total.backward()
    g_optimizer.step()
    d_loss = torch.zeros(())
    for i, d in enumerate(discriminators.image):
        fake_logits, real_logits = d(fakes[i].detach()), d(reals[i])
        d_loss = d_loss + gan_discriminator_loss(real_logits, fake_logits)
    for i, d in enumerate(discriminators.ac):
        fake, real = d(fakes[i].detach()), d(reals[i])
        d_loss = d_loss + gan_discriminator_loss(real.real_logits, fake.real_logits)
        d_loss = d_loss + F.cross_entropy(real.id_logits, labels)
    for optimizer in d_optimizers:
        optimizer.zero_grad()
    d_loss.backward()
    for optimizer in d_optimizers:
        optimizer.step()
    return float(total.detach())
