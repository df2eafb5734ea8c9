"""Probes: one generated face and its embedding p_i per identity of a split, in the three modes of recipe §4.2
(`naive`: one crop, or the fuser over the evaluation segments; `average_facenet_embedding`: the mean F over the
segments' faces; `average_voice_embedding`: one face from the mean voice embedding), seeded (§6 item 16)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import Tensor

from sf2f.config import DataConfig
from sf2f.data.datasets import CropCollate, SegmentCollate, SegmentDataset, VoiceFaceDataset
from sf2f.data.prepared import PreparedSplit
from sf2f.errors import UsageError
from sf2f.evaluate.embeddings import group_mean
from sf2f.faces import VGG_BOX
from sf2f.models.face_embedders import FaceEmbedder, embed_faces
from sf2f.models.generator import Generator, generating

PROBE_MODES: tuple[str, ...] = ("naive", "average_facenet_embedding", "average_voice_embedding")


class ProbeSet(NamedTuple):
    """The probes of one mode: p_i (n, D), one generated image per identity (n, 3, S, S) and its F (n, D), on CPU."""

    mode: str
    embeddings: Tensor
    images: Tensor
    image_embeddings: Tensor


def evaluation_segments(split: PreparedSplit, data: DataConfig, seed: int = 0) -> SegmentDataset:
    """The evaluation segments of §4.6: the first `max_segments` non-overlapping `segment_frames` windows of each
    identity's utterances in sorted order, from frame 0 (whatever stride training uses)."""
    return SegmentDataset(split, data.audio, segment_frames=data.segment_frames, segment_stride=data.segment_frames,
                          max_segments=data.max_segments, random_start=False, image_norm=data.image_norm, train=False,
                          seed=seed)


def _segment_batches(dataset: SegmentDataset, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Segments (m, n_mels, frames) and their identities (m,), whole identities in order, about `batch_size` a batch."""
    batch: list[tuple[int, Tensor]] = []
    for index in range(len(dataset)):
        batch.append((index, dataset[index]["segments"]))
        if sum(len(s) for _, s in batch) >= batch_size or index == len(dataset) - 1:
            yield torch.cat([s for _, s in batch]), torch.cat([torch.full((len(s),), i) for i, s in batch])
            batch = []


def segment_voices(generator: Generator, segments: SegmentDataset, batch_size: int = 32) -> tuple[Tensor, Tensor]:
    """The encoder's embedding of every segment (m, D) and its identity (m,), on the CPU (call inside `generating`)."""
    device = next(generator.parameters()).device
    voices, owners = [], []
    for stack, owner in _segment_batches(segments, batch_size):
        voices.append(generator.encoder(stack.to(device)).float().cpu())
        owners.append(owner)
    return torch.cat(voices), torch.cat(owners)


def decode_voices(generator: Generator, voices: Tensor, batch_size: int = 32) -> Tensor:
    """Faces (n, 3, S, S) at the largest scale, on the CPU, decoded from voice embeddings (n, D)."""
    device = next(generator.parameters()).device
    return torch.cat([generator.decode(v.to(device))[-1].float().cpu() for v in voices.split(batch_size)])


def _generate(generator: Generator, mel: Tensor, mask: Tensor | None = None) -> Tensor:
    device = next(generator.parameters()).device
    return generator(mel.to(device), None if mask is None else mask.to(device)).images[-1].float().cpu()


def _naive_images(generator: Generator, split: PreparedSplit, data: DataConfig, seed: int, batch_size: int) -> Tensor:
    if generator.fuser is None:
        dataset = VoiceFaceDataset(split, data.audio, image_norm=data.image_norm, train=False, seed=seed)
        # the whole split as one batch: one crop length for all (the collate's rule), whatever batch_size is
        mels = CropCollate(data.crop_frames, dataset.pad_value)([dataset[i] for i in range(len(dataset))])["mel"]
        return torch.cat([_generate(generator, chunk) for chunk in mels.split(batch_size)])
    segments = evaluation_segments(split, data, seed)
    collate = SegmentCollate(segments.pad_value)
    images = []
    for start in range(0, len(segments), batch_size):
        batch = collate([segments[i] for i in range(start, min(start + batch_size, len(segments)))])
        images.append(_generate(generator, batch["segments"], batch["mask"]))
    return torch.cat(images)


def make_probes(generator: Generator, split: PreparedSplit, data: DataConfig, embedder: FaceEmbedder, mode: str,
                seed: int = 0, box: tuple[float, ...] = VGG_BOX, batch_size: int = 32) -> ProbeSet:
    """The probes of one mode for every identity of `split`, faces at the generator's largest scale; an averaged p_i
    is not re-normalised, and its image is the first segment's face."""
    if mode not in PROBE_MODES:
        raise UsageError(f"unknown probe mode '{mode}' (known: {', '.join(PROBE_MODES)})")
    norm = data.image_norm
    with generating(generator, seed):
        if mode == "average_facenet_embedding":
            per_segment, owners, firsts = [], [], []
            for stack, owner in _segment_batches(evaluation_segments(split, data, seed), batch_size):
                faces = _generate(generator, stack)
                per_segment.append(embed_faces(embedder, faces, norm, box, batch_size))
                owners.append(owner)
                firsts.append(faces[torch.searchsorted(owner, owner.unique())])  # owners come sorted
            images = torch.cat(firsts)
            embeddings = group_mean(torch.cat(per_segment), torch.cat(owners), len(split))
            return ProbeSet(mode, embeddings, images, embed_faces(embedder, images, norm, box, batch_size))
        if mode == "naive":
            images = _naive_images(generator, split, data, seed, batch_size)
        else:
            voices = segment_voices(generator, evaluation_segments(split, data, seed), batch_size)
            images = decode_voices(generator, group_mean(*voices, len(split)), batch_size)
        embeddings = embed_faces(embedder, images, norm, box, batch_size)
    return ProbeSet(mode, embeddings, images, embeddings)
