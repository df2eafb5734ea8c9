"""Do generated faces carry the speaker's sex, age and size? Probes fitted on the training identities' real faces
(synthetic data, whose shared traits shape both voice and face): a logistic regression for sex, ridge regressions for
age and size, on the face at 16x16 (`pixels`) or on F(.) (`embedder`)."""

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
from sf2f.evaluate.embeddings import face_batches
from sf2f.faces import VGG_BOX, normalize_images, to_pixel_range
from sf2f.models.face_embedders import FaceEmbedder, embed_faces


def split_traits(split: PreparedSplit, traits: pd.DataFrame) -> pd.DataFrame:
    """The traits of a split's identities in label order (joined by sub-dataset and name, as the data are)."""
    table = split.identities[["label", "sub", "name"]].merge(traits, on=["sub", "name"], how="left", validate="1:1")
    missing = table.loc[table["sex"].isna(), "name"].tolist()
    if missing:
        raise ValueError(f"{split.root}/{split.split}: no traits for {missing[:5]} (is this the synthetic dataset?)")
    return table.sort_values("label").reset_index(drop=True)


def shared_trait_faces(train_split: PreparedSplit, train_truth: pd.DataFrame, truth: pd.DataFrame, k: int = 20,
                       image_norm: str = "imagenet") -> Tensor:
    """For every identity of `truth`, the average real face of the `k` training identities that share its sex and
    lie nearest in standardised age and size: (n, 3, S, S) in generator space. Only those traits reach both voice and
    face on the synthetic data, so it is about the best face a voice-only model can draw under an L1 or L2 loss."""
    per_identity = torch.stack([
        normalize_images(np.stack([train_split.face(r) for r in train_split.face_rows(i)]), image_norm).double().mean(0)
        for i in range(len(train_split))
    ]).float()
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

    featurize: Callable[[Tensor], np.ndarray]
    sex: Pipeline
    age: Pipeline
    size: Pipeline
    train: pd.DataFrame  # the training identities' traits
    traits: pd.DataFrame  # every identity's (sf2f.data.synthetic.read_traits), for the splits evaluated

    @classmethod
    def fit(cls, train_split: PreparedSplit, traits: pd.DataFrame, features: Literal["pixels", "embedder"] = "pixels",
            embedder: FaceEmbedder | None = None, image_norm: str = "imagenet", box: tuple[float, ...] = VGG_BOX,
            batch_size: int = 64) -> AttributeProbe:
        """Fit the three probes on every real face of the training split (each face carries its identity's traits);
        `pixels` features cannot be matched through the face embedder without drawing the trait."""
        if features not in ("pixels", "embedder"):
            raise ValueError(f"unknown attribute features '{features}' (pixels or embedder)")
        if features == "embedder" and embedder is None:
            raise ValueError("features='embedder' needs a face embedder")

        def featurize(images: Tensor) -> np.ndarray:
            if features == "pixels":  # as displayed, [0, 1], averaged down to 16 x 16 and flattened: (n, 3 * 256)
                pixels = to_pixel_range(images.float(), image_norm) / 255.0
                return F.adaptive_avg_pool2d(pixels, 16).flatten(1).double().numpy()
            return embed_faces(embedder, images, image_norm, box, batch_size).double().numpy()

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
        return cls(featurize, sex, age, size, truth, traits)

    @property
    def sex_positive(self) -> str:
        """The sex a positive decision score stands for."""
        return str(self.sex.classes_[1])

    def predict(self, images: Tensor) -> pd.DataFrame:
        """Sex, age and size read from generator-space images (n, 3, H, W), ages and sizes clipped, and the probes'
        unclipped outputs: `sex score` (the decision, positive for `sex_positive`), `age raw`, `size raw`."""
        x = self.featurize(images)
        score, age, size = self.sex.decision_function(x), self.age.predict(x), self.size.predict(x)
        # clipped to the training identities' range: a face far outside the real faces' distribution (an untrained
        # generator's) would otherwise extrapolate to ages of thousands of years
        ages, sizes = self.train["age"].astype(float), self.train["size"].astype(float)
        return pd.DataFrame({"sex": np.where(score > 0, self.sex_positive, str(self.sex.classes_[0])),
                             "age": np.clip(age, ages.min(), ages.max()),
                             "size": np.clip(size, sizes.min(), sizes.max()),
                             "sex score": score, "age raw": age, "size raw": size})

    def score(self, images: Tensor, truth: pd.DataFrame) -> dict[str, float]:
        """Agreement of the probes' reading of `images` (one per identity, label order) with the ground truth: AUC and
        r from the raw outputs (a face off the real faces' colour scale shifts every reading alike, still ordering the
        speakers), accuracy and R^2 from the clipped answers."""
        predicted = self.predict(images)
        if len(predicted) != len(truth):
            raise ValueError(f"{len(predicted)} images for {len(truth)} identities")
        is_positive = truth["sex"].to_numpy() == self.sex_positive
        both = 0 < is_positive.sum() < len(is_positive)
        return {"sex acc": float((predicted["sex"].to_numpy() == truth["sex"].to_numpy()).mean()),
                "sex AUC": float(roc_auc_score(is_positive, predicted["sex score"])) if both else math.nan,
                "age R2": _r2(truth["age"].to_numpy(float), predicted["age"].to_numpy()),
                "age r": _pearson(truth["age"].to_numpy(float), predicted["age raw"].to_numpy()),
                "size R2": _r2(truth["size"].to_numpy(float), predicted["size"].to_numpy()),
                "size r": _pearson(truth["size"].to_numpy(float), predicted["size raw"].to_numpy())}

    def chance(self, truth: pd.DataFrame) -> dict[str, float]:
        """What a constant answer scores on these identities: the training majority sex, the training mean age and
        size (r is 0 by convention)."""
        return {"sex acc": float((truth["sex"] == str(self.train["sex"].mode().iloc[0])).mean()), "sex AUC": 0.5,
                "age R2": _r2(truth["age"].to_numpy(float), np.full(len(truth), float(self.train["age"].mean()))),
                "age r": 0.0,
                "size R2": _r2(truth["size"].to_numpy(float), np.full(len(truth), float(self.train["size"].mean()))),
                "size r": 0.0}
