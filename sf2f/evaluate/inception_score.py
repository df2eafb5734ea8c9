"""The Inception-Score formula of the VGGFace Score (recipe §4.1) and of the ID-classifier score, and the latter's
classifier.

The rows of p(y|x), shuffled and cut into `splits` parts at i*n//splits, give each part exp(mean KL(p(y|x) || p(y))),
p(y) the part's mean row: from 1 (one answer for all) to the part size (a sure, different class for each). Unlike
the original, the shuffle is seeded (§6 item 16) and a probability of 0 adds 0 where 0 log 0 gave NaN. No VGGFace2
classifier knows the synthetic people, so a logistic regression on F(.) of the training identities' real faces
stands in: the "ID-classifier score", never called VFS, comparable between models on the same data only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from sklearn.linear_model import LogisticRegression
from torch import Tensor

from sf2f.data.prepared import PreparedSplit
from sf2f.evaluate.embeddings import real_faces
from sf2f.faces import VGG_BOX
from sf2f.models.face_embedders import FaceEmbedder, embed_faces

__all__ = ["IdentityClassifier", "SplitScore", "inception_score"]


class SplitScore(NamedTuple):
    """Mean and standard deviation of the score over the splits."""

    mean: float
    std: float


def inception_score(probs: np.ndarray, splits: int = 5, seed: int = 0) -> SplitScore:
    """The Inception-Score formula over `splits` parts of the rows of `probs` (n, classes), shuffled by `seed`."""
    probs = np.asarray(probs, dtype=np.float64)
    n = probs.shape[0]
    if not 1 <= splits <= n:
        raise ValueError(f"cannot cut {n} images into {splits} splits (need at least one image per split)")
    probs = probs[np.random.default_rng(seed).permutation(n)]
    scores = []
    for i in range(splits):
        part = probs[i * n // splits : (i + 1) * n // splits]
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(part > 0, part * (np.log(part) - np.log(part.mean(axis=0, keepdims=True))), 0.0)
        scores.append(float(np.exp(terms.sum(axis=1).mean())))
    return SplitScore(float(np.mean(scores)), float(np.std(scores)))


@dataclass
class IdentityClassifier:
    """p(training identity | image) from a logistic regression on face-embedder features."""

    embedder: FaceEmbedder
    model: LogisticRegression
    image_norm: str = "imagenet"
    box: tuple[float, ...] = VGG_BOX
    batch_size: int = 64
    label = "ID-classifier score"

    @classmethod
    def fit(cls, embedder: FaceEmbedder, train_split: PreparedSplit, image_norm: str = "imagenet",
            box: tuple[float, ...] = VGG_BOX, batch_size: int = 64) -> IdentityClassifier:
        """Fit on every real face of the training split, labelled by identity (deterministic: lbfgs, no sampling)."""
        faces = real_faces(embedder, train_split, image_norm, box, batch_size)
        model = LogisticRegression(max_iter=2000).fit(faces.embeddings.double().numpy(), faces.labels.numpy())
        return cls(embedder, model, image_norm, tuple(box), batch_size)

    def probabilities(self, images: Tensor) -> np.ndarray:
        """(n, training identities) for generator-space images (n, 3, H, W)."""
        features = embed_faces(self.embedder, images, self.image_norm, self.box, self.batch_size)
        return self.model.predict_proba(features.double().numpy())
