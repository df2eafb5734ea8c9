"""Similarity and retrieval between probes and the gallery (recipe §4.2, the original's `S2fEvaluator`).

Row i of `probes` and of `gallery` belong to the same identity.

* Paired similarity over all identities (means over i): L2 = `PairwiseDistance(p=2, eps=1e-6)`, L1 =
  `PairwiseDistance(p=1)` (a **sum** over the dimensions; torch adds the same eps 1e-6 to the difference), cos =
  cosine similarity.
* Recall at K within groups: identities [0, S), [S, 2S), ... for `groups` groups of S = `group_size` (100, 3 groups in
  the paper; identities past the last group are ignored). In each group an S x S table compares every probe (row)
  with every gallery entry (column) by cosine similarity (`method="cos"`) or by minus the mean absolute difference
  (`method="l1"`); a probe hits at K when its own column is among the K best of its row. The mean is taken within a
  group, then over the groups. Chance is K / S.
* The whole-split variant does the same on one n x n table (chance K / n).
* The inter-human similarity (column `Human`): the mean cosine between probe i and gallery entry j over all i != j.

Ties count against the probe (a column that scores as well as the right one ranks before it), so a degenerate probe
set that scores every column the same cannot rise above chance. K larger than the table gives NaN (a recall of 1
that says nothing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "column_ranks",
    "grouped_recall",
    "inter_human_similarity",
    "paired_similarity",
    "recall_at_k",
    "similarity_table",
    "whole_split_recall",
]

RecallMethod = Literal["cos", "l1"]


def _check_pair(probes: Tensor, gallery: Tensor) -> None:
    if probes.dim() != 2 or probes.shape != gallery.shape:
        raise ValueError(f"probes {tuple(probes.shape)} and gallery {tuple(gallery.shape)} must both be (n, D)")


def paired_similarity(probes: Tensor, gallery: Tensor) -> dict[str, float]:
    """Means over identities of the L2 and L1 distances and the cosine similarity between p_i and r_i."""
    _check_pair(probes, gallery)
    p, r = probes.double(), gallery.double()
    return {
        "L2": float(F.pairwise_distance(r, p, p=2, eps=1e-6).mean()),
        "L1": float(F.pairwise_distance(r, p, p=1, eps=1e-6).mean()),
        "Cos": float(F.cosine_similarity(r, p, dim=1).mean()),
    }


def similarity_table(probes: Tensor, gallery: Tensor, method: RecallMethod = "cos") -> Tensor:
    """(n probes, m gallery) scores, higher = more alike: cosine similarity, or -mean |p - r| for `l1`."""
    p, r = probes.double(), gallery.double()
    if method == "cos":
        return F.normalize(p, dim=1) @ F.normalize(r, dim=1).T
    if method == "l1":
        return -torch.cdist(p, r, p=1) / p.shape[1]
    raise ValueError(f"unknown recall method '{method}' (cos or l1)")


def column_ranks(table: Tensor) -> Tensor:
    """(n, m) ranks: entry (i, j) counts the other columns of row i that score at least as high as column j, so 0 is
    the best and ties count against column j (the rank recall at K compares with K). A NaN score (a generator that
    drew non-finite faces) ranks below every number, so it never counts as a hit."""
    if table.dim() != 2:
        raise ValueError(f"ranks need a 2-d table, got shape {tuple(table.shape)}")
    table = torch.where(table.isnan(), float("-inf"), table)
    ordered = table.sort(dim=1).values
    below = torch.searchsorted(ordered, table.contiguous())  # entries of the row strictly below (i, j)
    return table.shape[1] - below - 1


def recall_at_k(table: Tensor, ks: Sequence[int]) -> dict[int, float]:
    """Share of rows whose own (diagonal) column is among the K best of the row, for each K (square tables)."""
    if table.dim() != 2 or table.shape[0] != table.shape[1]:
        raise ValueError(f"recall needs a square probe x gallery table, got {tuple(table.shape)}")
    rank = column_ranks(table).diagonal()
    n = table.shape[0]
    return {k: float((rank < k).double().mean()) if k <= n else math.nan for k in ks}


def grouped_recall(
    probes: Tensor,
    gallery: Tensor,
    ks: Sequence[int],
    group_size: int = 100,
    groups: int = 3,
    method: RecallMethod = "cos",
) -> dict[int, float]:
    """Recall at K within consecutive groups of `group_size` identities, averaged over `groups` groups (§4.2)."""
    _check_pair(probes, gallery)
    n = probes.shape[0]
    if n < group_size * groups:
        raise ValueError(
            f"recall in {groups} group(s) of {group_size} identities needs {group_size * groups} identities, the split "
            f"has {n}: set eval.recall_group_size / eval.recall_groups to fit (the paper's 3 x 100 needs 300)"
        )
    per_group = []
    for g in range(groups):
        rows = slice(g * group_size, (g + 1) * group_size)
        per_group.append(recall_at_k(similarity_table(probes[rows], gallery[rows], method), ks))
    return {k: sum(r[k] for r in per_group) / groups for k in ks}


def whole_split_recall(
    probes: Tensor, gallery: Tensor, ks: Sequence[int], method: RecallMethod = "cos"
) -> dict[int, float]:
    """Recall at K against the whole split's gallery (one n x n table)."""
    _check_pair(probes, gallery)
    return recall_at_k(similarity_table(probes, gallery, method), ks)


def inter_human_similarity(probes: Tensor, gallery: Tensor) -> float:
    """Mean cosine similarity between probe i and gallery entry j over all pairs i != j (the full split)."""
    _check_pair(probes, gallery)
    n = probes.shape[0]
    if n < 2:
        return math.nan
    table = similarity_table(probes, gallery, "cos")
    return float((table.sum() - table.diagonal().sum()) / (n * (n - 1)))
