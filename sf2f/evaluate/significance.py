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

**Is one model better than another?** Two models evaluated on the same identities give one statistic per identity
each (:func:`per_identity`: the rank of its own gallery entry, the cosine to it); :func:`paired_test` asks whether
their differences d_i = a_i - b_i are centred on zero. Under that null each d_i is as likely to have come out with the
other sign, so flipping the signs at random gives its distribution (a sign-flip permutation test, two-sided, on the
mean difference); a paired test removes what the identities themselves contribute (some faces are easy to find for
every model), which an unpaired comparison of two tables' means leaves in the noise. :func:`paired_power` measures
how often it would detect a difference like an observed one with more identities (a bootstrap of the observed d_i).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from sf2f.evaluate.retrieval import RecallMethod, column_ranks, similarity_table

__all__ = ["PairedTest", "PairingTest", "chance_tests", "paired_power", "paired_test", "pairing_test", "per_identity"]

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


def _mean_tables(probes: Tensor, gallery: Tensor, method: RecallMethod) -> tuple[Tensor, Tensor]:
    """The recall table's ranks and the cosine table, averaged over draws when `probes` is (draws, n, D)."""
    ranks, cosines = [], []
    for p in probes if probes.dim() == 3 else probes[None]:
        table = similarity_table(p, gallery, method)
        ranks.append(column_ranks(table).double())
        cosines.append(table if method == "cos" else similarity_table(p, gallery, "cos"))
    return torch.stack(ranks).mean(dim=0), torch.stack(cosines).mean(dim=0)


def chance_tests(
    probes: Tensor, gallery: Tensor, method: RecallMethod = "cos", permutations: int = 10_000, seed: int = 0
) -> dict[str, float]:
    """The results table's two p-values for probes (n, D) against their gallery (n, D), row i for identity i:
    `rank p` on the ranks of the recall table (`method`, as `eval.recall_method`), `Cos p` on cosine similarity.

    Probes (draws, n, D), several probe sets of the same identities, test the draw-averaged statistics: the tables
    averaged over the draws are one table, and a random pairing pairs every draw alike."""
    ranks, cosines = _mean_tables(probes, gallery, method)
    return {
        "rank p": pairing_test(ranks, permutations, seed, higher_is_better=False).p_value,
        "Cos p": pairing_test(cosines, permutations, seed).p_value,
    }


def per_identity(probes: Tensor, gallery: Tensor, method: RecallMethod = "cos") -> dict[str, Tensor]:
    """Per identity i (row i of probes and gallery): `rank`, how many other gallery entries score at least as high as
    its own in probe i's row (0 = found first; recall at K counts rank < K), and `cos`, the cosine of p_i and r_i.
    Probes (draws, n, D) give each averaged over the draws."""
    ranks, cosines = _mean_tables(probes, gallery, method)
    return {"rank": ranks.diagonal().clone(), "cos": cosines.diagonal().clone()}


@dataclass(frozen=True)
class PairedTest:
    """Model a against model b on the same identities: the mean of d_i = a_i - b_i, how many identities have d_i > 0
    (`a higher`) and d_i < 0 (`b higher`), and the two-sided p-value of the sign-flip test."""

    difference: float
    a_higher: int
    b_higher: int
    p_value: float


def _sign_flip_p(differences: Tensor, permutations: int, seed: int) -> Tensor:
    """Two-sided sign-flip p-values (k,) of the mean of each column of `differences` (n, k), all k tested with the
    same seeded flips."""
    generator = torch.Generator().manual_seed(seed)
    n = differences.shape[0]
    signs = torch.randint(0, 2, (permutations, n), generator=generator).double() * 2 - 1
    observed = differences.mean(dim=0).abs()
    flipped = (signs @ differences / n).abs()
    # a relative tolerance, as in the pairing test: a flip that equals the observed mean up to rounding reaches it
    reached = (flipped >= observed - 1e-12 * observed.clamp(min=1.0)).sum(dim=0)
    return (1 + reached) / (1 + permutations)


def paired_test(a: Tensor, b: Tensor, permutations: int = 10_000, seed: int = 0) -> PairedTest:
    """Sign-flip permutation test of the mean per-identity difference a - b (module docstring): p = (1 + flips whose
    |mean| reaches the observed one) / (1 + permutations). Swapping a and b gives the same p; a = b gives p = 1."""
    a, b = a.double().flatten(), b.double().flatten()
    if a.shape != b.shape or len(a) < 1:
        raise ValueError(f"a paired test needs two equal-length, non-empty sets of scores, got {len(a)} and {len(b)}")
    if permutations < 1:
        raise ValueError(f"permutations must be >= 1, got {permutations}")
    d = a - b
    higher = int((d > 0).sum()), int((d < 0).sum())
    if not d.isfinite().all():
        return PairedTest(float(d.mean()), *higher, math.nan)
    return PairedTest(float(d.mean()), *higher, float(_sign_flip_p(d[:, None], permutations, seed)[0]))


def paired_power(
    differences: Tensor,
    sizes: Sequence[int],
    trials: int = 500,
    alpha: float = 0.05,
    permutations: int = 2_000,
    seed: int = 0,
) -> dict[int, float]:
    """For each number of identities n in `sizes`: the share of `trials` bootstrap samples of n per-identity
    differences (drawn with replacement from the observed `differences`) in which :func:`paired_test` reaches
    p < alpha. It is the test's power if the models differed on new identities as they did on these."""
    d = differences.double().flatten()
    if len(d) < 2 or not d.isfinite().all():
        raise ValueError(f"power needs at least 2 finite per-identity differences, got {d.tolist()}")
    generator = torch.Generator().manual_seed(seed)
    power = {}
    for n in sizes:
        samples = d[torch.randint(0, len(d), (n, trials), generator=generator)]  # one column per trial
        power[n] = float((_sign_flip_p(samples, permutations, seed + n) < alpha).double().mean())
    return power
