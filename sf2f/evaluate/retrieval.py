"""Similarity, retrieval and matching between probes and the gallery (recipe §4.2, the original's `S2fEvaluator`), row i
of both for identity i, and permutation tests beyond the paper: above chance (:func:`pairing_test`, (1 + hits) / (1 +
P), Phipson & Smyth 2010) or better than another (:func:`paired_test`, a sign-flip test per identity; its power)?"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

RecallMethod = Literal["cos", "l1"]


def paired_similarity(probes: Tensor, gallery: Tensor) -> dict[str, float]:
    """Means over identities of the L2 and L1 distances and the cosine similarity between p_i and r_i."""
    p, r = probes.double(), gallery.double()
    return {"L2": float(F.pairwise_distance(r, p, p=2, eps=1e-6).mean()),
            "L1": float(F.pairwise_distance(r, p, p=1, eps=1e-6).mean()),
            "Cos": float(F.cosine_similarity(r, p, dim=1).mean())}


def similarity_table(probes: Tensor, gallery: Tensor, method: RecallMethod = "cos") -> Tensor:
    """(n probes, m gallery) scores, higher = more alike: cosine similarity, or -mean |p - r| for `l1`."""
    p, r = probes.double(), gallery.double()
    if method == "l1":
        return -torch.cdist(p, r, p=1) / p.shape[1]
    return F.normalize(p, dim=1) @ F.normalize(r, dim=1).T


def column_ranks(table: Tensor) -> Tensor:
    """(n, m) ranks: entry (i, j) counts the other columns of row i scoring at least as high as column j (0 is best).
    Ties count against column j, so probes that score every column alike cannot rise above chance; NaN ranks last."""
    table = torch.where(table.isnan(), float("-inf"), table)
    below = torch.searchsorted(table.sort(dim=1).values, table.contiguous())  # entries of the row strictly below
    return table.shape[1] - below - 1


def recall_at_k(table: Tensor, ks: Sequence[int]) -> dict[int, float]:
    """Share of rows whose own (diagonal) column is among the K best of the square table's row, for each K; NaN for a K
    larger than the table (a recall of 1 that says nothing)."""
    rank, n = column_ranks(table).diagonal(), table.shape[0]
    return {k: float((rank < k).double().mean()) if k <= n else math.nan for k in ks}


def grouped_recall(probes: Tensor, gallery: Tensor, ks: Sequence[int], group_size: int = 100, groups: int = 3,
                   method: RecallMethod = "cos") -> dict[int, float]:
    """Recall at K within the consecutive groups [0, S), [S, 2S), ... of S = `group_size` identities (3 x 100 in the
    paper, §4.2; later identities ignored), averaged over the groups; chance K / S, NaN if the groups do not fit."""
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
    """1:2 matching (voice2face's forced choice, beyond the paper): the share of pairs i != j in which real face i (of
    `faces`, one per identity) is closer by cosine to probe i than face j; a tie counts one half, chance is 0.5."""
    n = probes.shape[0]
    if n < 2:
        raise ValueError("1:2 matching needs at least two identities")
    table = similarity_table(probes, faces, "cos")
    own = table.diagonal()[:, None]
    outcome = (own > table).double() + 0.5 * (own == table).double()
    return float(outcome[~torch.eye(n, dtype=torch.bool, device=table.device)].mean())


# pairings scored at a time: bounds the (block, n) index arrays at about 4M entries whatever the split's size
_ENTRIES_PER_BLOCK = 1 << 22


def pairing_test(scores: Tensor, permutations: int = 10_000, seed: int = 0, higher_is_better: bool = True) -> float:
    """The p-value of the true pairing's mean `scores[i, i]` (n, n), n >= 2: the share of seeded random pairings that
    score at least as well, counting the true one (a constant probe gets 1); NaN when a score is not finite."""
    scores = scores.double()
    n = scores.shape[0]
    if not scores.isfinite().all():  # non-finite faces: no p-value rather than a comparison that NaN always loses
        return math.nan
    observed = float(scores.diagonal().mean())
    # a relative tolerance: a pairing that scores the same as the true one up to rounding counts as as good
    slack = 1e-12 * max(1.0, abs(observed))
    bound = observed - slack if higher_is_better else observed + slack
    generator = torch.Generator().manual_seed(seed)
    at_least_as_good, done = 0, 0
    while done < permutations:
        count = min(max(1, _ENTRIES_PER_BLOCK // n), permutations - done)
        means = scores[torch.arange(n), torch.rand(count, n, generator=generator).argsort(dim=1)].mean(dim=1)
        at_least_as_good += int((means >= bound if higher_is_better else means <= bound).sum())
        done += count
    return (1 + at_least_as_good) / (1 + permutations)


def _mean_tables(probes: Tensor, gallery: Tensor, method: RecallMethod) -> tuple[Tensor, Tensor]:
    """The recall table's ranks and the cosine table, averaged over draws when `probes` is (draws, n, D)."""
    ranks, cosines = [], []
    for p in probes if probes.dim() == 3 else probes[None]:
        table = similarity_table(p, gallery, method)
        ranks.append(column_ranks(table).double())
        cosines.append(table if method == "cos" else similarity_table(p, gallery, "cos"))
    return torch.stack(ranks).mean(dim=0), torch.stack(cosines).mean(dim=0)


def chance_tests(probes: Tensor, gallery: Tensor, method: RecallMethod = "cos", permutations: int = 10_000,
                 seed: int = 0) -> dict[str, float]:
    """The table's `rank p` (ranks of the recall table by `method`) and `Cos p` for probes (n, D) or (draws, n, D)
    against their gallery (n, D), row i for identity i; several draws test the draw-averaged tables."""
    ranks, cosines = _mean_tables(probes, gallery, method)
    return {"rank p": pairing_test(ranks, permutations, seed, higher_is_better=False),
            "Cos p": pairing_test(cosines, permutations, seed)}


def per_identity(probes: Tensor, gallery: Tensor, method: RecallMethod = "cos") -> dict[str, Tensor]:
    """Per identity i: `rank`, how many other gallery entries score at least as high as its own in probe i's row
    (recall at K counts rank < K), and `cos`, the cosine of p_i and r_i; averaged over draws for (draws, n, D)."""
    ranks, cosines = _mean_tables(probes, gallery, method)
    return {"rank": ranks.diagonal().clone(), "cos": cosines.diagonal().clone()}


def _sign_flip_p(differences: Tensor, permutations: int, seed: int) -> Tensor:
    """Two-sided sign-flip p-values (k,) of the mean of each column of `differences` (n, k), one set of flips."""
    generator = torch.Generator().manual_seed(seed)
    n = differences.shape[0]
    signs = torch.randint(0, 2, (permutations, n), generator=generator).double() * 2 - 1
    observed = differences.mean(dim=0).abs()
    flipped = (signs @ differences / n).abs()
    # a relative tolerance, as in the pairing test: a flip that equals the observed mean up to rounding reaches it
    reached = (flipped >= observed - 1e-12 * observed.clamp(min=1.0)).sum(dim=0)
    return (1 + reached) / (1 + permutations)


def paired_test(a: Tensor, b: Tensor, permutations: int = 10_000, seed: int = 0) -> dict[str, float]:
    """Sign-flip test of model a against b on per-identity d_i = a_i - b_i: their mean, the counts of d_i > 0 and < 0,
    and `p` = (1 + flips whose |mean| reaches the observed one) / (1 + permutations), symmetric in a and b."""
    a, b = a.double().flatten(), b.double().flatten()
    if a.shape != b.shape or len(a) < 1:
        raise ValueError(f"a paired test needs two equal-length, non-empty sets of scores, got {len(a)} and {len(b)}")
    if permutations < 1:
        raise ValueError(f"permutations must be >= 1, got {permutations}")
    d = a - b
    p = float(_sign_flip_p(d[:, None], permutations, seed)[0]) if d.isfinite().all() else math.nan
    return {"a better by": float(d.mean()), "speakers a better": int((d > 0).sum()),
            "speakers b better": int((d < 0).sum()), "p": p}


def paired_power(differences: Tensor, sizes: Sequence[int], trials: int = 500, alpha: float = 0.05,
                 permutations: int = 2_000, seed: int = 0) -> dict[int, float]:
    """For each number of identities n in `sizes`, the share of `trials` bootstrap samples of n of the observed
    `differences` in which :func:`paired_test` reaches p < alpha: its power if new identities differed alike."""
    d = differences.double().flatten()
    if len(d) < 2 or not d.isfinite().all():
        raise ValueError(f"power needs at least 2 finite per-identity differences, got {d.tolist()}")
    generator = torch.Generator().manual_seed(seed)
    power = {}
    for n in sizes:
        samples = d[torch.randint(0, len(d), (n, trials), generator=generator)]  # one column per trial
        power[n] = float((_sign_flip_p(samples, permutations, seed + n) < alpha).double().mean())
    return power
