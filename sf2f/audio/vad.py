"""Step 2 of the audio pipeline: the original's voice activity detection (recipe §1.4 step 2; voice2face's, §7.2).
webrtcvad judges every frame of a file, in order (its detector adapts to what it has heard); the original's ring
buffer then drops short clicks and keeps a little of the silence around speech."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import webrtcvad

from sf2f.config import AudioConfig


@dataclass(frozen=True)
class VadResult:
    """Per-frame VAD decisions: `speech` is webrtcvad's verdict, `keep` what the ring buffer keeps. Frame k starts at
    sample k * frame_samples; samples after the last frame are dropped, as the original does."""

    frame_samples: int
    sample_rate: int
    speech: np.ndarray
    keep: np.ndarray

    @property
    def n_frames(self) -> int:
        return len(self.speech)

    def frame_times(self) -> np.ndarray:
        """Start time of every frame in seconds."""
        return np.arange(self.n_frames) * self.frame_samples / self.sample_rate

    def sample_mask(self, n_samples: int) -> np.ndarray:
        """True for every input sample that is kept."""
        kept = np.repeat(self.keep, self.frame_samples)
        return np.pad(kept, (0, n_samples - len(kept)))

    def apply(self, samples: np.ndarray) -> np.ndarray:
        """The kept frames, joined as the original joins its voiced segments (a view of `samples` if one run)."""
        # where `keep` switches on, and off again
        edges = np.flatnonzero(np.diff(self.keep, prepend=False, append=False)) * self.frame_samples
        runs = [samples[start:stop] for start, stop in zip(edges[::2], edges[1::2])]
        return runs[0] if len(runs) == 1 else np.concatenate([samples[:0], *runs])


def ring_buffer_keep(speech: Sequence[bool], ring: int, ratio: float) -> np.ndarray:
    """The frames the original's collector keeps of webrtcvad's decisions (§1.4 step 2): it triggers when more than
    `ratio` of the last `ring` frames (since it was last emptied) are voiced, keeping them and every later frame until
    as many of the last frames are unvoiced; the buffer empties at every trigger and release."""
    need = math.floor(ratio * ring) + 1  # "more than ratio * ring" frames, a whole number of them
    keep = [False] * len(speech)
    start, voiced, triggered = 0, 0, False  # the buffer holds frames k - held + 1 .. k, `voiced` of them
    for k, is_voiced in enumerate(speech):
        voiced += is_voiced
        held = k - start + 1
        if held > ring:  # the buffer is full: its oldest frame drops out
            voiced -= speech[k - ring]
            held = ring
        if triggered:
            keep[k] = True
            if held - voiced >= need:
                triggered, start, voiced = False, k + 1, 0
        elif voiced >= need:
            keep[k - held + 1 : k + 1] = [True] * held
            triggered, start, voiced = True, k + 1, 0
    return np.array(keep, dtype=bool)


def voice_activity(samples: np.ndarray, sample_rate: int, cfg: AudioConfig) -> VadResult:
    """webrtcvad's verdict on every frame of int16 `samples` at `sample_rate`, and the frames the ring buffer keeps."""
    if sample_rate not in (8000, 16000, 32000, 48000):
        raise ValueError(f"webrtcvad works at 8000, 16000, 32000 or 48000 Hz, not {sample_rate} Hz")
    frame = sample_rate * cfg.vad_frame_ms // 1000
    # the original takes frames while offset + frame < len: a signal of whole frames loses its last one (§1.4)
    n_frames = max(0, (len(samples) - 1) // frame)
    pcm = memoryview(np.ascontiguousarray(samples, dtype="<i2")).cast("B")
    is_speech, step = webrtcvad.Vad(cfg.vad_aggressiveness).is_speech, 2 * frame
    speech = [is_speech(pcm[k : k + step], sample_rate, frame) for k in range(0, n_frames * step, step)]
    # int(300 / 30) = 10 frames in the original's ring buffer (§1.4); voice2face: int(50 / 20) = 2 (§7.2)
    keep = ring_buffer_keep(speech, int(cfg.vad_padding_ms / cfg.vad_frame_ms), cfg.vad_trigger_ratio)
    return VadResult(frame, sample_rate, np.array(speech, dtype=bool), keep)
