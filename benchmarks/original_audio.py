"""The original SF2F audio preparation written plainly, per file and per frame (recipe §1.4): the oracle of
tests/test_audio.py and the baseline of bench_audio.py.

Read with Python's `wave` (16-bit only), webrtcvad on 30 ms frames taken while `offset + frame_bytes < len`, the
ring-buffer collector, python_speech_features 0.6 `logfbank` (float64), one pickle per utterance. Written from the
description in docs/original_recipe.md, in the style of py-webrtcvad's example collector that the original follows;
no code is copied.
"""

from __future__ import annotations

import collections
import pickle
import wave
from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path

import numpy as np
import python_speech_features
import webrtcvad

__all__ = ["collect_voiced", "convert_files", "read_pcm", "vad", "wav_to_mel"]


def read_pcm(path: str | Path) -> tuple[bytes, int]:
    """The raw 16-bit PCM bytes and the sample rate, as `wave` gives them (channels and rate are not checked)."""
    with wave.open(str(path), "rb") as f:
        assert f.getsampwidth() == 2, f"{path}: the original only reads 16-bit wav"
        return f.readframes(f.getnframes()), f.getframerate()


def collect_voiced(frames: Iterable[tuple[Hashable, bool]], ring_size: int, ratio: float = 0.9) -> list[list[Hashable]]:
    """The trigger/release state machine over (frame, is_speech) pairs: the voiced segments, in order."""
    ring: collections.deque = collections.deque(maxlen=ring_size)
    triggered = False
    voiced: list = []
    segments: list[list] = []
    for frame, is_speech in frames:
        if not triggered:
            ring.append((frame, is_speech))
            if len([f for f, s in ring if s]) > ratio * ring.maxlen:
                triggered = True
                voiced.extend(f for f, _ in ring)
                ring.clear()
        else:
            voiced.append(frame)
            ring.append((frame, is_speech))
            if len([f for f, s in ring if not s]) > ratio * ring.maxlen:
                triggered = False
                segments.append(voiced)
                ring.clear()
                voiced = []
    if voiced:
        segments.append(voiced)
    return segments


def vad(pcm: bytes | np.ndarray, rate: int = 16000, mode: int = 1, frame_ms: int = 30, padding_ms: int = 300) -> np.ndarray:
    """The voiced samples (int16) the original keeps."""
    if isinstance(pcm, np.ndarray):
        pcm = pcm.astype("<i2").tobytes()
    n = int(rate * frame_ms / 1000) * 2
    detector = webrtcvad.Vad(mode)
    frames, offset = [], 0
    while offset + n < len(pcm):
        frames.append(pcm[offset : offset + n])
        offset += n
    segments = collect_voiced(((f, detector.is_speech(f, rate)) for f in frames), int(padding_ms / frame_ms))
    return np.frombuffer(b"".join(b"".join(s) for s in segments), dtype="<i2")


def wav_to_mel(path: str | Path) -> np.ndarray:
    """(40, T) float64 log-mels of one wav file."""
    pcm, rate = read_pcm(path)
    return python_speech_features.logfbank(vad(pcm, rate), samplerate=rate, nfilt=40).T


def convert_files(paths: Sequence[Path], out_dir: Path) -> None:
    """The original's conversion loop: one pickle per utterance, named spkid_clipid_wavid."""
    for path in paths:
        mel = wav_to_mel(path)
        record = {"LogMel_Features": mel, "spkid": path.parent.parent.name, "clipid": path.parent.name, "wavid": path.stem}
        with open(out_dir / f"{path.parent.parent.name}_{path.parent.name}_{path.stem}.pickle", "wb") as f:
            pickle.dump(record, f)
