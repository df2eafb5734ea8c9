"""A face from speech files with a trained generator (`python -m sf2f infer`, notebook 07): the checkpoint config's
features (recipe §1.4) cut into 125-frame windows (§4.6, §1.6; 1 to 1.25 s gives one padded window), then fused by a
fuser model (every window of every file) or, for a stage-1 model, the windows' embeddings averaged (§4.2)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from sf2f.audio import AudioError, MelStats, extract_log_mels, normalize_mel, pad_value
from sf2f.config import DataConfig, ExperimentConfig
from sf2f.data.segments import cut_segments, pad_to_segment
from sf2f.errors import SF2FError, UsageError
from sf2f.faces import denormalize_images
from sf2f.models.generator import Generator

# the shortest voice crop the generator trains on is 100 frames, one second (§1.6): less is not a voice it knows
MIN_SPEECH_SECONDS = 1.0


class NoUsableSpeechError(SF2FError, ValueError):
    """Some of the given files give no speech to make a face from; `errors` names each file and its reason."""

    def __init__(self, errors: Sequence[AudioError]) -> None:
        lines = "\n".join(f"  {e}" for e in errors)
        super().__init__(f"{len(errors)} file(s) give no usable speech, nothing was generated:\n{lines}")
        self.errors = list(errors)


@dataclass(frozen=True)
class SpeechFile:
    """What one input file gave: its length, the speech the VAD kept, its windows and any conversion notes."""

    path: str
    seconds: float
    speech_seconds: float
    segments: int
    padded: bool
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SpeechSegments:
    """Normalised log-mel windows (N, n_mels, frames) of several files, and which file each window came from."""

    segments: Tensor
    file_index: Tensor
    files: tuple[SpeechFile, ...]

    def __len__(self) -> int:
        return len(self.segments)


def speech_segments(paths: Sequence[str | Path], data: DataConfig, stats: MelStats | None = None) -> SpeechSegments:
    """Every file's speech as windows of `data.segment_frames` frames, with `data.audio`'s features (`stats`: the
    prepared data's stats.json, only for `audio.mel_norm: dataset`). Any file that gives no usable speech is an error
    naming it, and nothing is computed from the others: a face fused from fewer files would silently be another."""
    if not paths:
        raise UsageError("give at least one audio file")
    results = extract_log_mels(list(paths), data.audio)
    errors = []
    for r in results:
        if isinstance(r, AudioError):
            errors.append(r)
        elif r.voiced_seconds < MIN_SPEECH_SECONDS:
            errors.append(AudioError(r.path, f"too short: {r.voiced_seconds:.2f} s of speech (of {r.seconds:.2f} s), "
                                             f"at least {MIN_SPEECH_SECONDS:g} s needed"))
    if errors:
        raise NoUsableSpeechError(errors)
    segments: list[Tensor] = []
    index, files = [], []
    for k, utterance in enumerate(results):
        mel = normalize_mel(utterance.mel, data.audio, stats)
        windows = cut_segments([mel], data.segment_frames, data.segment_stride, max_segments=mel.shape[1])
        padded = not windows  # speech shorter than a window: one window, padded as the training crops are
        windows = windows or [pad_to_segment(mel, data.segment_frames, pad_value(data.audio, stats))]
        segments += windows
        index += [k] * len(windows)
        files.append(SpeechFile(utterance.path, utterance.seconds, utterance.voiced_seconds, len(windows), padded,
                                utterance.notes))
    return SpeechSegments(torch.stack(segments), torch.tensor(index), tuple(files))


@dataclass(frozen=True)
class FaceFromVoice:
    """One generated face and how it was made (tensors on the CPU): one normalised (3, H, W) image per output scale,
    smallest first; the (D,) voice embedding the decoder saw; each window's (N, D) embedding; the fuser's (N, N)
    attention (row n: how window n's query spreads over all windows; None without a fuser)."""

    images: tuple[Tensor, ...]
    embedding: Tensor
    segment_embeddings: Tensor
    attention: Tensor | None
    speech: SpeechSegments
    fusion: str
    image_norm: str = "imagenet"

    @property
    def segment_weights(self) -> Tensor | None:
        """How much of the fused mix each window provides: the attention it receives, averaged over the queries (N,),
        summing to 1 (the fuser averages its per-query outputs, §2.2). None without a fuser."""
        return None if self.attention is None else self.attention.mean(dim=0)

    def pixels(self, scale: int = -1) -> np.ndarray:
        """The face at output scale `scale` (default: the largest) as uint8 RGB (H, W, 3)."""
        return denormalize_images(self.images[scale], self.image_norm).permute(1, 2, 0).numpy()

    def summary(self) -> dict[str, Any]:
        """What went into the face, as plain data (written next to the images)."""
        files = [{"path": f.path, "seconds": round(f.seconds, 3), "speech_seconds": round(f.speech_seconds, 3),
                  "segments": f.segments, "padded": f.padded, "notes": list(f.notes)} for f in self.speech.files]
        return {"fusion": self.fusion, "segments": len(self.speech),
                "segment_frames": int(self.speech.segments.shape[-1]),
                "image_sizes": [int(img.shape[-1]) for img in self.images], "files": files}

    def save(self, out_dir: str | Path, info: Mapping[str, Any] | None = None) -> list[Path]:
        """Write `face_<size>.png` for every output scale and `face.json` (:meth:`summary` and `info`)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = [out / f"face_{img.shape[-1]}.png" for img in self.images]
        for scale, path in enumerate(written):
            Image.fromarray(self.pixels(scale)).save(path)
        summary = out / "face.json"
        summary.write_text(json.dumps({**(info or {}), **self.summary()}, indent=1) + "\n", encoding="utf-8")
        return [*written, summary]


@torch.inference_mode()
def generate_face(generator: Generator, cfg: ExperimentConfig, paths: Sequence[str | Path],
                  stats: MelStats | None = None, renormalize_mean: bool = True) -> FaceFromVoice:
    """One face from the speech in `paths`, fused over all their windows (`generator`, `cfg`: from `load_generator`). A
    stage-1 model's mean embedding is scaled back to unit length when the encoder L2-normalises (§2.1), as the decoder
    only saw unit vectors: the mean of windows that disagree is shorter (about 0.7 for a demo speaker's 20) and decodes
    to a fainter face. The original does not; `renormalize_mean=False` keeps its mean."""
    speech = speech_segments(paths, cfg.data, stats)
    device = next(generator.parameters()).device
    segments = speech.segments.to(device)
    if generator.fuser is not None:
        mask = torch.ones(1, len(segments), dtype=torch.bool, device=device)
        per_segment = generator.encoder(segments[None], mask)
        embedding, attention = generator.fuser(per_segment, mask)
        per_segment, attention, fusion = per_segment[0], attention[0].cpu(), "attention"
    else:
        per_segment = generator.encoder(segments)
        embedding, attention, fusion = per_segment.mean(dim=0, keepdim=True), None, "mean"
        if renormalize_mean and cfg.model.encoder.normalize_embedding:
            embedding = F.normalize(embedding, dim=1)
    images = tuple(img[0].float().cpu() for img in generator.decode(embedding))
    return FaceFromVoice(images, embedding[0].float().cpu(), per_segment.float().cpu(), attention, speech, fusion,
                         cfg.data.image_norm)


@torch.inference_mode()
def interpolate_faces(generator: Generator, start: Tensor, end: Tensor, weights: Sequence[float]) -> tuple[Tensor, ...]:
    """One (T, 3, H, W) batch per output scale of faces decoded between voice embeddings `start` and `end`, one per
    weight t: (1 - t) start + t end, rescaled to the length between the endpoints' lengths, since fused embeddings are
    unit vectors (§2.2) and the decoder never saw the shorter ones in the middle of the chord."""
    device = next(generator.parameters()).device
    t = torch.tensor(list(weights), dtype=start.dtype, device=device)[:, None]
    a, b = start.to(device), end.to(device)
    mix = (1 - t) * a + t * b
    length = (1 - t) * a.norm() + t * b.norm()
    mix = mix * (length / mix.norm(dim=1, keepdim=True).clamp_min(1e-12))
    return tuple(img.float().cpu() for img in generator.decode(mix))
