"""The real faces of a split through F(.) and their gallery (recipe §4.2), and :class:`PixelNetwork`, how the metrics'
pretrained networks see generated faces."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from sf2f.data.prepared import PreparedSplit
from sf2f.faces import VGG_BOX, denormalize_images, normalize_images
from sf2f.models.face_embedders import FaceEmbedder, embed_faces


def group_mean(values: Tensor, labels: Tensor, n_groups: int) -> Tensor:
    """The mean of the rows of `values` that share a label, for labels 0..n_groups-1 (each must occur)."""
    counts = torch.bincount(labels, minlength=n_groups)
    if bool((counts == 0).any()):
        raise ValueError(f"group(s) {torch.nonzero(counts == 0).flatten().tolist()[:5]} have no rows")
    sums = values.new_zeros(n_groups, values.shape[1]).index_add_(0, labels.to(values.device), values)
    return sums / counts[:, None].to(values)


@dataclass(frozen=True)
class RealFaces:
    """Every real face of a split, embedded once: what the gallery, the ground-truth bound, 1:2 matching and FID use."""

    embeddings: Tensor  # (n faces, D): F of every face, in the split's face order
    labels: Tensor  # (n faces,) identity label of each face
    rows: Tensor  # (n faces,) the face's row in the split (for PreparedSplit.face)
    n_identities: int

    @property
    def gallery(self) -> Tensor:
        """(n identities, D): the mean embedding of each identity's faces, not re-normalised (§4.2)."""
        return group_mean(self.embeddings, self.labels, self.n_identities)

    def chosen_face(self, seed: int, avoid: Tensor | None = None) -> Tensor:
        """One face per identity drawn with a seeded generator, as rows into `embeddings`; with `avoid` (one row per
        identity), another face than that one wherever the identity has several."""
        rng = np.random.default_rng(seed)
        labels = self.labels.numpy()
        chosen = []
        for i in range(self.n_identities):
            rows = np.flatnonzero(labels == i)
            if avoid is not None and len(rows) > 1:
                rows = rows[rows != int(avoid[i])]
            chosen.append(int(rng.choice(rows)))
        return torch.tensor(chosen, dtype=torch.long)

    def gallery_without(self, held_out: Tensor) -> Tensor:
        """The gallery with one face per identity held out (identities with a single face keep it)."""
        keep = torch.ones(len(self.labels), dtype=torch.bool)
        keep[held_out] = False
        counts = torch.bincount(self.labels[keep], minlength=self.n_identities)
        keep[held_out[counts == 0]] = True
        return group_mean(self.embeddings[keep], self.labels[keep], self.n_identities)


def face_batches(split: PreparedSplit, image_norm: str = "imagenet",
                 batch_size: int = 64) -> Iterator[tuple[Tensor, Tensor]]:
    """Every face of a split in generator space, in face order: batches (b, 3, S, S) with their identity labels (b,),
    streamed because a real test split holds tens of thousands of faces."""
    labels = np.concatenate([np.full(len(split.face_rows(i)), i) for i in range(len(split))]) if len(split) else []
    rows = [row for i in range(len(split)) for row in split.face_rows(i)]
    for start in range(0, len(rows), batch_size):
        chunk = slice(start, start + batch_size)
        pixels = np.stack([split.face(r) for r in rows[chunk]])
        yield normalize_images(pixels, image_norm), torch.as_tensor(labels[chunk], dtype=torch.long)


def real_faces(embedder: FaceEmbedder, split: PreparedSplit, image_norm: str = "imagenet",
               box: tuple[float, ...] = VGG_BOX, batch_size: int = 64) -> RealFaces:
    """F(.) of every real face of a split (built once per evaluation, like the original's gallery)."""
    embeddings, labels = [], []
    for images, batch_labels in face_batches(split, image_norm, batch_size):
        embeddings.append(embed_faces(embedder, images, image_norm, box, batch_size))
        labels.append(batch_labels)
    if not embeddings:
        raise ValueError(f"{split.root}/{split.split}: the split holds no faces to build a gallery from")
    rows = [row for i in range(len(split)) for row in split.face_rows(i)]
    return RealFaces(torch.cat(embeddings), torch.cat(labels), torch.tensor(rows, dtype=torch.long), len(split))


@dataclass
class PixelNetwork:
    """A pretrained network on generator-space images, which it sees as the original's metrics do: de-normalised to
    bytes (§4.1); run in chunks of `batch_size` on the network's device."""

    net: nn.Module
    image_norm: str = "imagenet"
    batch_size: int = 32

    @torch.no_grad()
    def run(self, prepare: Callable[[Tensor], Tensor], *images: Tensor) -> Tensor:
        """The network's float32 output, on the CPU, for the `prepare`d byte values of one or more image batches."""
        device = next(self.net.parameters()).device
        out = []
        for chunks in zip(*(x.split(self.batch_size) for x in images)):
            pixels = [prepare(denormalize_images(x.to(device), self.image_norm).float()) for x in chunks]
            out.append(self.net(*pixels).float().cpu())
        return torch.cat(out)
