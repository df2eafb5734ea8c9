"""Probes: one generated face (and its embedding) per identity of a split, in the three modes of recipe §4.2.

* `naive`: a generator without fuser gets one crop of one utterance (one crop length for the whole split, uniform in
  [100, 150] frames; an utterance and a start drawn per identity from seeded generators); a fuser generator gets the
  segments below, fused into one face. p_i = F(face).
* `average_facenet_embedding`: segments = the first <= 20 non-overlapping 125-frame windows of the identity's sorted
  utterances; one face per segment; p_i = the mean of their F (not re-normalised).
* `average_voice_embedding`: the same segments; the encoder's embeddings averaged (not re-normalised), decoded into
  one face; p_i = F(face).

The original draws its naive crops at random on every evaluation (§6 item 16); here every draw is seeded by
`eval.seed`, so evaluating the same generator twice gives the same numbers. A generator with a fuser fed a single
segment fuses that one segment (`average_facenet_embedding`); `average_voice_embedding` bypasses the fuser (the mean
of the encoder's segment embeddings goes to the decoder, which is what the mode means).

Generated images are taken at the generator's largest output scale (128 px for the multi-resolution configs). The
image-level metrics (VGGFace/ID-classifier score, FID, attributes) need one image per identity: the probe's face in
the `naive` and `average_voice_embedding` modes, the first segment's face in `average_facenet_embedding`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from sf2f.config import DataConfig
from sf2f.data.datasets import CropCollate, SegmentCollate, SegmentDataset, VoiceFaceDataset
from sf2f.data.prepared import PreparedSplit
from sf2f.errors import UsageError
from sf2f.evaluate.embeddings import device_of, embed_images, eval_mode, group_mean
from sf2f.faces import VGG_BOX
from sf2f.models.face_embedders import FaceEmbedder
from sf2f.models.generator import Generator

__all__ = [
    "PROBE_MODES",
    "ProbeMode",
    "ProbeSet",
    "decode_voices",
    "evaluation_segments",
    "make_probes",
    "seeded",
    "segment_batches",
    "segment_voices",
]

ProbeMode = Literal["naive", "average_facenet_embedding", "average_voice_embedding"]
PROBE_MODES: tuple[str, ...] = ("naive", "average_facenet_embedding", "average_voice_embedding")


@dataclass(frozen=True)
class ProbeSet:
    """The probes of one mode: p_i (n, D), one generated image per identity (n, 3, S, S) and its F (n, D), on CPU."""

    mode: str
    embeddings: Tensor
    images: Tensor
    image_embeddings: Tensor


@contextmanager
def seeded(device: torch.device, seed: int) -> Iterator[None]:
    """Torch's global generators seeded for the duration and restored after (a generator that adds noise in eval
    mode, the original v2f's habit, §6 item 13, then draws the same noise on every evaluation)."""
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def evaluation_segments(split: PreparedSplit, data: DataConfig, seed: int = 0) -> SegmentDataset:
    """The evaluation segments of §4.6: the first `max_segments` non-overlapping `segment_frames` windows of each
    identity's utterances in sorted order, from frame 0 (whatever stride training uses)."""
    return SegmentDataset(
        split,
        data.audio,
        segment_frames=data.segment_frames,
        segment_stride=data.segment_frames,
        max_segments=data.max_segments,
        random_start=False,
        image_norm=data.image_norm,
        train=False,
        seed=seed,
    )


def segment_batches(dataset: SegmentDataset, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Every identity's segments, flattened into batches of about `batch_size` (whole identities per batch):
    segments (m, n_mels, frames) and the identity each one belongs to (m,)."""
    segments: list[Tensor] = []
    owners: list[Tensor] = []
    for index in range(len(dataset)):
        stack = dataset[index]["segments"]
        segments.append(stack)
        owners.append(torch.full((len(stack),), index, dtype=torch.long))
        if sum(len(s) for s in segments) >= batch_size:
            yield torch.cat(segments), torch.cat(owners)
            segments, owners = [], []
    if segments:
        yield torch.cat(segments), torch.cat(owners)


def segment_voices(generator: Generator, segments: SegmentDataset, batch_size: int = 32) -> tuple[Tensor, Tensor]:
    """The encoder's embedding of every segment (m, D) and the identity each one belongs to (m,), on the CPU (call
    in eval mode and without gradients, as :func:`make_probes` does)."""
    voices, owners = [], []
    for stack, owner in segment_batches(segments, batch_size):
        voices.append(generator.encoder(stack.to(device_of(generator))).float().cpu())
        owners.append(owner)
    return torch.cat(voices), torch.cat(owners)


def decode_voices(generator: Generator, voices: Tensor, batch_size: int = 32) -> Tensor:
    """Faces (n, 3, S, S) at the largest scale, on the CPU, decoded from voice embeddings (n, D)."""
    device = device_of(generator)
    return torch.cat([generator.decode(v.to(device))[-1].float().cpu() for v in voices.split(batch_size)])


def _generate(generator: Generator, mel: Tensor, mask: Tensor | None = None) -> Tensor:
    device = device_of(generator)
    out = generator(mel.to(device), None if mask is None else mask.to(device))
    return out.images[-1].float().cpu()


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


def _first_of_each(owners: Tensor) -> Tensor:
    """Positions where a new owner starts (owners come in runs)."""
    starts = torch.ones(len(owners), dtype=torch.bool)
    starts[1:] = owners[1:] != owners[:-1]
    return starts


def make_probes(
    generator: Generator,
    split: PreparedSplit,
    data: DataConfig,
    embedder: FaceEmbedder,
    mode: ProbeMode,
    seed: int = 0,
    box: tuple[float, ...] = VGG_BOX,
    batch_size: int = 32,
) -> ProbeSet:
    """The probes of one mode for every identity of `split` (generator and embedder in eval mode meanwhile)."""
    if mode not in PROBE_MODES:
        raise UsageError(f"unknown probe mode '{mode}' (known: {', '.join(PROBE_MODES)})")
    n = len(split)
    norm = data.image_norm
    with torch.no_grad(), eval_mode(generator), seeded(device_of(generator), seed):
        if mode == "naive":
            images = _naive_images(generator, split, data, seed, batch_size)
            embeddings = embed_images(embedder, images, norm, box, batch_size)
            return ProbeSet(mode, embeddings, images, embeddings)
        segments = evaluation_segments(split, data, seed)
        if mode == "average_facenet_embedding":
            per_segment, owners, firsts = [], [], []
            for stack, owner in segment_batches(segments, batch_size):
                faces = _generate(generator, stack)
                per_segment.append(embed_images(embedder, faces, norm, box, batch_size))
                owners.append(owner)
                firsts.append(faces[_first_of_each(owner)])
            images = torch.cat(firsts)
            embeddings = group_mean(torch.cat(per_segment), torch.cat(owners), n)
            return ProbeSet(mode, embeddings, images, embed_images(embedder, images, norm, box, batch_size))
        images = decode_voices(generator, group_mean(*segment_voices(generator, segments, batch_size), n), batch_size)
        embeddings = embed_images(embedder, images, norm, box, batch_size)
        return ProbeSet(mode, embeddings, images, embeddings)
