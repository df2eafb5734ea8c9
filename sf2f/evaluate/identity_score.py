"""The ID-classifier score: the VGGFace Score's recipe with a classifier of the training identities (synthetic data).

No VGGFace2 classifier knows the synthetic people, so on the synthetic default an identity classifier trained on the
**training** identities' real faces stands in for it: a multinomial logistic regression on the face embedder's
features F(.). Its class probabilities for generated faces of the (unseen) evaluation identities go through the same
Inception-Score formula (5 splits, seeded shuffle, :mod:`sf2f.evaluate.inception_score`). The number is labelled
"ID-classifier score", never VFS: it is not comparable with the paper's VFS, only between models on the same data.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from torch import Tensor

from sf2f.data.prepared import PreparedSplit
from sf2f.evaluate.embeddings import embed_images, real_faces
from sf2f.faces import VGG_BOX
from sf2f.models.face_embedders import FaceEmbedder

__all__ = ["IdentityClassifier"]


class IdentityClassifier:
    """p(training identity | image) from a logistic regression on face-embedder features."""

    label = "ID-classifier score"

    def __init__(
        self,
        embedder: FaceEmbedder,
        model: LogisticRegression,
        image_norm: str = "imagenet",
        box: tuple[float, ...] = VGG_BOX,
        batch_size: int = 64,
    ) -> None:
        self.embedder = embedder
        self.model = model
        self.image_norm = image_norm
        self.box = tuple(box)
        self.batch_size = batch_size

    @classmethod
    def fit(
        cls,
        embedder: FaceEmbedder,
        train_split: PreparedSplit,
        image_norm: str = "imagenet",
        box: tuple[float, ...] = VGG_BOX,
        batch_size: int = 64,
        regularisation: float = 1.0,
    ) -> IdentityClassifier:
        """Fit on every real face of the training split, labelled by identity (deterministic: lbfgs, no sampling)."""
        faces = real_faces(embedder, train_split, image_norm, box, batch_size)
        model = LogisticRegression(C=regularisation, max_iter=2000)
        model.fit(faces.embeddings.double().numpy(), faces.labels.numpy())
        return cls(embedder, model, image_norm, box, batch_size)

    def accuracy(self, features: Tensor, labels: Tensor) -> float:
        """Share of correctly classified rows (a sanity check of the classifier on real faces)."""
        return float(self.model.score(features.double().numpy(), labels.numpy()))

    def probabilities(self, images: Tensor) -> np.ndarray:
        """(n, training identities) for generator-space images (n, 3, H, W)."""
        features = embed_images(self.embedder, images, self.image_norm, self.box, self.batch_size)
        return self.model.predict_proba(features.double().numpy())
