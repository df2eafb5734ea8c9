"""A face from speech files with a trained generator: what `python -m sf2f infer` and notebook 07 run.

:func:`speech_segments` turns any audio files (wav, flac, ogg, m4a; any sample rate, any number of channels) into the
generator's input with the checkpoint config's own audio settings: decoding to 16 kHz mono, the original's VAD and
log-mel features and their normalisation (:mod:`sf2f.audio`, recipe §1.4), then windows of 125 frames (1.25 s)
every 125 frames, as the original evaluates a fuser model (§4.6, §1.6). A file with between one second and one window
of speech gives one window, right-padded with the normalised zero as the training crops are (§1.6).

:func:`generate_face` makes one face from all the windows of all the files:

* a generator **with the attention fuser** (SF2F's second stage) encodes every window and fuses them all in one
  (1, N, D) stack with a mask of real windows (§2.2, §4.6). Unlike the training and evaluation loaders it does not
  stop at 20 windows (§1.6): every second of speech a user gives is heard;
* a generator **without a fuser** (stage 1, voice2face) averages the windows' encoder embeddings, the original's
  `average_voice_embedding` probe mode (§4.2), its way of giving a stage-1 model several segments. The original does
  not re-normalise the mean; here it is scaled back to unit length when the encoder L2-normalises its embeddings
  (§2.1), since the decoder only ever saw unit vectors: the mean of windows that disagree is shorter (about 0.7 for
  a demo-profile speaker's 20 windows) and decodes to a smaller, fainter face. `renormalize_mean=False` gives the
  original's mean.

:func:`interpolate_faces` decodes points on the way from one voice embedding to another (the slider of notebook 07).
For speed on many files, :func:`sf2f.models.optimize.optimize_for_inference` gives an equivalent faster generator
that these functions accept as well.
"""

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

from sf2f.audio import AudioError, MelStats, Utterance, extract_log_mels, normalize_mel, pad_value
from sf2f.config import DataConfig, ExperimentConfig
from sf2f.data.segments import cut_segments, pad_to_segment
from sf2f.errors import SF2FError, UsageError
from sf2f.faces import denormalize_images
from sf2f.models.generator import Generator

__all__ = [
    "MIN_SPEECH_SECONDS",
    "FaceFromVoice",
    "NoUsableSpeechError",
    "SpeechFile",
    "SpeechSegments",
    "generate_face",
    "interpolate_faces",
    "speech_segments",
]

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


def _windows(utterance: Utterance, data: DataConfig, stats: MelStats | None) -> tuple[list[Tensor], bool]:
    """The normalised windows of one file, and whether it gave a single padded one (speech shorter than a window)."""
    mel = normalize_mel(utterance.mel, data.audio, stats)
    windows = cut_segments([mel], data.segment_frames, data.segment_stride, max_segments=mel.shape[1])
    if windows:
        return windows, False
    return [pad_to_segment(mel, data.segment_frames, pad_value(data.audio, stats))], True


def speech_segments(
    paths: Sequence[str | Path], data: DataConfig, stats: MelStats | None = None
) -> SpeechSegments:
    """Every file's speech as windows of `data.segment_frames` frames, with `data.audio`'s features.

    Raises :class:`NoUsableSpeechError` listing every file that is missing, empty, not audio, silent to the VAD or
    holds less than :data:`MIN_SPEECH_SECONDS` of speech; nothing is computed from the others then, since a face
    fused from fewer files than asked for would silently be another face. `stats`: the training split's log-mel
    statistics, needed only for `audio.mel_norm: dataset` (the prepared data's stats.json).
    """
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
    index: list[int] = []
    files = []
    for k, utterance in enumerate(results):
        windows, padded = _windows(utterance, data, stats)
        segments += windows
        index += [k] * len(windows)
        files.append(SpeechFile(utterance.path, utterance.seconds, utterance.voiced_seconds, len(windows), padded,
                                utterance.notes))
    return SpeechSegments(torch.stack(segments), torch.tensor(index), tuple(files))


@dataclass(frozen=True)
class FaceFromVoice:
    """One generated face and how it was made (tensors on the CPU).

    `images`: one (3, H, W) image per output scale, smallest first, ImageNet-normalised as the generator outputs them;
    `embedding`: the (D,) voice embedding the decoder saw; `segment_embeddings`: the encoder's (N, D) embedding of
    every window; `attention`: the fuser's (N, N) weights (row n: how window n's query spreads over all windows), None
    without a fuser; `fusion`: "attention" or "mean".
    """

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
        return {
            "fusion": self.fusion,
            "segments": len(self.speech),
            "segment_frames": int(self.speech.segments.shape[-1]),
            "image_sizes": [int(img.shape[-1]) for img in self.images],
            "files": [
                {"path": f.path, "seconds": round(f.seconds, 3), "speech_seconds": round(f.speech_seconds, 3),
                 "segments": f.segments, "padded": f.padded, "notes": list(f.notes)}
                for f in self.speech.files
            ],
        }

    def save(self, out_dir: str | Path, stem: str = "face", info: Mapping[str, Any] | None = None) -> list[Path]:
        """Write `<stem>_<size>.png` for every output scale and `<stem>.json` (:meth:`summary` and `info`, for
        example the checkpoint); return the paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for scale, img in enumerate(self.images):
            path = out / f"{stem}_{img.shape[-1]}.png"
            Image.fromarray(self.pixels(scale)).save(path)
            written.append(path)
        summary = out / f"{stem}.json"
        summary.write_text(json.dumps({**(info or {}), **self.summary()}, indent=1) + "\n", encoding="utf-8")
        return [*written, summary]


def _device(generator: Generator) -> torch.device:
    return next(generator.parameters()).device


@torch.inference_mode()
def generate_face(
    generator: Generator,
    cfg: ExperimentConfig,
    paths: Sequence[str | Path],
    stats: MelStats | None = None,
    renormalize_mean: bool = True,
) -> FaceFromVoice:
    """One face from the speech in `paths`, fused over all their windows (see the module docstring).

    `generator` (in eval mode, on any device) and `cfg` as :func:`sf2f.train.train_or_load.load_generator` returns them; the
    audio settings come from `cfg.data`, so the features are those the model was trained on.
    """
    speech = speech_segments(paths, cfg.data, stats)
    device = _device(generator)
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
    """Faces decoded from voice embeddings between `start` and `end` (D,), one per weight t (0 = start, 1 = end).

    The mix is the straight line (1 - t) start + t end, rescaled to the length interpolated between the two
    endpoints' lengths: fused embeddings are unit vectors (§2.2 `normalize_fusion`) and the decoder never saw the
    shorter vectors in the middle of the chord. Returns one (T, 3, H, W) batch per output scale (on the CPU);
    t = 0 and t = 1 reproduce the two faces.
    """
    device = _device(generator)
    t = torch.tensor(list(weights), dtype=start.dtype, device=device)[:, None]
    a, b = start.to(device), end.to(device)
    mix = (1 - t) * a + t * b
    length = (1 - t) * a.norm() + t * b.norm()
    mix = mix * (length / mix.norm(dim=1, keepdim=True).clamp_min(1e-12))
    return tuple(img.float().cpu() for img in generator.decode(mix))
