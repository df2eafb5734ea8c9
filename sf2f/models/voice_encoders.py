"""Voice encoders, log-mels (B, F, T) to a speaker embedding (recipe §2.1): voice2face's plain 1D CNN (`cnn`) and
SF2F's 1D-Inception (`inception`: stride-2 branches of kernels 2, 3, 5, 7, four time scales), both pooled over time and
L2-normalised. Segment stacks (B, N, F, T) with a mask encode only the real segments (no padding reaches BatchNorm)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: kernel sizes of the four Inception branches, in the order they are concatenated (§2.1)
INCEPTION_KERNELS: tuple[int, ...] = (2, 3, 5, 7)


def _halved(length: int) -> int:
    """Time steps after a stride-2 conv with an odd kernel k and padding k // 2, as every block ends up with."""
    return (length - 1) // 2 + 1


class ConvBlock1d(nn.Sequential):
    """Conv1d (no bias: BatchNorm's shift replaces it) + BatchNorm1d + ReLU: the `CNN1DBlock` of §2.1."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int) -> None:
        super().__init__(nn.Conv1d(in_channels, out_channels, kernel, stride=2, padding=kernel // 2, bias=False),
                         nn.BatchNorm1d(out_channels), nn.ReLU(inplace=True))


class InceptionBlock1d(nn.Module):
    """Four stride-2 ConvBlock1d branches (kernels 2, 3, 5, 7) on the same input, concatenated on channels (§2.1); on
    an even length the k2 branch's extra last step is dropped so the branches line up, as in the original."""

    def __init__(self, in_channels: int, branch_channels: int) -> None:
        super().__init__()
        self.branches = nn.ModuleList(ConvBlock1d(in_channels, branch_channels, k) for k in INCEPTION_KERNELS)

    def forward(self, x: Tensor) -> Tensor:
        steps = _halved(x.shape[-1])
        return torch.cat([branch(x)[..., :steps] for branch in self.branches], dim=1)


class VoiceEncoder(nn.Module):
    """The V2F1DCNN of §2.1. `in_channels`: mel bins (40 in SF2F, 64 in voice2face, §7.3); `channels`: the four blocks'
    widths (``inception``: four equal branches each); `embed_dim`: the final conv's width."""

    def __init__(self, in_channels: int = 40, channels: Sequence[int] = (256, 384, 576, 864), embed_dim: int = 512,
                 kind: str = "inception", normalize: bool = True, add_noise: bool = False, noise_std: float = 0.05,
                 noise_in_eval: bool = False) -> None:
        super().__init__()
        self.kind, self.in_channels, self.embed_dim, self.normalize = kind, in_channels, embed_dim, normalize
        self.add_noise, self.noise_std, self.noise_in_eval = add_noise, noise_std, noise_in_eval
        widths = [in_channels, *channels]
        self.blocks = nn.Sequential(*(InceptionBlock1d(a, b // len(INCEPTION_KERNELS)) if kind == "inception"
                                      else ConvBlock1d(a, b, 3) for a, b in zip(widths[:-1], widths[1:])))
        # the last layer has a bias and neither norm nor activation (§2.1 layer 5)
        self.final = nn.Conv1d(widths[-1], embed_dim, 3, stride=2, padding=1)

    def output_lengths(self, frames: int) -> list[int]:
        """Time steps after each block and after the final conv: 125 -> [63, 32, 16, 8, 4]."""
        lengths = [frames]
        for _ in range(len(self.blocks) + 1):
            lengths.append(_halved(lengths[-1]))
        return lengths[1:]

    def receptive_field(self) -> int:
        """Frames of input that one step of the final conv's output can see (the widest branch counts)."""
        field, jump = 1, 1
        for kernel in [max(INCEPTION_KERNELS) if self.kind == "inception" else 3] * len(self.blocks) + [3]:
            field += (kernel - 1) * jump
            jump *= 2
        return field

    def sequence(self, mel: Tensor) -> Tensor:
        """The feature sequence before pooling, (B, D, T'): what `return_seq` gives in the original."""
        if mel.shape[-2] != self.in_channels:
            raise ValueError(f"voice encoder expects {self.in_channels} mel bins on dim -2, got {tuple(mel.shape)}")
        # in training mode BatchNorm needs batch x (steps after the last block) > 1: a single utterance needs two steps
        # after four halvings (17 frames)
        needed = 1
        while self.training and mel.shape[0] == 1 and self.output_lengths(needed)[-2] < 2:
            needed += 1
        if mel.shape[-1] < needed:
            why = " in training mode (BatchNorm needs more than one value per channel)" if needed > 1 else ""
            raise ValueError(f"voice encoder needs at least {needed} frame(s) for a batch of {mel.shape[0]}{why}, "
                             f"got input of shape {tuple(mel.shape)}")
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
        if mel.dim() == 3 and mask is None:
            return self.embed(mel)
        if mel.dim() != 4:
            raise ValueError(f"voice encoder expects (B, F, T), or (B, N, F, T) with a mask, got {tuple(mel.shape)}")
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
