"""Is a model above chance? Permutation tests on the probe x gallery table (beyond the paper).

The paper reports recall and similarity without an error bar, over 3 x 100 identities; the synthetic course's test
split has 30. There, one more hit at R@10 moves the recall by 0.033 against a chance level of 0.333, and whether
"0.40" means anything cannot be read off the number. These tests answer it for any evaluation table.

The null hypothesis: the probes carry nothing about *which* identity they belong to, so the pairing of probe i with
gallery entry i is as good as any other pairing. For a statistic that averages one score per probe over the pairing
(the mean cosine of p_i and r_i; the mean rank of r_i in probe i's row), its distribution under the null comes from
scoring random pairings pi: the same table, probe i against gallery entry pi(i). The p-value is the share of random
pairings that score at least as well as the true one, counting the true one among them ((1 + hits) / (1 + P), never
0; Phipson & Smyth 2010). It needs no assumption about how the scores are distributed, and it is exact for probe sets
that cannot be above chance: a constant probe (the mean face) scores every pairing the same, so its p-value is 1.

Two tests go into the results table (:mod:`sf2f.evaluate.report`):

* ``rank p``: the mean rank of each identity's own gallery entry in its row (ties count against the probe, as in
  recall): the whole recall-at-K curve in one number, so no K is chosen after looking at the results;
* ``Cos p``: the mean cosine similarity between p_i and r_i (the table's `Cos`).

Random pairings are drawn with a seeded generator (`eval.seed`), so the same evaluation gives the same p-values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from sf2f.evaluate.retrieval import RecallMethod, column_ranks, similarity_table

__all__ = ["PairingTest", "chance_tests", "pairing_test"]

# pairings scored at a time: bounds the (block, n) index arrays at about 4M entries whatever the split's size
_ENTRIES_PER_BLOCK = 1 << 22


@dataclass(frozen=True)
class PairingTest:
    """The statistic for the true pairing, its mean over random pairings, and the one-sided p-value."""

    observed: float
    null_mean: float
    p_value: float


def pairing_test(
    scores: Tensor, permutations: int = 10_000, seed: int = 0, higher_is_better: bool = True
) -> PairingTest:
    """Permutation test of the mean over i of `scores[i, i]` (the true pairing) against random pairings (module
    docstring). `scores` is square: row i is probe i, column j gallery entry j."""
    if scores.dim() != 2 or scores.shape[0] != scores.shape[1] or scores.shape[0] < 2:
        raise ValueError(f"a pairing test needs a square table of at least 2 x 2, got {tuple(scores.shape)}")
    if permutations < 1:
        raise ValueError(f"permutations must be >= 1, got {permutations}")
    scores = scores.double()
    n = scores.shape[0]
    observed = float(scores.diagonal().mean())
    if not scores.isfinite().all():  # non-finite faces: no p-value rather than a comparison that NaN always loses
        return PairingTest(observed, math.nan, math.nan)
    # a relative tolerance: a pairing that scores the same as the true one up to rounding counts as as good
    slack = 1e-12 * max(1.0, abs(observed))
    bound = observed - slack if higher_is_better else observed + slack
    generator = torch.Generator().manual_seed(seed)
    rows = torch.arange(n)
    at_least_as_good, done = 0, 0
    block = max(1, _ENTRIES_PER_BLOCK // n)
    while done < permutations:
        count = min(block, permutations - done)
        pairings = torch.rand(count, n, generator=generator).argsort(dim=1)
        means = scores[rows, pairings].mean(dim=1)
        better = means >= bound if higher_is_better else means <= bound
        at_least_as_good += int(better.sum())
        done += count
    null_mean = float(scores.mean())  # every pairing is equally likely: each probe meets each entry 1/n of the time
    return PairingTest(observed, null_mean, (1 + at_least_as_good) / (1 + permutations))


def chance_tests(
    probes: Tensor, gallery: Tensor, method: RecallMethod = "cos", permutations: int = 10_000, seed: int = 0
) -> dict[str, float]:
    """The results table's two p-values for probes (n, D) against their gallery (n, D), row i for identity i:
    `rank p` on the ranks of the recall table (`method`, as `eval.recall_method`), `Cos p` on cosine similarity."""
    table = similarity_table(probes, gallery, method)
    cosine = table if method == "cos" else similarity_table(probes, gallery, "cos")
    return {
        "rank p": pairing_test(column_ranks(table).double(), permutations, seed, higher_is_better=False).p_value,
        "Cos p": pairing_test(cosine, permutations, seed).p_value,
    }
