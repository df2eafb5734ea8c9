"""Voice encoders: log-mel spectrogram (B, F, T) to one speaker embedding per utterance (recipe §2.1).

Two encoders share one class, :class:`VoiceEncoder`:

* ``kind="cnn"``: the plain 1D CNN of voice2face (Wen et al. 2019) as the SF2F repository re-trains it: four
  stride-2 Conv1d(k3) + BatchNorm + ReLU blocks and a final stride-2 Conv1d to the embedding width.
* ``kind="inception"``: SF2F's 1D-Inception encoder: each block runs four stride-2 branches with kernels 2, 3, 5 and
  7 on the same input and concatenates them, so every block sees the speech at four time scales.

Both end with average pooling over time and (optionally) L2 normalisation. The baseline adds 0.05 N(0, 1) noise to
the normalised embedding and normalises again; the original does that at test time too (recipe §6 item 13), which
makes its outputs random. Here the noise is a training-time regulariser only, unless ``noise_in_eval=True`` (config
``model.encoder.noise_in_eval``) reproduces the original.

Input may also be a batch of segment stacks (B, N, F, T) ("fusion mode", §2.1): every segment is encoded on its own and
the result is (B, N, D). A boolean mask (B, N) marks the real segments of variable-length stacks; padded segments are
not encoded at all (so they cannot touch BatchNorm statistics) and come back as zero rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConvBlock1d", "InceptionBlock1d", "VoiceEncoder", "conv_output_length"]

#: kernel sizes of the four Inception branches, in the order they are concatenated (§2.1)
INCEPTION_KERNELS: tuple[int, ...] = (2, 3, 5, 7)


def conv_output_length(length: int, kernel: int, stride: int = 2, padding: int | None = None) -> int:
    """Output length of a Conv1d; ``padding`` defaults to ``kernel // 2`` as every encoder conv uses."""
    padding = kernel // 2 if padding is None else padding
    return (length + 2 * padding - kernel) // stride + 1


class ConvBlock1d(nn.Sequential):
    """Conv1d (no bias: BatchNorm's shift replaces it) + BatchNorm1d + ReLU: the `CNN1DBlock` of §2.1."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 2) -> None:
        super().__init__(
            nn.Conv1d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm1d(out_channels),
            nn.ReLU(inplace=True),
        )
        self.kernel = kernel

    def output_length(self, length: int) -> int:
        return conv_output_length(length, self.kernel)


class InceptionBlock1d(nn.Module):
    """Four stride-2 ConvBlock1d branches (kernels 2, 3, 5, 7) on the same input, concatenated on channels (§2.1).

    With padding ``k // 2`` the odd kernels give ``(L - 1) // 2 + 1`` steps, the k2 branch ``L // 2 + 1``: one more when
    L is even. As in the original, that extra last step of the k2 branch is dropped so the branches line up.
    """

    def __init__(self, in_channels: int, branch_channels: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(ConvBlock1d(in_channels, branch_channels, k) for k in INCEPTION_KERNELS)

    @property
    def out_channels(self) -> int:
        return len(self.branches) * self.branches[0][0].out_channels

    def output_length(self, length: int) -> int:
        return conv_output_length(length, 3)

    def forward(self, x: Tensor) -> Tensor:
        steps = self.output_length(x.shape[-1])
        return torch.cat([branch(x)[..., :steps] for branch in self.branches], dim=1)


class VoiceEncoder(nn.Module):
    """The V2F1DCNN of §2.1: (B, F, T) or segment stacks (B, N, F, T) to embeddings (B, D) or (B, N, D).

    Args:
        in_channels: mel bins F (40 in SF2F, 64 in the original voice2face of §7.3).
        channels: output widths of the four blocks; for ``kind="inception"`` each is the concatenation of four equal
            branches, so it must divide by 4 (paper: 256, 384, 576, 864).
        embed_dim: width of the final conv, i.e. the embedding (paper: 512).
        kind: ``"cnn"`` (voice2face baseline) or ``"inception"`` (SF2F).
        normalize: L2-normalise the pooled embedding.
        add_noise, noise_std: the baseline's embedding noise (0.05 N(0, 1), then L2-normalise again).
        noise_in_eval: add the noise in eval mode too, as the original does (recipe §6 item 13).
    """

    def __init__(
        self,
        in_channels: int = 40,
        channels: Sequence[int] = (256, 384, 576, 864),
        embed_dim: int = 512,
        kind: str = "inception",
        normalize: bool = True,
        add_noise: bool = False,
        noise_std: float = 0.05,
        noise_in_eval: bool = False,
    ) -> None:
        super().__init__()
        if kind not in ("cnn", "inception"):
            raise ValueError(f"encoder kind must be 'cnn' or 'inception', got '{kind}'")
        if kind == "inception" and any(c % len(INCEPTION_KERNELS) for c in channels):
            raise ValueError(f"inception block widths must divide by 4 (four equal branches), got {list(channels)}")
        self.kind = kind
        self.in_channels = in_channels
        self.embed_dim = embed_dim
        self.normalize = normalize
        self.add_noise = add_noise
        self.noise_std = noise_std
        self.noise_in_eval = noise_in_eval
        blocks: list[nn.Module] = []
        width = in_channels
        for out in channels:
            if kind == "inception":
                blocks.append(InceptionBlock1d(width, out // len(INCEPTION_KERNELS)))
            else:
                blocks.append(ConvBlock1d(width, out, kernel=3))
            width = out
        self.blocks = nn.Sequential(*blocks)
        # the last layer has a bias and neither norm nor activation (§2.1 layer 5)
        self.final = nn.Conv1d(width, embed_dim, 3, stride=2, padding=1)

    # ---- lengths ----------------------------------------------------------------------------------------------------

    def output_lengths(self, frames: int) -> list[int]:
        """Time steps after each block and after the final conv: 125 -> [63, 32, 16, 8, 4]."""
        lengths = []
        for block in self.blocks:
            frames = block.output_length(frames)
            lengths.append(frames)
        lengths.append(conv_output_length(frames, 3))
        return lengths

    def min_frames(self, batch: int, training: bool | None = None) -> int:
        """The shortest input this encoder takes for a batch of ``batch`` utterances.

        Padding lets every conv run on a single frame, so in eval mode 1 frame is enough. In training mode BatchNorm
        needs more than one value per channel: batch x (steps after the last block) must exceed 1, so a single
        utterance needs enough frames to leave two steps after four halvings (17 frames).
        """
        training = self.training if training is None else training
        if not training or batch > 1:
            return 1
        frames = 1
        while self.output_lengths(frames)[-2] < 2:
            frames += 1
        return frames

    def receptive_field(self) -> int:
        """Frames of input that one step of the final conv's output can see (the widest branch counts)."""
        field, jump = 1, 1
        kernels = [max(INCEPTION_KERNELS) if self.kind == "inception" else 3] * len(self.blocks) + [3]
        for kernel in kernels:
            field += (kernel - 1) * jump
            jump *= 2
        return field

    # ---- forward ----------------------------------------------------------------------------------------------------

    def _check(self, mel: Tensor) -> None:
        if mel.shape[-2] != self.in_channels:
            raise ValueError(
                f"voice encoder expects {self.in_channels} mel bins on dim -2, got input of shape {tuple(mel.shape)}"
            )
        frames, batch = mel.shape[-1], mel.shape[0]
        needed = self.min_frames(batch)
        if frames < needed:
            why = " in training mode (BatchNorm needs more than one value per channel)" if needed > 1 else ""
            raise ValueError(
                f"voice encoder needs at least {needed} frame(s) for a batch of {batch}{why}, "
                f"got input of shape {tuple(mel.shape)}"
            )

    def sequence(self, mel: Tensor) -> Tensor:
        """The feature sequence before pooling, (B, D, T'): what `return_seq` gives in the original."""
        self._check(mel)
        return self.final(self.blocks(mel))

    def embed(self, mel: Tensor) -> Tensor:
        """(B, F, T) to (B, D): pool over time, normalise, and (baseline, training) add noise."""
        emb = self.sequence(mel).mean(dim=-1)
        if self.normalize:
            emb = F.normalize(emb, dim=1)
        if self.add_noise and (self.training or self.noise_in_eval):
            emb = F.normalize(emb + self.noise_std * torch.randn_like(emb), dim=1)
        return emb

    def forward(self, mel: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, F, T) -> (B, D); segment stacks (B, N, F, T) -> (B, N, D), padded segments (mask False) as zeros."""
        if mel.dim() == 3:
            if mask is not None:
                raise ValueError("a segment mask needs segment stacks of shape (B, N, F, T)")
            return self.embed(mel)
        if mel.dim() != 4:
            raise ValueError(f"voice encoder expects (B, F, T) or (B, N, F, T), got shape {tuple(mel.shape)}")
        batch, segments = mel.shape[:2]
        if mask is None:
            return self.embed(mel.flatten(0, 1)).view(batch, segments, -1)
        if mask.shape != (batch, segments):
            raise ValueError(f"segment mask must have shape {(batch, segments)}, got {tuple(mask.shape)}")
        mask = mask.to(device=mel.device, dtype=torch.bool)
        real = self.embed(mel[mask])
        # allocated after the fact so it takes the embedding's dtype (bf16 under autocast)
        out = real.new_zeros(batch, segments, real.shape[-1])
        out[mask] = real
        return out
