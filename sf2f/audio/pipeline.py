"""Files to features: steps 1-3 of the audio pipeline for many files, one error per bad file; voice2face's settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sf2f.audio.decode import AudioError, load_audio
from sf2f.audio.mel import log_mel_batch, win_hop
from sf2f.audio.vad import voice_activity
from sf2f.config import AudioConfig


@dataclass(frozen=True)
class Utterance:
    """Raw (not normalised) log-mel features (n_mels, T) of one file, with what was done to get them; `mel` is a
    transposed view of a time-major block, so `mel.T` is what the cache stores, without a copy."""

    path: str
    mel: torch.Tensor
    seconds: float
    voiced_seconds: float
    notes: tuple[str, ...] = ()


def _voiced(path: str | Path, cfg: AudioConfig) -> tuple[np.ndarray, float, tuple[str, ...]]:
    """The samples of a file that the VAD keeps (all of them without VAD), the file's length in seconds and the notes
    of its decoding; AudioError for a file that gives none."""
    decoded = load_audio(path, cfg.sample_rate)
    samples = decoded.samples
    if len(samples) < win_hop(cfg)[0]:
        reason = f"too short: {len(samples)} samples, less than one {cfg.win_ms:g} ms window"
    else:
        if cfg.vad:  # load_audio gave the file cfg.sample_rate
            samples = voice_activity(samples, cfg.sample_rate, cfg).apply(samples)
        if len(samples) > 0:
            return samples, decoded.seconds, decoded.notes
        reason = f"silent: the VAD found no speech in {decoded.seconds:.2f} s"
    # what decoding found (a file cut short) may explain why it is too short or silent
    raise AudioError(path, f"{reason} ({'; '.join(decoded.notes)})" if decoded.notes else reason)


def extract_log_mels(paths: Sequence[str | Path], cfg: AudioConfig,
                     batch_samples: int = 4_000_000) -> list[Utterance | AudioError]:
    """Decode, VAD and featurise many files; a file that gives no features (unreadable, too short, no speech found:
    the original crashes or writes a single log(eps) frame, §1.4) yields an :class:`AudioError` in its place. About
    `batch_samples` voiced samples (4M: about 4 minutes of audio) are featurised at once."""
    results: list[Utterance | AudioError | None] = [None] * len(paths)
    pending: list[tuple[int, np.ndarray, float, tuple[str, ...]]] = []
    waiting = 0
    for slot, path in enumerate(paths):
        try:
            pending.append((slot, *_voiced(path, cfg)))
            waiting += len(pending[-1][1])
        except AudioError as error:
            results[slot] = error
        if slot == len(paths) - 1 or waiting >= batch_samples:
            for (done, samples, seconds, notes), mel in zip(pending, log_mel_batch([p[1] for p in pending], cfg)):
                # a view of its rows of the batch's array (at most a few MB, which preparation concatenates anyway)
                results[done] = Utterance(str(paths[done]), mel, seconds, len(samples) / cfg.sample_rate, notes)
            pending, waiting = [], 0
    return results  # type: ignore[return-value]


def voice2face_audio_config() -> AudioConfig:
    """The voice2face recipe (§7.2), framed as python_speech_features frames (voice2face's Sphinx code ends one frame
    earlier or later)."""
    return AudioConfig(vad_aggressiveness=2, vad_frame_ms=20, vad_padding_ms=50, n_mels=64, n_fft=1024,
                       window="hamming", f_min=20.0, f_max=7200.0, filterbank_norm="area", power_scale="none",
                       log_floor=1e-5, log_floor_mode="clip", mel_norm="utterance")
