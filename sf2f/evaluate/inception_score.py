"""The Inception-Score formula, as the VGGFace Score (recipe §4.1) and the ID-classifier score use it.

For class probabilities p(y|x) of n images, shuffled, then cut into `splits` parts at the bounds i*n//splits:

    p(y) = mean of the rows of a part
    score(part) = exp( mean over its rows of  sum_y p(y|x) (log p(y|x) - log p(y)) )

and the result is the mean and the standard deviation (numpy's, ddof 0) of the part scores. A classifier that is sure
of a different class for every image scores the part size (its upper bound); one that says the same for every image
scores 1 (its lower bound).

Two departures from the original, both without effect on a well-defined score:

* the shuffle is seeded (the original's `np.random.shuffle` is not, so its numbers jitter from run to run, §6 item 16);
* a probability that underflowed to exactly 0 contributes 0 (the limit of p log p), where the original computes
  0 * log 0 = NaN and reports no number at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SplitScore", "inception_score"]


@dataclass(frozen=True)
class SplitScore:
    """Mean and standard deviation over the splits, and each split's score."""

    mean: float
    std: float
    per_split: tuple[float, ...]


def inception_score(probs: np.ndarray, splits: int = 5, seed: int | None = 0) -> SplitScore:
    """The Inception-Score formula over `splits` parts of the rows of `probs` (n, classes), shuffled by `seed`.

    `seed=None` keeps the rows in their given order (the original's TF Inception Score does not shuffle, §4.4).
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"class probabilities must be a matrix (images, classes), got shape {probs.shape}")
    n = probs.shape[0]
    if not 1 <= splits <= n:
        raise ValueError(f"cannot cut {n} images into {splits} splits (need at least one image per split)")
    if seed is not None:
        probs = probs[np.random.default_rng(seed).permutation(n)]
    scores = []
    for i in range(splits):
        part = probs[i * n // splits : (i + 1) * n // splits]
        marginal = part.mean(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(part > 0, part * (np.log(part) - np.log(marginal)), 0.0)
        scores.append(float(np.exp(terms.sum(axis=1).mean())))
    return SplitScore(float(np.mean(scores)), float(np.std(scores)), tuple(scores))
