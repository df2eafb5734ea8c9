"""How much speech does a face need? The attention fuser's claim (recipe §2.2), measured: n evaluation segments per
speaker (§4.6), nested and seeded per draw, combined by their `mean` (as the original's `average_voice_embedding`),
their `unit mean` (the mean L2-normalised, as the fuser's output is) or the generator's `attention` fuser."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from sf2f.errors import UsageError
from sf2f.evaluate.evaluator import SplitEvaluator
from sf2f.evaluate.probes import decode_voices, evaluation_segments, generating, segment_voices
from sf2f.models.face_embedders import embed_faces
from sf2f.models.generator import Generator

SEGMENT_COUNTS: tuple[int, ...] = (1, 2, 5, 10, 20)
STRATEGIES: tuple[str, ...] = ("mean", "unit mean", "attention")


def drawn_segments(available: Sequence[int], n: int, draw: int, seed: int = 0) -> list[Tensor]:
    """Which segments each identity gives in one draw: the first n (all, when it has fewer) of a permutation of its
    `available[i]` segments seeded by (seed, draw, i)."""
    if n < 1:
        raise UsageError(f"a speaker must give at least one segment, got n = {n}")
    rngs = (np.random.default_rng((seed, draw, i)) for i in range(len(available)))
    return [torch.from_numpy(rng.permutation(k)[:n]) for rng, k in zip(rngs, available)]


def combine_segments(generator: Generator, voices: Sequence[Tensor], strategy: str) -> Tensor:
    """One voice embedding per identity (identities, D) from the embeddings of its chosen segments (k_i, D)."""
    if strategy in ("mean", "unit mean"):
        # a mean of unit vectors is shorter the more they disagree; the decoder only ever saw unit-length embeddings
        mean = torch.stack([v.mean(dim=0) for v in voices])
        return F.normalize(mean, dim=1) if strategy == "unit mean" else mean
    if strategy != "attention":
        raise UsageError(f"unknown strategy '{strategy}' (known: {', '.join(STRATEGIES)})")
    if generator.fuser is None:
        raise UsageError("the attention strategy needs a generator with a fuser (a `sf2f_fuser` checkpoint)")
    lengths = torch.tensor([len(v) for v in voices])
    mask = torch.arange(int(lengths.max()))[None, :] < lengths[:, None]
    device = next(generator.parameters()).device
    fused, _ = generator.fuser(pad_sequence(list(voices), batch_first=True).to(device), mask.to(device))
    return fused.float().cpu()


class SegmentsCurve(NamedTuple):
    """The curve of one generator: one row per (strategy, count) with its scores, and the probes behind each row,
    (draws, identities, D) face embeddings keyed by (strategy, count), for paired comparisons."""

    rows: list[dict[str, Any]]
    probes: dict[tuple[str, int], Tensor]


def segments_curve(evaluator: SplitEvaluator, generator: Generator, model: str, counts: Sequence[int] = SEGMENT_COUNTS,
                   draws: int = 3, strategies: Sequence[str] | None = None) -> SegmentsCurve:
    """Scores for each strategy (default: all three with a fuser, else the two means) and count, averaged over `draws`
    (one where no speaker has more segments than the count), seeded by `eval.seed`: the same speech for every model and
    strategy."""
    if draws < 1:
        raise UsageError(f"draws must be >= 1, got {draws}")
    if strategies is None:
        strategies = STRATEGIES if generator.fuser is not None else STRATEGIES[:2]
    cfg, batch = evaluator.cfg, evaluator.batch_size
    seed, identities = cfg.eval.seed, len(evaluator.split)
    rows: list[dict[str, Any]] = []
    probes: dict[tuple[str, int], Tensor] = {}
    with generating(generator, seed):
        segments = evaluation_segments(evaluator.split, cfg.data, seed)
        voices, owners = segment_voices(generator, segments, batch)
        own = [voices[owners == i] for i in range(identities)]
        available = [len(v) for v in own]
        for n in counts:
            picks = [drawn_segments(available, n, d, seed) for d in range(draws if n < max(available) else 1)]
            for strategy in strategies:
                combined = torch.cat([combine_segments(generator, [v[c] for v, c in zip(own, pick)], strategy)
                                      for pick in picks])
                faces = decode_voices(generator, combined, batch)
                embedded = embed_faces(evaluator.embedder, faces, cfg.data.image_norm, evaluator.box, batch)
                probes[strategy, n] = embedded.view(len(picks), identities, -1)
                rows.append({"model": model, "strategy": strategy, "segments": n,
                             "segments used": float(np.minimum(available, n).mean()), "draws": len(picks),
                             **evaluator.embedding_scores(probes[strategy, n])})
    return SegmentsCurve(rows, probes)
