"""Torch datasets, collates and loader over a prepared split (recipe §1.6). The fuser stage pads segment counts by a
mask (the original's collate fails on unequal counts, §6 item 15); generators seeded by (seed, epoch, identity) give the
same batches with any number of workers, and evaluation the same samples every epoch (§6 item 16)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from sf2f.audio import MelStats, normalize_mel, pad_value
from sf2f.config import AudioConfig, ExperimentConfig
from sf2f.data.prepared import PreparedSplit
from sf2f.data.segments import cut_segments, pad_to_segment
from sf2f.faces import normalize_images

Sample = dict[str, Any]


class _IdentityDataset(Dataset):
    """Shared by both datasets: one item per identity, normalisation, and per-item generators."""

    def __init__(self, split: PreparedSplit, audio: AudioConfig, image_norm: str = "imagenet", train: bool = True,
                 seed: int = 0, hflip: bool = False) -> None:
        self.split, self.audio, self.image_norm, self.train, self.seed = split, audio, image_norm, train, seed
        # the original's image_random_hflip (p = 0.5, training only), off in every paper config (§1.5)
        self.hflip = hflip and train
        self.epoch = 0  # the trainer sets it: new draws every epoch in training, the same samples in evaluation
        self.stats: MelStats | None = split.stats() if audio.mel_norm == "dataset" else None

    def __len__(self) -> int:
        return len(self.split)

    @property
    def pad_value(self) -> float:
        return pad_value(self.audio, self.stats)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index] if self.train else [self.seed, index])

    def _mel(self, row: int) -> torch.Tensor:
        return normalize_mel(torch.from_numpy(self.split.mel(row)), self.audio, self.stats)

    def _face(self, index: int, rng: np.random.Generator) -> Sample:
        """One random face of the identity: {'image', 'face_row', 'flipped'}."""
        rows = self.split.face_rows(index)
        row = rows[int(rng.integers(len(rows)))]
        pixels = self.split.face(row)
        flipped = bool(self.hflip and rng.random() < 0.5)
        if flipped:
            pixels = pixels[:, ::-1]
        image = normalize_images(np.ascontiguousarray(pixels), self.image_norm)
        return {"image": image, "face_row": row, "flipped": flipped}


class VoiceFaceDataset(_IdentityDataset):
    """Stage-1 items: {'image': (3, S, S), 'mel': (n_mels, T) a whole utterance, 'label', 'face_row', ...}."""

    def __getitem__(self, index: int) -> Sample:
        rng = self._rng(index)
        rows = self.split.utterance_rows(index)
        mel = self._mel(rows[int(rng.integers(len(rows)))])
        return {**self._face(index, rng), "mel": mel, "label": index, "key": int(rng.integers(2**62))}


def _stack_faces(batch: Sequence[Sample]) -> Sample:
    return {"image": torch.stack([s["image"] for s in batch]),
            "label": torch.tensor([s["label"] for s in batch], dtype=torch.long),
            "face_row": torch.tensor([s["face_row"] for s in batch], dtype=torch.long),
            "flipped": torch.tensor([s["flipped"] for s in batch], dtype=torch.bool)}


def face_keys(batch: Sample) -> list[int]:
    """One integer per sample naming the exact real image it carries (face row, and whether it is mirrored)."""
    return (batch["face_row"] * 2 + batch["flipped"].long()).tolist()


def generator_inputs(batch: Sample, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor | None]:
    """What a generator takes from a collated batch: (mel, None) for stage 1, (segments, mask) for the fuser."""
    if "segments" in batch:
        return batch["segments"].to(device), batch["mask"].to(device)
    return batch["mel"].to(device), None


@dataclass(frozen=True)
class CropCollate:
    """One crop length per batch, uniform in `crop_frames` (both ends included); a random crop of each utterance that
    is long enough, right-padding with `pad` for the others (§1.6)."""

    crop_frames: Sequence[int] = (100, 150)
    pad: float = pad_value(AudioConfig())

    def __call__(self, batch: Sequence[Sample]) -> Sample:
        rng = np.random.default_rng([int(s["key"]) for s in batch])
        length = int(rng.integers(self.crop_frames[0], self.crop_frames[1] + 1))
        n_mels = batch[0]["mel"].shape[0]
        mels = torch.full((len(batch), n_mels, length), self.pad, dtype=batch[0]["mel"].dtype)
        for i, sample in enumerate(batch):
            mel = sample["mel"]
            if mel.shape[1] >= length:
                start = int(rng.integers(0, mel.shape[1] - length + 1))
                mels[i] = mel[:, start : start + length]
            else:
                mels[i, :, : mel.shape[1]] = mel
        return {**_stack_faces(batch), "mel": mels}


class SegmentDataset(_IdentityDataset):
    """Fuser-stage items: {'image', 'segments': (N, n_mels, frames) with 1 <= N <= max_segments, 'label', ...}; an
    identity without a full segment (the original crashes on it, §6 item 15) gets its longest utterance padded."""

    def __init__(self, split: PreparedSplit, audio: AudioConfig, segment_frames: int = 125, segment_stride: int = 125,
                 max_segments: int = 20, random_start: bool = True, **options: Any) -> None:
        super().__init__(split, audio, **options)
        self.segment_frames, self.segment_stride, self.max_segments = segment_frames, segment_stride, max_segments
        self.random_start = random_start and self.train

    def __getitem__(self, index: int) -> Sample:
        rng = self._rng(index)
        rows = list(self.split.utterance_rows(index))
        if self.train:
            rows = [rows[i] for i in rng.permutation(len(rows))]
        mels = [self._mel(r) for r in rows]
        segments = cut_segments(mels, self.segment_frames, self.segment_stride, self.max_segments,
                                rng if self.random_start else None)
        if not segments:
            segments = [pad_to_segment(max(mels, key=lambda m: m.shape[1]), self.segment_frames, self.pad_value)]
        return {**self._face(index, rng), "segments": torch.stack(segments), "label": index,
                "key": int(rng.integers(2**62))}


@dataclass(frozen=True)
class SegmentCollate:
    """Pads every identity's segments to the batch's largest count: segments (B, N, n_mels, frames) and a boolean
    mask (B, N) that is True for real segments (padding segments hold `pad`)."""

    pad: float = pad_value(AudioConfig())

    def __call__(self, batch: Sequence[Sample]) -> Sample:
        segments = pad_sequence([s["segments"] for s in batch], batch_first=True, padding_value=self.pad)
        mask = torch.arange(segments.shape[1]) < torch.tensor([s["segments"].shape[0] for s in batch])[:, None]
        return {**_stack_faces(batch), "segments": segments, "mask": mask}


def dataset_for(cfg: ExperimentConfig, split: PreparedSplit, train: bool
                ) -> tuple[VoiceFaceDataset | SegmentDataset, CropCollate | SegmentCollate]:
    """The dataset and collate a config trains (or evaluates) on: crops for stage 1, segments for the fuser stage."""
    data = cfg.data
    common = {"image_norm": data.image_norm, "train": train, "seed": cfg.run.seed, "hflip": data.image_hflip}
    if cfg.optim.stage == "fuser":
        segments = SegmentDataset(split, data.audio, data.segment_frames, data.segment_stride, data.max_segments,
                                  data.random_segment_start, **common)
        return segments, SegmentCollate(segments.pad_value)
    crops = VoiceFaceDataset(split, data.audio, **common)
    return crops, CropCollate(data.crop_frames, crops.pad_value)


#: Fork on Linux: the trainer makes new workers every epoch (spawned ones would import torch 12,000 times in a paper
#: run) and they never touch the GPU. Elsewhere spawn (macOS's libraries are not fork-safe, Windows has no fork).
WORKER_START_METHOD = "fork" if sys.platform.startswith("linux") else "spawn"


def epoch_batches(count: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1
                  ) -> list[list[int]]:
    """One process's share of an epoch's batches, from a permutation seeded by (seed, epoch) that makes a resume exact;
    incomplete batches are dropped as in the original (§3.4 "iterations")."""
    sampler = DistributedSampler(range(count), world_size, rank, shuffle=True, seed=seed, drop_last=True)
    sampler.set_epoch(epoch)
    order = list(sampler)
    return [order[i : i + batch_size] for i in range(0, len(order) - batch_size + 1, batch_size)]


def make_loader(dataset: Dataset, collate: Callable[[Sequence[Sample]], Sample], batches: Sequence[Sequence[int]],
                seed: int = 0, num_workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """A DataLoader of exactly `batches` (lists of dataset indices); its own generator (`seed`) seeds the workers, as an
    exact resume must find torch's global random state untouched."""
    return DataLoader(dataset, batch_sampler=batches, collate_fn=collate, num_workers=num_workers,
                      generator=torch.Generator().manual_seed(seed), pin_memory=pin_memory,
                      multiprocessing_context=WORKER_START_METHOD if num_workers else None)
