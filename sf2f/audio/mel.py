"""Steps 3 and 4 of the audio pipeline: python_speech_features 0.6 ``logfbank`` (recipe §1.4 step 3; voice2face's
Sphinx variant, §7.2) for many signals at once, and its normalisation; :func:`extract_log_mels` runs steps 1-3 over
many files. ``dtype="float64"`` reproduces the original to about 1e-12; the default float32 is within 1e-3 (float32
rounding of the power spectrum, amplified by the log in near-silent bins)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sf2f.audio.decode import AudioError, load_audio
from sf2f.audio.vad import voice_activity
from sf2f.config import AudioConfig

#: How far a float32 log-mel value may move with its batch, the thread count or the CPU (the FFT, the sums and the log
#: take other code paths for other shapes and CPUs): a few float32 ulps of values up to about 40, the loudest bins
LOG_MEL_FLOAT32_TOLERANCE = 1e-5
_DTYPES = {"float32": (np.float32, torch.float32), "float64": (np.float64, torch.float64)}
# frames per FFT call: enough to amortise torch's per-call costs, few enough that the frames, their spectra and powers
# stay in the CPU's cache from one step to the next (see benchmarks/bench_audio.py)
_CHUNK_FRAMES = 512


def mel_filterbank(cfg: AudioConfig) -> np.ndarray:
    """The (n_fft // 2 + 1, n_mels) float64 filterbank: triangles on n_mels + 2 points equally spaced in mel, the right
    edge excluded, placed and scaled as `cfg.filterbank_norm` says (`peak`: §1.4, `area`: voice2face's Sphinx, §7.2)."""
    # the HTK mel scale, 2595 log10(1 + f / 700), of both python_speech_features and Sphinx
    low, high = 2595.0 * np.log10(1.0 + np.array([cfg.f_min, cfg.f_max]) / 700.0)
    hz_points = 700.0 * (10.0 ** (np.linspace(low, high, cfg.n_mels + 2) / 2595.0) - 1.0)
    if cfg.filterbank_norm == "peak":
        edges, height = np.floor((cfg.n_fft + 1) * hz_points / cfg.sample_rate), np.ones(cfg.n_mels)
    else:
        hz_per_bin = cfg.sample_rate / cfg.n_fft
        edges = np.round(hz_points / hz_per_bin)
        height = 2.0 / np.maximum((edges[2:] - edges[:-2]) * hz_per_bin, 1e-300)
    # (Sphinx starts each rising edge one bin after the left edge, which is also where (i - left) makes it zero)
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    i = np.arange(cfg.n_fft // 2 + 1, dtype=np.float64)[:, None]
    rise = np.where((i >= left) & (i < centre), (i - left) / np.maximum(centre - left, 1e-300), 0.0)
    fall = np.where((i >= centre) & (i < right), (right - i) / np.maximum(right - centre, 1e-300), 0.0)
    return (rise + fall) * height


def win_hop(cfg: AudioConfig) -> tuple[int, int]:
    """The analysis window and the hop in samples."""
    # python_speech_features rounds half up: 0.025 * 16000 = 400.00000000000006 -> 400
    return math.floor(cfg.win_ms * cfg.sample_rate / 1000 + 0.5), math.floor(cfg.hop_ms * cfg.sample_rate / 1000 + 0.5)


def frame_count(n_samples: int, cfg: AudioConfig) -> int:
    """Frames python_speech_features makes, the last one zero-padded."""
    win, hop = win_hop(cfg)
    if n_samples <= win:
        return 1
    return 1 + math.ceil((1.0 * n_samples - win) / hop)


def _emphasised_end_to_end(signals: Sequence[np.ndarray], cfg: AudioConfig,
                           dtype: type) -> tuple[np.ndarray, list[int]]:
    """All `signals`, pre-emphasised, in one zero-filled buffer, each at a multiple of the hop and followed by the zeros
    python_speech_features pads its last frame with (§1.4 step 3), so that one unfold frames them all; and the frame at
    which each one starts. x[i] + (-c x[i-1]) rounds as python_speech_features' x[i] - c x[i-1] in float64."""
    win, hop = win_hop(cfg)
    spans = [(frame_count(len(x), cfg) - 1) * hop + win for x in signals]
    firsts = np.cumsum([0] + [-(-span // hop) for span in spans]).tolist()
    # n_fft - win more zeros: the last frame's FFT input reaches that far (see log_mel_batch)
    buffer = np.zeros(firsts[-1] * hop + cfg.n_fft - win, dtype=dtype)
    for signal, first in zip(signals, firsts):
        x = signal.astype(dtype)  # (numpy's loops over one type are vectorised, those that mix types less)
        emphasised = buffer[first * hop : first * hop + len(x)]
        np.multiply(x[:-1], -dtype(cfg.preemphasis), out=emphasised[1:])
        emphasised[1:] += x[1:]
        emphasised[0] = x[0]
    return buffer, firsts[:-1]


_CONSTANTS: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}


def _fft_window_and_filterbank(cfg: AudioConfig, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The analysis window zero-padded to n_fft (as python_speech_features pads each frame), and the filterbank scaled
    for the power spectrum; made once per config and dtype."""
    key = (tuple(vars(cfg).items()), dtype)  # (the config's fields are scalars)
    if key not in _CONSTANTS:
        win, _ = win_hop(cfg)
        window = torch.zeros(cfg.n_fft, dtype=dtype)
        # numpy.hamming (symmetric) is what voice2face's Sphinx code multiplies each frame by (§7.2)
        window[:win] = 1.0 if cfg.window == "rectangular" else torch.from_numpy(np.hamming(win))
        scale = 1.0 / cfg.n_fft if cfg.power_scale == "per_nfft" else 1.0
        _CONSTANTS[key] = window, torch.from_numpy(mel_filterbank(cfg) * scale).to(dtype)
    return _CONSTANTS[key]


def log_mel_batch(signals: Sequence[np.ndarray], cfg: AudioConfig, dtype: str | None = None) -> list[torch.Tensor]:
    """Log-mel features (n_mels, T) of several int16-scale signals, framed together: each is a transposed view of its
    rows of one time-major (frames, n_mels) array, the layout the cache stores."""
    if any(len(s) == 0 for s in signals):
        raise ValueError("log_mel of an empty signal (the original fails here with an IndexError)")
    if not signals:
        return []
    np_dtype, torch_dtype = _DTYPES[dtype or cfg.dtype]
    window, filterbank = _fft_window_and_filterbank(cfg, torch_dtype)
    buffer, firsts = _emphasised_end_to_end(signals, cfg, np_dtype)
    # n_fft samples from every hop-th one: each frame and what follows it, which the zero-padded window removes (one
    # product that also makes the FFT's input contiguous, faster than padding each frame)
    frames = torch.from_numpy(buffer).unfold(0, cfg.n_fft, win_hop(cfg)[1])
    logs = torch.empty(len(frames), cfg.n_mels, dtype=torch_dtype)
    for c in range(0, len(frames), _CHUNK_FRAMES):
        spectrum = torch.fft.rfft(frames[c : c + _CHUNK_FRAMES] * window)
        squares = torch.view_as_real(spectrum).square_()
        energies = torch.matmul(squares[..., 0] + squares[..., 1], filterbank, out=logs[c : c + _CHUNK_FRAMES])
        if cfg.log_floor_mode == "clip":
            energies.clamp_min_(cfg.log_floor)
        energies.log_()
    if cfg.log_floor_mode == "replace_zeros":  # zero energies (digital silence) count as log_floor, log(0) = -inf
        logs.nan_to_num_(neginf=math.log(cfg.log_floor))
    return [logs[first : first + frame_count(len(x), cfg)].T for x, first in zip(signals, firsts)]


def log_mel(signal: np.ndarray, cfg: AudioConfig, dtype: str | None = None) -> torch.Tensor:
    """Log-mel features (n_mels, T) of one int16-scale signal; see :func:`log_mel_batch`."""
    return log_mel_batch([signal], cfg, dtype)[0].contiguous()


@dataclass(frozen=True)
class MelStats:
    """Mean and standard deviation of every raw log-mel value of a dataset's training split."""

    mean: float
    std: float
    count: int

    @staticmethod
    def from_sums(total: float, total_sq: float, count: int) -> MelStats:
        """From float64 sums of x and x^2 (exact over the whole split, unlike the original's average of per-batch
        statistics in a script that no longer runs, §1.4)."""
        if count == 0:
            raise ValueError("no log-mel values to compute statistics from")
        mean = total / count
        return MelStats(mean, math.sqrt(max(total_sq / count - mean * mean, 0.0)), count)


def normalize_mel(mel: torch.Tensor, cfg: AudioConfig, stats: MelStats | None = None,
                  out: torch.Tensor | None = None) -> torch.Tensor:
    """Normalise raw log-mels (n_mels, T) by `cfg.mel_norm`: global scalars (§1.4), the training split's `stats`, or per
    bin over the utterance (voice2face, §7.2); into `out` if given, which may be `mel` (no second array to fault in)."""
    if cfg.mel_norm == "utterance":
        # both statistics are taken before `out` (possibly `mel`) is overwritten
        mean, std = mel.mean(dim=-1, keepdim=True), mel.std(dim=-1, unbiased=False, keepdim=True)
        return torch.sub(mel, mean, out=out).div_(std + float(np.finfo(np.float32).eps))
    if cfg.mel_norm == "dataset" and stats is None:
        raise ValueError("mel_norm 'dataset' needs the training split's statistics (stats.json of the prepared data)")
    mean, std = (cfg.mel_mean, cfg.mel_std) if cfg.mel_norm == "global" else (stats.mean, stats.std)
    # (x - mean) then a division in place: the same two roundings as (mel - mean) / std
    return torch.sub(mel, mean, out=out).div_(std)


def pad_value(cfg: AudioConfig, stats: MelStats | None = None) -> float:
    """What short crops are right-padded with: a raw 0, normalised (-3.4716 for the original, §1.6; 0, the utterance
    mean, under per-utterance normalisation)."""
    return normalize_mel(torch.zeros(1, 1, dtype=torch.float64), cfg, stats).item()


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
    """Decode, VAD and featurise files, `batch_samples` voiced samples (4M: about 4 minutes) at once; a file giving none
    (unreadable, too short, silent: the original crashes or writes one log(eps) frame, §1.4) yields an AudioError."""
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
