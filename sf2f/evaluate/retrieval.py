"""Similarity, retrieval and matching between probes and the gallery (recipe §4.2, the original's `S2fEvaluator`).

Row i of `probes` and of `gallery` belong to the same identity. Ties count against the probe (a column that scores as
well as the right one ranks before it), so a probe set that scores every column alike cannot rise above chance; K
larger than the table gives NaN (a recall of 1 that says nothing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["column_ranks", "grouped_recall", "inter_human_similarity", "matching_accuracy", "paired_similarity",
           "recall_at_k", "similarity_table", "whole_split_recall"]

RecallMethod = Literal["cos", "l1"]


def paired_similarity(probes: Tensor, gallery: Tensor) -> dict[str, float]:
    """Means over identities of the L2 and L1 distances and the cosine similarity between p_i and r_i."""
    p, r = probes.double(), gallery.double()
    return {
        "L2": float(F.pairwise_distance(r, p, p=2, eps=1e-6).mean()),
        "L1": float(F.pairwise_distance(r, p, p=1, eps=1e-6).mean()),
        "Cos": float(F.cosine_similarity(r, p, dim=1).mean()),
    }


def similarity_table(probes: Tensor, gallery: Tensor, method: RecallMethod = "cos") -> Tensor:
    """(n probes, m gallery) scores, higher = more alike: cosine similarity, or -mean |p - r| for `l1`."""
    p, r = probes.double(), gallery.double()
    if method == "l1":
        return -torch.cdist(p, r, p=1) / p.shape[1]
    return F.normalize(p, dim=1) @ F.normalize(r, dim=1).T


def column_ranks(table: Tensor) -> Tensor:
    """(n, m) ranks: entry (i, j) counts the other columns of row i that score at least as high as column j, so 0 is
    the best and ties count against column j. A NaN score (a generator that drew non-finite faces) ranks below every
    number, so it never counts as a hit."""
    table = torch.where(table.isnan(), float("-inf"), table)
    below = torch.searchsorted(table.sort(dim=1).values, table.contiguous())  # entries of the row strictly below
    return table.shape[1] - below - 1


def recall_at_k(table: Tensor, ks: Sequence[int]) -> dict[int, float]:
    """Share of rows whose own (diagonal) column is among the K best of the square table's row, for each K."""
    rank, n = column_ranks(table).diagonal(), table.shape[0]
    return {k: float((rank < k).double().mean()) if k <= n else math.nan for k in ks}


def grouped_recall(probes: Tensor, gallery: Tensor, ks: Sequence[int], group_size: int = 100, groups: int = 3,
                   method: RecallMethod = "cos") -> dict[int, float]:
    """Recall at K within the consecutive groups [0, S), [S, 2S), ... of S = `group_size` identities (3 x 100 in the
    paper, §4.2; identities past the last group are ignored), averaged over the groups. Chance is K / S; NaN when
    there are fewer identities than the groups need."""
    if len(probes) < group_size * groups:
        return {k: math.nan for k in ks}
    per_group = []
    for g in range(groups):
        rows = slice(g * group_size, (g + 1) * group_size)
        per_group.append(recall_at_k(similarity_table(probes[rows], gallery[rows], method), ks))
    return {k: sum(r[k] for r in per_group) / groups for k in ks}


def whole_split_recall(probes: Tensor, gallery: Tensor, ks: Sequence[int],
                       method: RecallMethod = "cos") -> dict[int, float]:
    """Recall at K against the whole split's gallery (one n x n table; chance K / n)."""
    return recall_at_k(similarity_table(probes, gallery, method), ks)


def inter_human_similarity(probes: Tensor, gallery: Tensor) -> float:
    """The table's `Human`: the mean cosine similarity between probe i and gallery entry j over all pairs i != j."""
    n = probes.shape[0]
    if n < 2:
        return math.nan
    table = similarity_table(probes, gallery, "cos")
    return float((table.sum() - table.diagonal().sum()) / (n * (n - 1)))


def matching_accuracy(probes: Tensor, faces: Tensor) -> float:
    """1:2 voice-to-face matching (voice2face's forced choice, beyond the SF2F paper): over all ordered pairs (i, j),
    i != j, the share in which real face i is closer to probe i than real face j is, by cosine; a tie counts one half,
    chance is 0.5. `faces` (n, D) holds one real face's embedding per identity."""
    n = probes.shape[0]
    if n < 2:
        raise ValueError("1:2 matching needs at least two identities")
    table = similarity_table(probes, faces, "cos")
    own = table.diagonal()[:, None]
    outcome = (own > table).double() + 0.5 * (own == table).double()
    return float(outcome[~torch.eye(n, dtype=torch.bool, device=table.device)].mean())
