"""The generator: voice encoder (+ attention fuser) + face decoder (recipe §2.4, `EncoderDecoder`). Stage 2 trains the
fuser alone (§3.4): :meth:`Generator.freeze_all_but_fuser` also keeps the encoder's and decoder's BatchNorm in eval mode
whatever ``train()`` is called with (the original loses this after its first visualisation step, §6 item 12;
``freeze_batchnorm=False`` reproduces that, for the trainer's ``bn_mode: as_original``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import torch
from torch import Tensor, nn

from sf2f.models.face_decoders import FaceGanDecoder, V2FDecoder
from sf2f.models.face_embedders import eval_mode
from sf2f.models.fuser import AttentionFuser
from sf2f.models.voice_encoders import VoiceEncoder


class GeneratorOutput(NamedTuple):
    """One image batch per output scale, smallest first; the (B, D) embedding; the fuser's attention, or None."""

    images: tuple[Tensor, ...]
    embedding: Tensor
    attention: Tensor | None = None


class Generator(nn.Module):
    """Encoder (+ fuser) + decoder. Input: log-mels (B, F, T), or with a fuser segment stacks (B, N, F, T) with an
    optional mask (B, N) of the real segments; a fuser generator given (B, F, T) fuses one segment per sample."""

    def __init__(self, encoder: VoiceEncoder, decoder: FaceGanDecoder | V2FDecoder,
                 fuser: AttentionFuser | None = None) -> None:
        super().__init__()
        self.encoder, self.fuser, self.decoder = encoder, fuser, decoder
        self.batchnorm_frozen = False

    @property
    def image_sizes(self) -> tuple[int, ...]:
        """Side length of each output scale, smallest first."""
        return self.decoder.image_sizes

    def decode(self, embedding: Tensor) -> tuple[Tensor, ...]:
        """Images, one batch per scale, from embeddings (B, D)."""
        return self.decoder(embedding)

    def forward(self, mel: Tensor, mask: Tensor | None = None) -> GeneratorOutput:
        if self.fuser is None:
            if mel.dim() == 4:
                raise ValueError(f"segment stacks {tuple(mel.shape)} need a generator with a fuser (model.fuser."
                                 "enabled); encode the segments with generator.encoder and average them instead")
            embedding, attention = self.encoder(mel), None
        else:
            embedding, attention = self.fuser(self.encoder(mel.unsqueeze(1) if mel.dim() == 3 else mel, mask), mask)
        return GeneratorOutput(self.decode(embedding), embedding, attention)

    def freeze_all_but_fuser(self, freeze_batchnorm: bool = True) -> list[nn.Parameter]:
        """Stage 2: only the fuser trains; returns its parameters (for the optimiser)."""
        if self.fuser is None:
            raise ValueError("this generator has no fuser to train (model.fuser.enabled is false)")
        for name, param in self.named_parameters():
            param.requires_grad_(name.startswith("fuser."))
        self.batchnorm_frozen = freeze_batchnorm
        self.train(self.training)
        return list(self.fuser.parameters())

    def train(self, mode: bool = True) -> Generator:
        super().train(mode)
        if self.batchnorm_frozen:
            self.encoder.eval()
            self.decoder.eval()
        return self


@contextmanager
def generating(generator: Generator, seed: int) -> Iterator[None]:
    """No gradients, eval mode and torch's generators seeded for the duration, all restored after: a generator that
    adds noise in eval mode (the original v2f's habit, §6 item 13) draws the same noise on every evaluation, and
    evaluating during training never shifts the training's random stream."""
    device = next(generator.parameters()).device
    with torch.no_grad(), eval_mode(generator), torch.random.fork_rng([device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield
