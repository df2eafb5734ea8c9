"""Cutting speech into fixed-length segments (recipe §1.6), for the fuser stage's datasets and for inference."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def cut_segments(mels: Sequence[torch.Tensor], frames: int = 125, stride: int = 125, max_segments: int = 20,
                 rng: np.random.Generator | None = None) -> list[torch.Tensor]:
    """Windows of `frames` every `stride` frames of each mel in turn, at most `max_segments` (§1.6); with `rng` each
    utterance first loses [0, T - frames) leading frames, as in the original's training sampler."""
    segments: list[torch.Tensor] = []
    for mel in mels:
        total = mel.shape[1]
        start = int(rng.integers(0, total - frames)) if rng is not None and total > frames else 0
        while start + frames <= total and len(segments) < max_segments:
            segments.append(mel[:, start : start + frames])
            start += stride
        if len(segments) >= max_segments:
            break
    return segments


def pad_to_segment(mel: torch.Tensor, frames: int, value: float) -> torch.Tensor:
    """The mel right-padded with `value` (the normalised zero) to one segment, for speakers without a full one (the
    original crashes on them, §6 item 15)."""
    padded = torch.full((mel.shape[0], frames), value, dtype=mel.dtype)
    padded[:, : mel.shape[1]] = mel
    return padded
