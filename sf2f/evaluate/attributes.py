"""Attribute consistency on the synthetic data: do generated faces carry the speaker's sex, age and size?

The synthetic people's shared traits (sex, age, body/head size) shape both their voice and their face
(`sf2f.data.synthetic.traits`), so a good voice-to-face model should put them into its faces. Probes trained on the
**real** faces of the training identities read them back from a face:

* sex: a logistic regression (accuracy; chance = always answering the training majority), and the area under the
  ROC curve of its decision score (AUC; chance 0.5);
* age and size: ridge regressions (R^2 and Pearson correlation; chance: R^2 <= 0 for the training mean, r = 0).

Accuracy and R^2 need the probe's absolute reading to be right; the AUC and r need only the *ordering* of the
speakers. Generated faces are rarely on the real faces' exact colour scale, and a small global offset can push every
face to one side of the sex boundary (accuracy = the majority share) or beyond the age range (clipped: r undefined)
while the faces still order the speakers correctly. So AUC and r are computed on the probes' raw outputs, unclipped;
accuracy and R^2 on the clipped answers.

The probes are applied to one generated face per evaluation identity and compared with that speaker's ground truth.
The same probes on the evaluation identities' real faces give the ceiling a perfect generator could reach.

Features: `pixels` (default) = the face at 16x16, standardised, which is independent of the face embedder the generator
was trained against (a generator could match embedder features without drawing the trait); `embedder` = F(.).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor

from sf2f.data.prepared import PreparedSplit
from sf2f.evaluate.embeddings import embed_images, face_batches
from sf2f.faces import VGG_BOX, to_pixel_range
from sf2f.models.face_embedders import FaceEmbedder

__all__ = [
    "ATTRIBUTES",
    "AttributeProbe",
    "attribute_chance",
    "pixel_features",
    "shared_trait_faces",
    "split_traits",
]

ATTRIBUTES: tuple[str, ...] = ("sex", "age", "size")

Featurizer = Callable[[Tensor], np.ndarray]


def split_traits(split: PreparedSplit, traits: pd.DataFrame) -> pd.DataFrame:
    """The traits of a split's identities in label order (joined by sub-dataset and name, as the data are)."""
    table = split.identities[["label", "sub", "name"]].merge(traits, on=["sub", "name"], how="left", validate="1:1")
    missing = table.loc[table["sex"].isna(), "name"].tolist()
    if missing:
        raise ValueError(f"{split.root}/{split.split}: no traits for {missing[:5]} (is this the synthetic dataset?)")
    return table.sort_values("label").reset_index(drop=True)


def shared_trait_faces(
    train_split: PreparedSplit,
    train_truth: pd.DataFrame,
    truth: pd.DataFrame,
    k: int = 20,
    image_norm: str = "imagenet",
) -> Tensor:
    """For every identity of `truth`, the average real face of the `k` training identities that share its sex and
    lie nearest in age and size (standardised over the training identities): (n, 3, S, S) in generator space.

    On the synthetic data only sex, age and size reach both voice and face, so this is about the best face a
    voice-only predictor can draw under an L1 or L2 loss: it carries the shared traits and averages out the rest
    (hair, skin tone, glasses). Its scores are the table's "shared-trait mean face" row: a reference that shows how
    far above chance retrieval can go on these data (not far: the face-only traits decide most of a face).
    """
    sums, counts = None, torch.zeros(len(train_split), dtype=torch.float64)
    for images, labels in face_batches(train_split, image_norm):
        part = torch.zeros(len(train_split), *images.shape[1:], dtype=torch.float64)
        part.index_add_(0, labels, images.double())
        sums = part if sums is None else sums + part
        counts += torch.bincount(labels, minlength=len(train_split))
    if sums is None:
        raise ValueError(f"{train_split.root}/{train_split.split}: no faces to average")
    per_identity = (sums / counts.clamp(min=1).view(-1, 1, 1, 1)).float()
    centre = train_truth[["age", "size"]].astype(float).mean()
    scale = train_truth[["age", "size"]].astype(float).std().replace(0, 1)
    train_z = ((train_truth[["age", "size"]].astype(float) - centre) / scale).to_numpy()
    out = []
    for _, person in truth.iterrows():
        same = np.flatnonzero(train_truth["sex"].to_numpy() == person["sex"])
        if not len(same):
            same = np.arange(len(train_truth))
        z = ((person[["age", "size"]].astype(float) - centre) / scale).to_numpy(float)
        nearest = same[np.argsort(((train_z[same] - z) ** 2).sum(1), kind="stable")[:k]]
        out.append(per_identity[nearest].mean(0))
    return torch.stack(out)


def pixel_features(images: Tensor, image_norm: str = "imagenet", size: int = 16) -> np.ndarray:
    """Generator-space images (n, 3, H, W) as [0, 1] pixels (clamped like the displayed image), averaged down to
    size x size and flattened: (n, 3 size^2)."""
    pixels = to_pixel_range(images.float(), image_norm) / 255.0
    return F.adaptive_avg_pool2d(pixels, size).flatten(1).double().numpy()


def _r2(truth: np.ndarray, predicted: np.ndarray) -> float:
    residual = np.sum((truth - predicted) ** 2)
    total = np.sum((truth - truth.mean()) ** 2)
    return float(1.0 - residual / total) if total > 0 else math.nan


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


@dataclass
class AttributeProbe:
    """Sex, age and size read from faces by probes fitted on real training faces."""

    featurize: Featurizer
    sex: Pipeline
    age: Pipeline
    size: Pipeline
    train_sex_majority: str
    train_age_mean: float
    train_size_mean: float
    # predictions are clipped to the training identities' range: a generated face far outside the real faces'
    # distribution (an untrained generator's) would otherwise extrapolate to ages of thousands of years
    age_range: tuple[float, float]
    size_range: tuple[float, float]

    @classmethod
    def fit(
        cls,
        train_split: PreparedSplit,
        traits: pd.DataFrame,
        features: Literal["pixels", "embedder"] = "pixels",
        embedder: FaceEmbedder | None = None,
        image_norm: str = "imagenet",
        box: tuple[float, ...] = VGG_BOX,
        batch_size: int = 64,
    ) -> AttributeProbe:
        """Fit the three probes on every real face of the training split (each face carries its identity's traits)."""
        if features == "pixels":
            def featurize(images: Tensor) -> np.ndarray:
                return pixel_features(images, image_norm)
        elif features == "embedder":
            if embedder is None:
                raise ValueError("features='embedder' needs a face embedder")
            def featurize(images: Tensor) -> np.ndarray:
                return embed_images(embedder, images, image_norm, box, batch_size).double().numpy()
        else:
            raise ValueError(f"unknown attribute features '{features}' (pixels or embedder)")
        truth = split_traits(train_split, traits)
        x, labels = [], []
        for images, batch_labels in face_batches(train_split, image_norm, batch_size):
            x.append(featurize(images))
            labels.append(batch_labels.numpy())
        x_all, rows = np.concatenate(x), truth.iloc[np.concatenate(labels)]
        alphas = np.logspace(-1, 5, 13)
        sex = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)).fit(x_all, rows["sex"])
        age = make_pipeline(StandardScaler(), RidgeCV(alphas=alphas)).fit(x_all, rows["age"].astype(float))
        size = make_pipeline(StandardScaler(), RidgeCV(alphas=alphas)).fit(x_all, rows["size"].astype(float))
        return cls(
            featurize, sex, age, size,
            str(truth["sex"].mode().iloc[0]), float(truth["age"].mean()), float(truth["size"].mean()),
            (float(truth["age"].min()), float(truth["age"].max())),
            (float(truth["size"].min()), float(truth["size"].max())),
        )

    def raw(self, images: Tensor) -> pd.DataFrame:
        """The probes' unclipped outputs: the sex classifier's decision score (positive: `sex_positive`), age, size."""
        x = self.featurize(images)
        return pd.DataFrame(
            {"sex": self.sex.decision_function(x), "age": self.age.predict(x), "size": self.size.predict(x)}
        )

    @property
    def sex_positive(self) -> str:
        """The sex a positive decision score stands for."""
        return str(self.sex.classes_[1])

    def predict(self, images: Tensor) -> pd.DataFrame:
        """Predicted sex, age and size for generator-space images (n, 3, H, W), ages and sizes clipped."""
        return self._answers(self.raw(images))

    def _answers(self, raw: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({
            "sex": np.where(raw["sex"] > 0, self.sex_positive, str(self.sex.classes_[0])),
            "age": np.clip(raw["age"], *self.age_range),
            "size": np.clip(raw["size"], *self.size_range),
        })

    def score(self, images: Tensor, truth: pd.DataFrame) -> dict[str, float]:
        """Agreement of the probes' reading of `images` (one per identity, label order) with the ground truth."""
        raw = self.raw(images)
        if len(raw) != len(truth):
            raise ValueError(f"{len(raw)} images for {len(truth)} identities")
        predicted = self._answers(raw)
        is_positive = truth["sex"].to_numpy() == self.sex_positive
        both = 0 < is_positive.sum() < len(is_positive)
        return {
            "sex acc": float((predicted["sex"].to_numpy() == truth["sex"].to_numpy()).mean()),
            "sex AUC": float(roc_auc_score(is_positive, raw["sex"])) if both else math.nan,
            "age R2": _r2(truth["age"].to_numpy(float), predicted["age"].to_numpy()),
            "age r": _pearson(truth["age"].to_numpy(float), raw["age"].to_numpy()),
            "size R2": _r2(truth["size"].to_numpy(float), predicted["size"].to_numpy()),
            "size r": _pearson(truth["size"].to_numpy(float), raw["size"].to_numpy()),
        }

    def chance(self, truth: pd.DataFrame) -> dict[str, float]:
        """What answering the training majority / training means scores on these identities."""
        return attribute_chance(truth, self.train_sex_majority, self.train_age_mean, self.train_size_mean)


def attribute_chance(truth: pd.DataFrame, sex_majority: str, age_mean: float, size_mean: float) -> dict[str, float]:
    """Scores of a constant answer: the training majority sex, the training mean age and size (r is 0 by convention)."""
    n = len(truth)
    return {
        "sex acc": float((truth["sex"] == sex_majority).mean()),
        "sex AUC": 0.5,
        "age R2": _r2(truth["age"].to_numpy(float), np.full(n, age_mean)),
        "age r": 0.0,
        "size R2": _r2(truth["size"].to_numpy(float), np.full(n, size_mean)),
        "size r": 0.0,
    }
