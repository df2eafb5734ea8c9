"""Step 1 of the audio pipeline: any audio file to 16-bit PCM, mono, at the pipeline's rate (recipe §1.4 step 1)."""

from __future__ import annotations

import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional as AF

from sf2f.errors import BadInputError, require_nonempty_file

# decoded by ffmpeg (the original reads VoxCeleb2's .m4a through pydub, which calls ffmpeg); the rest by soundfile
FFMPEG_SUFFIXES = (".m4a", ".aac", ".mp4")


class AudioError(BadInputError):
    """A file that gives no features, with the reason (it goes into the preparation report)."""


@dataclass(frozen=True)
class Waveform:
    """Decoded speech: int16 samples (possibly read-only), mono, at `sample_rate`; `notes` say what was converted."""

    samples: np.ndarray
    sample_rate: int
    notes: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


def _read_with_wave(path: Path, sample_rate: int) -> tuple[np.ndarray | None, int | None]:
    """A .wav's samples if 16-bit mono at `sample_rate` (else None) through `wave`, the original's reader and twice as
    fast as libsndfile; and its header's frame count, which tells a file cut short (None if unreadable or streamed)."""
    try:
        with wave.open(str(path), "rb") as f:
            declared, frame_bytes = f.getnframes(), f.getsampwidth() * f.getnchannels()
            plain = (f.getsampwidth(), f.getnchannels(), f.getframerate()) == (2, 1, sample_rate)
            pcm = f.readframes(declared) if plain else b""
    except (wave.Error, EOFError, OSError):
        return None, None
    # a read-only view of the bytes `wave` returned (a copy only on big-endian machines)
    samples = np.frombuffer(pcm, "<i2", count=len(pcm) // 2).astype(np.int16, copy=False) if len(pcm) >= 2 else None
    return samples, None if declared == 0xFFFFFFFF // frame_bytes else declared


def _truncation(declared: int | None, present: int) -> list[str]:
    if declared is None or declared <= present:
        return []
    return [f"truncated: the header declares {declared} frames, the file holds {present}; used those"]


def _decode_ffmpeg(path: Path, sample_rate: int) -> np.ndarray:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioError(path, f"reading {path.suffix} files needs ffmpeg, which is not installed (apt-get install "
                               "ffmpeg, brew install ffmpeg or conda install -c conda-forge ffmpeg)")
    # ffmpeg does the down-mix and resampling itself; VoxCeleb2's m4a files are already 16 kHz mono
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", str(sample_rate), "-"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise AudioError(path, f"ffmpeg could not decode it: {message[-1] if message else 'unknown error'}")
    samples = np.frombuffer(proc.stdout, dtype="<i2").astype(np.int16)
    if samples.size == 0:
        raise AudioError(path, "holds no audio samples")
    return samples


def _decode_soundfile(path: Path, sample_rate: int, declared: int | None) -> tuple[np.ndarray, list[str]]:
    """Any format libsndfile reads, converted to 16-bit mono at `sample_rate`, with notes of what was converted."""
    try:
        with soundfile.SoundFile(str(path)) as f:
            # on the int16 scale: exact for 16-bit samples (soundfile divides them by 32768)
            subtype, rate, x = f.subtype, f.samplerate, f.read(dtype="float64", always_2d=True) * 32768.0
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        detail = getattr(exc, "error_string", None) or str(exc)
        raise AudioError(path, f"not a readable audio file ({detail.strip()})") from None
    if x.shape[0] == 0:
        raise AudioError(path, "holds no audio samples (header only)")
    notes = _truncation(declared, x.shape[0])
    if subtype != "PCM_16":
        notes.append(f"{subtype} samples converted to 16-bit")
    if x.shape[1] > 1:
        notes.append(f"{x.shape[1]} channels averaged to mono")
    x = x.mean(axis=1)
    if rate != sample_rate:
        notes.append(f"resampled from {rate} Hz to {sample_rate} Hz")
        x = AF.resample(torch.from_numpy(x), rate, sample_rate).numpy()
    return np.clip(np.round(x), -32768, 32767).astype(np.int16), notes


def load_audio(path: str | Path, sample_rate: int = 16000) -> Waveform:
    """An audio file as 16-bit mono PCM at `sample_rate`, or an AudioError with the reason: such a .wav read bit-exactly
    as the original does, anything else through soundfile (m4a: ffmpeg), converted with notes of what was done."""
    path = Path(path)
    require_nonempty_file(path, AudioError)
    suffix = path.suffix.lower()
    if suffix in FFMPEG_SUFFIXES:
        return Waveform(_decode_ffmpeg(path, sample_rate), sample_rate, ("decoded with ffmpeg",))
    samples, declared = _read_with_wave(path, sample_rate) if suffix == ".wav" else (None, None)
    if samples is None:
        samples, notes = _decode_soundfile(path, sample_rate, declared)
    else:
        notes = _truncation(declared, len(samples))
    return Waveform(samples, sample_rate, tuple(notes))
