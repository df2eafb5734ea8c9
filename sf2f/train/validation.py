"""A cheap, deterministic check of the generator on the validation split, for best-by-metric checkpoints (the paper's
metrics, recipe §3.5, are `python -m sf2f evaluate`'s): `l1`, `cosine` and `recall_at_k` against each identity's mean
real-face embedding (§4.2), and `spread` (not in the paper: the generated faces' per-pixel deviation across speakers
over the real faces'; 0 is one face for all, a collapse the others hide)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader

from sf2f.config import ExperimentConfig
from sf2f.data.datasets import dataset_for, generator_inputs, make_loader
from sf2f.data.prepared import PreparedSplit
from sf2f.embedder_weights import scoring_embedder
from sf2f.faces import normalize_images
from sf2f.losses import multiscale_targets
from sf2f.models.face_embedders import FaceEmbedder, embed_faces
from sf2f.models.generator import Generator


@dataclass
class ValidationResult:
    """The generator's output on the validation split, with what the metrics compare it to (all on the CPU)."""

    labels: Tensor  # (n,) identity of each generated face
    generated: tuple[Tensor, ...]  # one (n, 3, S, S) batch per output scale, smallest first
    real: Tensor  # (n, 3, S, S) the real faces of the samples, at the largest scale
    probes: Tensor  # (n, D) L2-normalised embeddings of the generated faces (largest scale)
    gallery: Tensor  # (identities, D) L2-normalised mean embedding of every real face of each identity


def gallery_embeddings(split: PreparedSplit, embedder: FaceEmbedder, image_norm: str = "imagenet") -> Tensor:
    """(identities, D): the normalised mean of the normalised embeddings of all real faces of each identity."""
    start = split.face_rows(0).start
    faces = normalize_images(split.face_pixels[start : split.face_rows(len(split) - 1).stop], image_norm)
    emb = F.normalize(embed_faces(embedder, faces, image_norm), dim=1)
    means = [emb[split.face_rows(i).start - start : split.face_rows(i).stop - start].mean(0) for i in range(len(split))]
    return F.normalize(torch.stack(means), dim=1)


def validation_loader(cfg: ExperimentConfig, split: PreparedSplit, batch_size: int = 32) -> DataLoader:
    """Every identity of a split once, in order, with the dataset's fixed evaluation draws."""
    dataset, collate = dataset_for(cfg, split, train=False)
    return make_loader(dataset, collate, [list(range(i, min(i + batch_size, len(dataset))))
                                          for i in range(0, len(dataset), batch_size)])


@torch.no_grad()
def run_validation(generator: Generator, batches: Iterable[Mapping[str, Tensor]], embedder: FaceEmbedder,
                   gallery: Tensor, image_norm: str = "imagenet",
                   autocast: Callable[[], AbstractContextManager] = nullcontext) -> ValidationResult:
    """Generate a face for every validation sample (the generator must already be in eval mode) and embed it."""
    device = next(generator.parameters()).device
    labels, real, scales = [], [], []
    for batch in batches:
        with autocast():
            out = generator(*generator_inputs(batch, device))
        scales.append([x.float().cpu() for x in out.images])
        labels.append(batch["label"])
        real.append(batch["image"])
    generated = tuple(torch.cat(parts) for parts in zip(*scales))
    probes = F.normalize(embed_faces(embedder, generated[-1], image_norm), dim=1)
    return ValidationResult(torch.cat(labels), generated, torch.cat(real), probes, gallery)


class RunValidation:
    """What a run validates with (rank 0, a non-empty split): scoring embedder, gallery, fixed grid samples (<= 8)."""

    def __init__(self, cfg: ExperimentConfig, split: PreparedSplit, data: Path, embedder: FaceEmbedder,
                 device: torch.device, log: Callable[[str], object]) -> None:
        self.cfg, self.split = cfg, split
        scorer, described = scoring_embedder(cfg, data, embedder)
        self.scorer = scorer.to(device).freeze()
        if described:
            log(f"validation scored by the {described}")
        self.gallery = gallery_embeddings(split, self.scorer, cfg.data.image_norm)
        self.samples = next(iter(validation_loader(cfg, split, 8)))

    def __call__(self, generator: Generator, batch_size: int,
                 autocast: Callable[[], AbstractContextManager] = nullcontext) -> ValidationResult:
        """:func:`run_validation` over the whole split (the generator must already be in eval mode)."""
        loader = validation_loader(self.cfg, self.split, batch_size)
        return run_validation(generator, loader, self.scorer, self.gallery, self.cfg.data.image_norm, autocast)


def recall_at_k(probes: Tensor, gallery: Tensor, labels: Tensor, ks: Sequence[int]) -> dict[int, float]:
    """Fraction of probes whose own identity is among the k most cosine-similar gallery entries, for each k."""
    scores = F.normalize(probes, dim=1) @ F.normalize(gallery, dim=1).T
    own = scores.gather(1, labels[:, None])
    rank = (scores > own).sum(dim=1)  # how many identities beat the right one (ties count in its favour)
    return {k: float((rank < k).float().mean()) for k in ks}


def face_spread(generated: Tensor, real: Tensor) -> float:
    """Per-pixel standard deviation of `generated` (n, 3, S, S) across its n faces, averaged over pixels, relative to
    the same for `real` (at the same size): 0 when every face is the same, 1 when they vary as much as the real ones."""
    if len(generated) < 2:
        raise ValueError(f"the spread of faces needs at least 2 of them, got {len(generated)}")
    real = multiscale_targets(real, [generated.shape[-1]])[0]
    return float(generated.std(dim=0).mean() / real.std(dim=0).mean().clamp_min(1e-12))


def quick_metrics(result: ValidationResult, ks: Sequence[int]) -> dict[str, float]:
    """`l1`, `cosine`, `recall_at_<k>` for every k below the number of identities (larger k are trivially 1), and
    `spread` (omitted for a single sample)."""
    targets = multiscale_targets(result.real, [g.shape[-1] for g in result.generated])
    l1 = torch.stack([F.l1_loss(g, t) for g, t in zip(result.generated, targets)]).mean()
    cosine = (result.probes * result.gallery[result.labels]).sum(dim=1).mean()
    usable = [k for k in ks if k < len(result.gallery)]
    recalls = recall_at_k(result.probes, result.gallery, result.labels, usable)
    spread = {"spread": face_spread(result.generated[-1], targets[-1])} if len(result.labels) > 1 else {}
    return {"l1": float(l1), "cosine": float(cosine), **{f"recall_at_{k}": v for k, v in recalls.items()}, **spread}


def tracked_metrics(ks: Sequence[int], identities: int) -> dict[str, Literal["min", "max"]]:
    """The quick metrics a run keeps a best checkpoint for: lower L1, higher cosine and recall."""
    return {"l1": "min", "cosine": "max", **{f"recall_at_{k}": "max" for k in ks if k < identities}}
