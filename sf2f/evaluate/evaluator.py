"""Every metric of recipe §4 and the ones the paper lacked, as table rows: :class:`SplitEvaluator`, the original's
`S2fEvaluator` made whole, embeds a split's real faces once and scores any generator, one row per probe mode."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sf2f.config import ExperimentConfig
from sf2f.data.prepared import PreparedSplit
from sf2f.evaluate.attributes import AttributeProbe, shared_trait_faces, split_traits
from sf2f.evaluate.diversity import LpipsDistance, segment_face_pairs
from sf2f.evaluate.embeddings import face_batches, real_faces
from sf2f.evaluate.fid import InceptionFeatures, fid_from_features
from sf2f.evaluate.probes import PROBE_MODES, ProbeSet, make_probes
from sf2f.evaluate.retrieval import (
    chance_tests,
    grouped_recall,
    inter_human_similarity,
    matching_accuracy,
    paired_similarity,
    whole_split_recall,
)
from sf2f.evaluate.vggface_score import IdentityClassifier, VGGFaceClassifier, inception_score
from sf2f.faces import normalize_images
from sf2f.models.face_embedders import FaceEmbedder, embed_faces
from sf2f.models.generator import Generator


class SplitEvaluator:
    """Every metric of one evaluation split for any number of generators; a metric the split is too small for is left
    empty with a note in `notes`."""

    def __init__(self, split: PreparedSplit, cfg: ExperimentConfig, face_embedder: FaceEmbedder, *,
                 image_classifier: IdentityClassifier | VGGFaceClassifier | None = None,
                 attribute_probe: AttributeProbe | None = None, inception: InceptionFeatures | None = None,
                 lpips: LpipsDistance | None = None, batch_size: int = 32) -> None:
        self.split, self.cfg, self.embedder, self.batch_size = split, cfg, face_embedder, batch_size
        self.image_classifier, self.attribute_probe = image_classifier, attribute_probe
        self.inception, self.lpips = inception, lpips
        self.box, self.norm = tuple(cfg.eval.vgg_box), cfg.data.image_norm
        self.notes: list[str] = []
        self.probes: dict[tuple[str, str], ProbeSet] = {}
        self.faces = real_faces(face_embedder, split, self.norm, self.box, batch_size)
        self.gallery = self.faces.gallery
        seed = cfg.eval.seed
        # one real face per identity for 1:2 matching, and another one (where there are several) as the ground-truth
        # probe, held out of that identity's gallery entry
        self.matching_faces = self.faces.chosen_face(seed)
        self.held_out_faces = self.faces.chosen_face(seed + 1, avoid=self.matching_faces)
        self.truth = None if attribute_probe is None else split_traits(split, attribute_probe.traits)
        self.real_inception = None if inception is None else torch.cat(
            [inception(images) for images, _ in face_batches(split, self.norm, batch_size)])
        n, group, groups = len(split), cfg.eval.recall_group_size, cfg.eval.recall_groups
        if n < group * groups:
            self.notes.append(f"grouped recall not computed: {groups} group(s) of {group} identities need "
                              f"{group * groups}, the split has {n} (set eval.recall_group_size / eval.recall_groups "
                              "to fit; the paper's 3 x 100 needs 300)")
        if image_classifier is not None and n < cfg.eval.vfs_splits:
            self.notes.append(f"{image_classifier.label} not computed: fewer images than {cfg.eval.vfs_splits} splits")

    def embedding_scores(self, embeddings: Tensor, gallery: Tensor | None = None) -> dict[str, Any]:
        """The metrics of probe embeddings (n, D) that need no image, against `gallery` (default the split's); for
        (draws, n, D) each metric averaged over the draws, and the chance tests of the draw-averaged statistics."""
        ev = self.cfg.eval
        gallery = self.gallery if gallery is None else gallery
        draws = []
        for p in embeddings if embeddings.dim() == 3 else embeddings[None]:
            grouped = grouped_recall(p, gallery, ev.recall_ks, ev.recall_group_size, ev.recall_groups, ev.recall_method)
            whole = whole_split_recall(p, gallery, ev.recall_ks, ev.recall_method)
            draws.append({**paired_similarity(p, gallery), "Human": inter_human_similarity(p, gallery),
                          **{f"R@{k}": v for k, v in grouped.items()}, **{f"split R@{k}": v for k, v in whole.items()},
                          "1:2 match": matching_accuracy(p, self.faces.embeddings[self.matching_faces])})
        n = embeddings.shape[-2]
        scores: dict[str, Any] = {"identities": n, **{key: float(np.mean([d[key] for d in draws])) for key in draws[0]}}
        if n >= 2:
            scores.update(chance_tests(embeddings, gallery, ev.recall_method, ev.chance_permutations, ev.seed))
        return scores

    def score_probes(self, probes: ProbeSet, gallery: Tensor | None = None) -> dict[str, Any]:
        """Every metric of one probe set (against `gallery`, default the split's)."""
        ev = self.cfg.eval
        row = self.embedding_scores(probes.embeddings, gallery)
        row["FID (embedder)"] = fid_from_features(self.faces.embeddings, probes.image_embeddings)
        if self.inception is not None:
            row["FID (Inception)"] = fid_from_features(self.real_inception, self.inception(probes.images))
        if self.image_classifier is not None and len(probes.images) >= ev.vfs_splits:
            label = self.image_classifier.label
            score = inception_score(self.image_classifier.probabilities(probes.images), ev.vfs_splits, ev.seed)
            row[f"{label} mean"], row[f"{label} std"] = score.mean, score.std
        if self.attribute_probe is not None:
            row.update(self.attribute_probe.score(probes.images, self.truth))
        return row

    def evaluate(self, generator: Generator, model: str, modes: Sequence[str] = PROBE_MODES,
                 config: str | None = None) -> list[dict[str, Any]]:
        """One row per probe mode for `generator`; the probe sets stay in `self.probes[model, mode]` for figures."""
        config = self.cfg.name if config is None else config
        diversity: dict[str, float] = {}
        if self.lpips is not None:
            pairs = segment_face_pairs(generator, self.split, self.cfg.data, self.cfg.eval.seed)
            distances = self.lpips(*pairs).double().numpy()
            diversity = {"LPIPS mean": float(np.mean(distances)), "LPIPS std": float(np.std(distances))}
        rows = []
        for mode in modes:
            probes = make_probes(generator, self.split, self.cfg.data, self.embedder, mode, self.cfg.eval.seed,
                                 self.box, self.batch_size)
            self.probes[model, mode] = probes
            rows.append({"model": model, "config": config, "mode": mode, "kind": "model", **self.score_probes(probes),
                         **diversity})
        return rows

    def ground_truth_probes(self) -> tuple[ProbeSet, Tensor]:
        """Real faces as probes (a held-out face per identity) and the gallery without them."""
        held = self.held_out_faces
        embeddings = self.faces.embeddings[held]
        images = normalize_images(np.stack([self.split.face(int(r)) for r in self.faces.rows[held]]), self.norm)
        return ProbeSet("real face", embeddings, images, embeddings), self.faces.gallery_without(held)

    def mean_face_probes(self, train_split: PreparedSplit) -> ProbeSet:
        """The average training face as every identity's probe."""
        total, count = 0.0, 0
        for images, _ in face_batches(train_split, self.norm, 256):
            total = total + images.double().sum(dim=0)
            count += len(images)
        if not count:
            raise ValueError(f"{train_split.root}/{train_split.split}: no faces to average")
        face = (total / count).float()
        images = face.expand(len(self.split), *face.shape).contiguous()
        one = embed_faces(self.embedder, images[:1], self.norm, self.box)
        embeddings = one.expand(len(self.split), -1).contiguous()
        return ProbeSet("mean face", embeddings, images, embeddings)

    def reference_rows(self, train_split: PreparedSplit | None = None) -> list[dict[str, Any]]:
        """Chance, the ground-truth faces (this embedder's ceiling) and, given the training split, the mean-face lower
        bound and on synthetic data the shared-trait mean face (the ceiling for a voice: :func:`shared_trait_faces`)."""
        ev, n = self.cfg.eval, len(self.split)
        chance: dict[str, Any] = {"model": "chance", "mode": "", "kind": "chance", "identities": n, "1:2 match": 0.5}
        chance.update({f"R@{k}": k / ev.recall_group_size if k <= ev.recall_group_size else math.nan
                       for k in ev.recall_ks})
        chance.update({f"split R@{k}": k / n if k <= n else math.nan for k in ev.recall_ks})
        if self.image_classifier is not None:
            chance[f"{self.image_classifier.label} mean"] = 1.0
        if self.attribute_probe is not None:
            chance.update(self.attribute_probe.chance(self.truth))
        probes, gallery = self.ground_truth_probes()
        rows = [chance, {"model": "ground truth", "mode": probes.mode, "kind": "upper bound",
                         **self.score_probes(probes, gallery)}]
        if train_split is not None:
            probes = self.mean_face_probes(train_split)
            rows.append({"model": "mean face", "mode": probes.mode, "kind": "lower bound", **self.score_probes(probes)})
            if self.attribute_probe is not None:
                train_truth = split_traits(train_split, self.attribute_probe.traits)
                images = shared_trait_faces(train_split, train_truth, self.truth, image_norm=self.norm)
                embeddings = embed_faces(self.embedder, images, self.norm, self.box, self.batch_size)
                probes = ProbeSet("shared-trait mean face", embeddings, images, embeddings)
                self.probes["shared-trait mean face", probes.mode] = probes
                rows.append({"model": "shared-trait mean face", "mode": probes.mode, "kind": "reference",
                             **self.score_probes(probes)})
        return rows
