"""Speech to log-mel features, as the original SF2F prepares them (recipe §1.4), plus voice2face's variant (§7.2).

The pipeline for one utterance is:

1. :func:`load_audio`: decode any wav/flac/ogg (soundfile) or m4a (ffmpeg) file to **16-bit PCM, mono, 16 kHz**, the
   only input the original accepts. Its samples stay on the int16 scale, never scaled to [-1, 1] (§1.4 step 1).
2. :func:`voice_activity`: the original's VAD, webrtcvad decisions on 30 ms frames run through the ring-buffer state
   machine (§1.4 step 2); :meth:`VadResult.apply` keeps the voiced frames. :func:`voice_activity_batch` does several
   signals at once (at 16 kHz it halves their rate for webrtcvad's detector itself, faster, with the same result).
3. :func:`log_mel`: python_speech_features 0.6 ``logfbank`` (§1.4 step 3), computed on all frames of all utterances
   of a batch at once: numba kernels frame them and square the spectra, torch does the FFTs, BLAS the filterbank.
   ``dtype="float64"`` reproduces the original to about 1e-12; the default float32 is within 1e-3 (float32 rounding
   of the power spectrum, amplified by the log in near-silent bins). A file's float32 log-mel is the same, within
   :data:`LOG_MEL_FLOAT32_TOLERANCE`, whichever files share its batch, however many threads run and on whichever
   CPU: the FFT, the filterbank's sums and the log take other code paths (vector widths, loop tails, blockings) for
   other batch shapes and CPUs, and round differently in the last bit.
4. :func:`normalize_mel`: the original's global scalar (10.9915, 3.1661), statistics measured on the training split,
   or per-utterance mean/variance per bin (voice2face).

:func:`extract_log_mels` runs steps 1-3 for many files and returns an :class:`AudioError` (with the file and the reason)
for every file that cannot give features, instead of raising, so one bad file never stops a run over thousands.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import shutil
import struct
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numba
import numpy as np
import soundfile
import torch
import torchaudio.functional as AF
import webrtcvad

from sf2f.config import AudioConfig
from sf2f.errors import BadInputError, require_nonempty_file

__all__ = [
    "AudioError",
    "LOG_MEL_FLOAT32_TOLERANCE",
    "MelStats",
    "Utterance",
    "VadResult",
    "Waveform",
    "extract_log_mels",
    "frame_count",
    "hz_to_mel",
    "load_audio",
    "log_mel",
    "log_mel_batch",
    "mel_filterbank",
    "mel_to_hz",
    "normalize_mel",
    "pad_value",
    "voice2face_audio_config",
    "voice_activity",
    "voice_activity_batch",
]

# decoded by ffmpeg (the original reads VoxCeleb2's .m4a through pydub, which calls ffmpeg); the rest by soundfile
FFMPEG_SUFFIXES = (".m4a", ".aac", ".mp4")
INT16_SCALE = 32768.0
#: How far a float32 log-mel value may move with its batch, the thread count or the CPU (absolute, in log-mel units):
#: each of the FFT, the filterbank's sums and the log is accurate to a few float32 ulps, and the log turns a relative
#: error of an energy into an absolute one; a few ulps of values up to about 40 (the loudest bins) stay below it.
#: Seen: one ulp (9.5e-7) on 6 of 3,560 values of a prepared file against the same file featurised alone.
LOG_MEL_FLOAT32_TOLERANCE = 1e-5
#: the sample rates webrtcvad accepts
WEBRTCVAD_RATES = (8000, 16000, 32000, 48000)


def _compiled(function: Callable) -> Callable:
    """`function` compiled by numba (on its first call), cached on disk next to this module, or in the user's cache
    folder when the install is read-only; where neither can be written, compiled again in each process (this module's
    kernels: about 2 s, against 0.5 s to load them from the cache).
    """
    try:
        return numba.njit(cache=True, nogil=True)(function)
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return numba.njit(nogil=True)(function)


class AudioError(BadInputError):
    """A file that gives no features, with the reason (it goes into the preparation report)."""


# --------------------------------------------------------------------------------------------------------------------
# Step 1: decoding
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Waveform:
    """Decoded speech: int16-scale samples (dtype int16), mono, at `sample_rate`; `notes` say what was converted."""

    samples: np.ndarray
    sample_rate: int
    notes: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class _WavHeader:
    """What the RIFF chunks of a .wav say: the `fmt ` fields, and where the `data` chunk starts and how many bytes it
    claims (0 and 0xFFFFFFFF are written by streaming encoders that did not know the length)."""

    format_tag: int
    channels: int
    rate: int
    block_align: int
    bits: int
    data_offset: int
    data_bytes: int


def _wav_header(f: BinaryIO) -> _WavHeader | None:
    """Walk the RIFF chunks of an open .wav up to its `data` chunk; None if it is no RIFF/WAVE file or has no `fmt `
    chunk before `data` (which Python's `wave`, the original's reader, refuses too)."""
    head = f.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    fmt: tuple[int, ...] | None = None
    while True:
        chunk = f.read(8)
        if len(chunk) < 8:
            return None
        cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if cid == b"fmt ":
            body = f.read(size + (size & 1))
            if len(body) < 14:
                return None
            # WAVEFORMAT (14 bytes) has no bits-per-sample field; PCMWAVEFORMAT and its successors do
            fmt = struct.unpack("<HHIIH", body[:14]) + (struct.unpack("<H", body[14:16])[0] if len(body) >= 16 else 0,)
        elif cid == b"data":
            if fmt is None:
                return None
            return _WavHeader(fmt[0], fmt[1], fmt[2], fmt[4], fmt[5], f.tell(), size)
        else:
            f.seek(size + (size & 1), 1)


def _declared_wav_frames(path: Path) -> int | None:
    """Frames the RIFF header of a .wav promises (None when it cannot tell), to detect a truncated download.

    libsndfile silently reads whatever part of the data chunk is present, so a cut-off file looks valid.
    """
    try:
        with open(path, "rb") as f:
            header = _wav_header(f)
    except OSError:
        return None
    if header is None or header.block_align == 0 or header.data_bytes in (0, 0xFFFFFFFF):
        return None
    return header.data_bytes // header.block_align


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def _decode_ffmpeg(path: Path, sample_rate: int) -> tuple[np.ndarray, tuple[str, ...]]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioError(
            path,
            f"reading {path.suffix} files needs ffmpeg, which is not installed "
            "(apt-get install ffmpeg, brew install ffmpeg or conda install -c conda-forge ffmpeg)",
        )
    # ffmpeg does the down-mix and resampling itself; VoxCeleb2's m4a files are already 16 kHz mono
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", str(sample_rate), "-"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise AudioError(path, f"ffmpeg could not decode it: {message[-1] if message else 'unknown error'}")
    return np.frombuffer(proc.stdout, dtype="<i2").astype(np.int16), ("decoded with ffmpeg",)


def _read_plain_wav(path: Path, sample_rate: int) -> Waveform | None:
    """The common case (VoxCeleb1, the synthetic data): 16-bit mono PCM at the target rate, the samples Python's
    `wave` gives the original. None for anything else, which soundfile then reads or explains.

    The header walk and one `readinto` straight into the sample array cost what `wave` costs to return the bytes
    (the kernel's copy of the file dominates), without `wave`'s extra copy into an array, and half of libsndfile.
    """
    try:
        with open(path, "rb") as f:
            header = _wav_header(f)
            if header is None or header.data_bytes == 0:
                return None
            layout = (header.format_tag, header.channels, header.bits, header.block_align, header.rate)
            if layout != (1, 1, 16, 2, sample_rate):  # PCM, mono, 16-bit, at the target rate
                return None
            present = (os.fstat(f.fileno()).st_size - header.data_offset) // 2
            declared = None if header.data_bytes == 0xFFFFFFFF else header.data_bytes // 2
            count = present if declared is None else min(declared, present)
            if count <= 0:
                return None
            samples = np.empty(count, dtype="<i2")
            if f.readinto(samples) != samples.nbytes:
                return None
    except OSError:
        return None
    notes = ()
    if declared is not None and declared > count:
        notes = (f"truncated: the header declares {declared} frames, the file holds {count}; used those",)
    return Waveform(samples.astype(np.int16, copy=False), sample_rate, notes)


def load_audio(path: str | Path, sample_rate: int = 16000) -> Waveform:
    """Decode an audio file to 16-bit mono PCM at `sample_rate`, raising :class:`AudioError` with a clear reason.

    16-bit mono files at the target rate are read bit-exactly, as the original's `wave` reader does. Anything else
    (8/24/32-bit or float samples, several channels, another rate) is converted: channels are averaged, torchaudio
    resamples (windowed sinc), and the result is rounded to int16; each conversion is listed in `notes`.
    """
    path = path if isinstance(path, Path) else Path(path)  # (Path(path) parses a Path again: 5 us a file)
    suffix = path.suffix.lower()
    if suffix == ".wav":
        # the common case first: a file it cannot read (missing, empty, another layout) falls through to the checks
        # and the readers below, which say what is wrong with it
        fast = _read_plain_wav(path, sample_rate)
        if fast is not None:
            return fast
    require_nonempty_file(path, AudioError)
    if suffix in FFMPEG_SUFFIXES:
        samples, notes = _decode_ffmpeg(path, sample_rate)
        if samples.size == 0:
            raise AudioError(path, "holds no audio samples")
        return Waveform(samples, sample_rate, notes)
    try:
        with soundfile.SoundFile(str(path)) as f:
            subtype, rate = f.subtype, f.samplerate
            exact = subtype == "PCM_16" and f.channels == 1
            data = f.read(dtype="int16" if exact else "float64", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        detail = getattr(exc, "error_string", None) or str(exc)
        raise AudioError(path, f"not a readable audio file ({detail.strip()})") from None
    if data.shape[0] == 0:
        raise AudioError(path, "holds no audio samples (header only)")

    notes: list[str] = []
    declared = _declared_wav_frames(path) if suffix == ".wav" else None
    if declared is not None and declared > data.shape[0]:
        notes.append(f"truncated: the header declares {declared} frames, the file holds {data.shape[0]}; used those")
    if exact and rate == sample_rate:
        return Waveform(np.ascontiguousarray(data[:, 0]), sample_rate, tuple(notes))

    x = data.astype(np.float64) * (1.0 if exact else INT16_SCALE)
    if subtype != "PCM_16":
        notes.append(f"{subtype} samples converted to 16-bit")
    if x.shape[1] > 1:
        notes.append(f"{x.shape[1]} channels averaged to mono")
    x = x.mean(axis=1)
    if rate != sample_rate:
        notes.append(f"resampled from {rate} Hz to {sample_rate} Hz")
        x = AF.resample(torch.from_numpy(x), rate, sample_rate).numpy()
    return Waveform(_to_int16(x), sample_rate, tuple(notes))


# --------------------------------------------------------------------------------------------------------------------
# Step 2: voice activity detection
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VadResult:
    """Per-frame VAD decisions: `speech` is webrtcvad's verdict, `keep` what the ring-buffer state machine keeps.

    Frames are `frame_samples` long and start at `k * frame_samples`; samples after the last frame are dropped, as
    the original drops them (its frame loop runs while `offset + frame_bytes < len(audio)`, §1.4 step 2).
    """

    frame_samples: int
    sample_rate: int
    speech: np.ndarray
    keep: np.ndarray

    @property
    def n_frames(self) -> int:
        return len(self.speech)

    def frame_times(self) -> np.ndarray:
        """Start time of every frame in seconds (for plotting the decision over time)."""
        return np.arange(self.n_frames) * self.frame_samples / self.sample_rate

    def sample_mask(self, n_samples: int) -> np.ndarray:
        """One boolean per input sample: True where the sample is kept."""
        mask = np.zeros(n_samples, dtype=bool)
        mask[: self.n_frames * self.frame_samples] = np.repeat(self.keep, self.frame_samples)
        return mask

    def apply(self, samples: np.ndarray) -> np.ndarray:
        """The kept frames, concatenated (the original joins its voiced segments into one signal)."""
        frames = samples[: self.n_frames * self.frame_samples].reshape(self.n_frames, self.frame_samples)
        return frames[self.keep].reshape(-1)


def _ring_buffer_kernel(speech: np.ndarray, ring: int, need: int, keep: np.ndarray) -> None:
    """The original's collector (§1.4 step 2) on webrtcvad's decisions, marking the frames it keeps in `keep` (all
    False on entry): trigger when at least `need` of the frames in the ring buffer (the last `ring` since it was last
    emptied) are voiced, then keep them all; keep every frame while triggered; release when at least `need` of them
    are unvoiced. The buffer is emptied at every trigger and release; at the end, frames since a trigger are kept.
    """
    start = 0  # the buffer holds frames max(start, k - ring + 1) .. k
    voiced = 0  # how many of them are voiced
    triggered = False
    for k in range(len(speech)):
        if k - ring >= start:  # the buffer is full: its oldest frame drops out
            voiced -= speech[k - ring]
        voiced += speech[k]
        held = min(k - start + 1, ring)
        if triggered:
            keep[k] = True
            if held - voiced >= need:
                triggered, start, voiced = False, k + 1, 0
        elif voiced >= need:
            keep[max(start, k - ring + 1) : k + 1] = True
            triggered, start, voiced = True, k + 1, 0


_ring_buffer = _compiled(_ring_buffer_kernel)


def _ring_buffer_keep(speech: np.ndarray, ring: int, ratio: float) -> np.ndarray:
    """Which frames the original's VAD keeps, from webrtcvad's per-frame decisions `speech` (see
    :func:`_ring_buffer_kernel`); compiled, as a frame-by-frame state machine costs about 30 us per file in Python.
    """
    keep = np.zeros(len(speech), dtype=bool)
    # the original compares an integer count with the float ratio * ring: "more than" is "at least floor() + 1"
    _ring_buffer(speech, ring, math.floor(ratio * ring) + 1, keep)
    return keep


def _vad_frames_kernel(process: Callable, handle: int, rate: int, pcm: np.ndarray, frame: int, out: np.ndarray) -> None:
    """webrtcvad's C function `process` (WebRtcVad_Process) on each of the len(out) consecutive frames of `frame`
    samples of `pcm`, in order, through the detector `handle`; its answers (1 voiced, 0 not, -1 an error) into `out`.
    """
    for k in range(len(out)):
        out[k] = process(handle, rate, pcm[k * frame : (k + 1) * frame].ctypes, frame)


_vad_frames = _compiled(_vad_frames_kernel)


# webrtcvad analyses 16 kHz speech at 8 kHz: for each 16 kHz frame, WebRtcVad_Process first halves the rate with a
# polyphase half-band low-pass (the even samples through one first-order all-pass section, the odd ones through
# another, in fixed point with these Q13 coefficients: its WebRtcVad_Downsampling), then runs its 8 kHz detector on
# the result. The filters' state carries over from frame to frame, so halving a whole signal at once gives the same
# samples, and the 8 kHz detector then gives the same decisions (tests/test_audio.py checks both). Halving several
# signals together, as below, costs about 3.3 ms on bench_audio's 48 files against 5.5 ms inside the 16 kHz calls
# (about a quarter of the VAD's time), which brings the VAD to webrtcvad's own cost for the 16 kHz calls.
_HALVING_COEFFICIENTS = (5243, 1392)


def _halving_step_kernel(x: np.ndarray, n: int, even_state: int, odd_state: int) -> tuple[int, int, int]:
    """Output sample n of the half-rate signal of `x` (samples 2n and 2n + 1), and both branches' new states.

    Each branch: y = state / 2 + a x / 2^14 (both shifts floor, as C's on signed integers), wrapped to int16 as C's
    cast wraps it; new state = x - a y / 2^12; the output is the two branches' y added and wrapped again. No
    intermediate value leaves int32's range, so numba's 64-bit integers give C's results.
    """
    a, b = _HALVING_COEFFICIENTS
    x0, x1 = np.int64(x[2 * n]), np.int64(x[2 * n + 1])
    y0 = (((even_state >> 1) + ((a * x0) >> 14) + 32768) & 0xFFFF) - 32768
    y1 = (((odd_state >> 1) + ((b * x1) >> 14) + 32768) & 0xFFFF) - 32768
    return (((y0 + y1 + 32768) & 0xFFFF) - 32768), x0 - ((a * y0) >> 12), x1 - ((b * y1) >> 12)


_halving_step = _compiled(_halving_step_kernel)


def _halve_four_kernel(
    x0: np.ndarray, x1: np.ndarray, x2: np.ndarray, x3: np.ndarray,
    y0: np.ndarray, y1: np.ndarray, y2: np.ndarray, y3: np.ndarray,
) -> None:
    """Signals x0..x3 halved into y0..y3 (each len(x) // 2 long), from zero filter states as a new detector starts.

    Each filter is a chain of dependent integer operations, so one signal at a time leaves the CPU waiting on each
    result; four in the same loop give it independent work to overlap. Sorted by length, signals in a group end
    close together, and each finishes alone after the shortest.
    """
    s0 = t0 = s1 = t1 = s2 = t2 = s3 = t3 = np.int64(0)
    together = min(len(y0), len(y1), len(y2), len(y3))
    for n in range(together):
        y0[n], s0, t0 = _halving_step(x0, n, s0, t0)
        y1[n], s1, t1 = _halving_step(x1, n, s1, t1)
        y2[n], s2, t2 = _halving_step(x2, n, s2, t2)
        y3[n], s3, t3 = _halving_step(x3, n, s3, t3)
    for x, y, s, t in ((x0, y0, s0, t0), (x1, y1, s1, t1), (x2, y2, s2, t2), (x3, y3, s3, t3)):
        for n in range(together, len(y)):
            y[n], s, t = _halving_step(x, n, s, t)


_halve_four = _compiled(_halve_four_kernel)


def _halved(signals: Sequence[np.ndarray]) -> list[np.ndarray]:
    """int16 `signals` at half their rate, as webrtcvad's 16 kHz detector halves them (see _HALVING_COEFFICIENTS)."""
    out = [np.empty(len(x) // 2, np.int16) for x in signals]
    empty = np.empty(0, np.int16)
    order = sorted(range(len(signals)), key=lambda k: len(signals[k]))
    for g in range(0, len(order), 4):
        group = order[g : g + 4]
        pad = [empty] * (4 - len(group))  # a shorter last group: empty signals cost nothing
        _halve_four(*[signals[k] for k in group], *pad, *[out[k] for k in group], *pad)
    return out


@functools.cache
def _webrtcvad_library() -> ctypes.CDLL | None:
    """webrtcvad's C extension, already loaded by `import webrtcvad`, opened again by ctypes to reach the C functions
    it exports; None where it cannot be (another packaging of webrtcvad)."""
    try:
        import _webrtcvad

        return ctypes.CDLL(_webrtcvad.__file__)
    except (ImportError, OSError):
        return None


def _webrtcvad_function(name: str, argtypes: tuple, restype: type | None) -> Callable | None:
    """The C function `name` that webrtcvad's extension exports, as a ctypes function with this prototype; None where
    it is not exported (another packaging of webrtcvad)."""
    function = getattr(_webrtcvad_library(), name, None)
    if function is not None:
        function.argtypes, function.restype = list(argtypes), restype
    return function


@functools.cache
def _webrtcvad_halving() -> Callable | None:
    """webrtcvad's own C function `WebRtcVad_Downsampling(const int16_t* in, int16_t* out, int32_t* state, size_t
    in_length)` (the halving of its 16 kHz path) as a ctypes function; None where it is not exported."""
    pointer = ctypes.c_void_p
    return _webrtcvad_function("WebRtcVad_Downsampling", (pointer, pointer, pointer, ctypes.c_size_t), None)


@functools.cache
def _halving_matches_webrtcvad() -> bool:
    """Whether _halved gives, bit for bit, what this webrtcvad's own WebRtcVad_Downsampling gives on full-scale noise
    (which drives the fixed-point filters through int16 wrap-around, where a difference in the arithmetic would show);
    False where that C function is not exported. Only where they match is the 8 kHz detector fed halved signals, so a
    webrtcvad whose 16 kHz path differs never sees samples it would not have made itself."""
    halve = _webrtcvad_halving()
    if halve is None:
        return False
    x = np.random.default_rng(0).integers(-32768, 32768, 4800).astype(np.int16)
    x[:8] = [32767, 32767, 32767, -32768, -32768, -32768, 32767, -32768]
    theirs, states = np.empty(len(x) // 2, np.int16), np.zeros(2, np.int32)
    halve(x.ctypes.data, theirs.ctypes.data, states.ctypes.data, len(x))
    return bool(np.array_equal(_halved([x])[0], theirs))


@functools.cache
def _webrtcvad_process() -> Callable | None:
    """webrtcvad's own C function `WebRtcVad_Process(VadInst*, int fs, const int16_t*, size_t)`, which its Python
    `Vad.is_speech` wraps, as a ctypes function from the extension module already loaded; None when this packaging of
    webrtcvad does not export it (then the public API does the same work, slower)."""
    prototype = (ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t)
    return _webrtcvad_function("WebRtcVad_Process", prototype, ctypes.c_int)


@functools.cache
def _capsule_pointer() -> Callable:
    """Python's PyCapsule_GetPointer as a ctypes function returning an address. A prototype of its own: setting
    restype on ctypes.pythonapi's shared function object would change it for every other user in the process."""
    prototype = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)
    return prototype(("PyCapsule_GetPointer", ctypes.pythonapi))


def _vad_handle(vad: webrtcvad.Vad) -> int | None:
    """The address of the C detector a `webrtcvad.Vad` holds (in a capsule named "WebRtcVadPtr"), or None."""
    try:
        return _capsule_pointer()(getattr(vad, "_vad", None), b"WebRtcVadPtr")
    except ValueError:  # not a capsule of that name: another packaging of webrtcvad
        return None


def _webrtcvad_decisions(
    samples: np.ndarray, sample_rate: int, frame: int, n_frames: int, aggressiveness: int
) -> np.ndarray:
    """webrtcvad's verdict on each of `n_frames` consecutive frames of `frame` samples of 16-bit PCM, in order (the
    detector adapts to what it has seen, so every frame must go through one detector in sequence).

    The C call itself costs about 3 us a 16 kHz frame (2 us at 8 kHz), the same for the original and for us.
    Calling it through `Vad.is_speech` from Python, as the original does, adds about a quarter to that, and calling
    the extension's private `process` function directly still about a tenth (bench_audio's 48 files, measured side by
    side in one process); here a compiled loop calls webrtcvad's own C function (the one `is_speech` wraps) on the
    detector a `webrtcvad.Vad` made and configured, so no Python runs between frames. Where that function or the
    detector's address cannot be found (another packaging of webrtcvad), the public `Vad.is_speech` does the same
    work; tests/test_audio.py checks that both agree.
    """
    vad = webrtcvad.Vad(aggressiveness)
    pcm = np.ascontiguousarray(samples, dtype="<i2")
    process, handle = _webrtcvad_process(), _vad_handle(vad)
    if process is None or handle is None:
        data = memoryview(pcm).cast("B")
        step = 2 * frame
        return np.array([vad.is_speech(data[k : k + step], sample_rate) for k in range(0, n_frames * step, step)], bool)
    answers = np.empty(n_frames, dtype=np.int32)
    _vad_frames(process, handle, sample_rate, pcm, frame, answers)
    if (answers < 0).any():  # where is_speech raises webrtcvad.Error
        raise ValueError(f"webrtcvad rejected {frame}-sample frames at {sample_rate} Hz")
    return answers.astype(bool)


def voice_activity(samples: np.ndarray, sample_rate: int, cfg: AudioConfig) -> VadResult:
    """webrtcvad decisions (aggressiveness, frame length from `cfg`) and the frames the original's VAD keeps."""
    return voice_activity_batch([samples], sample_rate, cfg)[0]


def voice_activity_batch(signals: Sequence[np.ndarray], sample_rate: int, cfg: AudioConfig) -> list[VadResult]:
    """:func:`voice_activity` of several int16 signals at one rate (at 16 kHz, the halving that webrtcvad's detector
    starts with is done for all of them together, which is faster; the decisions are the same)."""
    if sample_rate not in WEBRTCVAD_RATES:
        raise ValueError(f"webrtcvad works at {', '.join(map(str, WEBRTCVAD_RATES))} Hz, not {sample_rate} Hz")
    frame = sample_rate * cfg.vad_frame_ms // 1000
    counts = [max(0, (len(x) - 1) // frame) for x in signals]
    inputs, rate = [x[: n * frame] for x, n in zip(signals, counts)], sample_rate
    if sample_rate == 16000 and _halving_matches_webrtcvad():
        inputs, rate = _halved(inputs), 8000
    # int(300 / 30) = 10 frames in the original's ring buffer (§1.4); voice2face: int(50 / 20) = 2 (§7.2)
    ring = int(cfg.vad_padding_ms / cfg.vad_frame_ms)
    results = []
    for x, n in zip(inputs, counts):
        speech = _webrtcvad_decisions(x, rate, frame * rate // sample_rate, n, cfg.vad_aggressiveness)
        results.append(VadResult(frame, sample_rate, speech, _ring_buffer_keep(speech, ring, cfg.vad_trigger_ratio)))
    return results


# --------------------------------------------------------------------------------------------------------------------
# Step 3: log-mel filterbank
# --------------------------------------------------------------------------------------------------------------------


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """The HTK mel scale, 2595 log10(1 + f / 700), used by both python_speech_features and Sphinx."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def _triangles(left: np.ndarray, centre: np.ndarray, right: np.ndarray, n_bins: int, peak: np.ndarray) -> np.ndarray:
    """(n_bins, n_filters) triangles rising on [left, centre), falling on [centre, right), worth `peak` at centre."""
    i = np.arange(n_bins, dtype=np.float64)[:, None]
    rise = np.where((i >= left) & (i < centre), (i - left) / np.maximum(centre - left, 1e-300), 0.0)
    fall = np.where((i >= centre) & (i < right), (right - i) / np.maximum(right - centre, 1e-300), 0.0)
    return (rise + fall) * peak


def mel_filterbank(cfg: AudioConfig) -> np.ndarray:
    """The (n_fft // 2 + 1, n_mels) filterbank matrix, float64.

    `peak` (python_speech_features, §1.4): n_mels + 2 points equally spaced in mel from f_min to f_max, FFT bin
    floor((n_fft + 1) * hz / sr), triangles of height 1 that include their left edge and centre and exclude the right
    edge. `area` (Sphinx, as voice2face uses it, §7.2): bins round(hz / (sr / n_fft)), height 2 / width in Hz.
    """
    n_bins = cfg.n_fft // 2 + 1
    mel_points = np.linspace(hz_to_mel(cfg.f_min), hz_to_mel(cfg.f_max), cfg.n_mels + 2)
    hz_points = mel_to_hz(mel_points)
    if cfg.filterbank_norm == "peak":
        edges = np.floor((cfg.n_fft + 1) * hz_points / cfg.sample_rate)
        return _triangles(edges[:-2], edges[1:-1], edges[2:], n_bins, np.ones(cfg.n_mels))
    hz_per_bin = cfg.sample_rate / cfg.n_fft
    edges = np.round(hz_points / hz_per_bin)
    height = 2.0 / np.maximum((edges[2:] - edges[:-2]) * hz_per_bin, 1e-300)
    # Sphinx starts each rising edge one bin after the left edge, which is also where (i - left) makes it zero
    return _triangles(edges[:-2], edges[1:-1], edges[2:], n_bins, height)


def frame_count(n_samples: int, cfg: AudioConfig) -> int:
    """Frames python_speech_features makes: 1 if n <= window, else 1 + ceil((n - window) / hop) (last one zero-padded)."""
    win, hop = _win_hop(cfg)
    if n_samples <= win:
        return 1
    return 1 + int(math.ceil((1.0 * n_samples - win) / hop))


def _win_hop(cfg: AudioConfig) -> tuple[int, int]:
    # python_speech_features rounds half up: 0.025 * 16000 = 400.00000000000006 -> 400
    return int(math.floor(cfg.win_ms * cfg.sample_rate / 1000 + 0.5)), int(math.floor(cfg.hop_ms * cfg.sample_rate / 1000 + 0.5))


_DTYPES = {"float32": (np.float32, torch.float32), "float64": (np.float64, torch.float64)}
# frames per FFT call: big enough to amortise per-call costs, small enough that the workspace, the spectrum and the
# power spectrum (about 1.3 MB in float32) stay in the CPU's L2 cache between the framing kernel, the FFT, |X|^2 and
# the filterbank product. Features of 225 s of speech in batches of 16 files (benchmarks/bench_audio.py's data), CPU
# time, rotated A/B on a loaded 2-core box: 128 frames 18.7 ms, 256 16.4, 512 16.7, 1024 20.9
_CHUNK_FRAMES = 256


def _emphasised_frames_kernel(
    signal: np.ndarray, first: int, hop: int, coefficient: float, window: np.ndarray, out: np.ndarray
) -> None:
    """Row k of `out` = `window` * frame first + k of the pre-emphasised `signal` (frame t starts at sample t * hop);
    the rest of the row, up to the FFT length, stays zero.

    Pre-emphasis is python_speech_features' sigproc.preemphasis (§1.4 step 3): x[i] - c x[i-1], the first sample
    kept, computed from the int16 samples in the type of `coefficient` (float64: as numpy computes it; float32: twice
    the SIMD width, within 4e-4 of the original's log-mels after the log on bench_audio's 48 files). Samples past the
    end are zero, as python_speech_features pads the last frame after pre-emphasis.

    One compiled pass from the int16 samples to the FFT's input: numpy or torch would make three (int16 to float, the
    pre-emphasis, a fix-up of the frames that reach past the end), each over the whole workspace.
    """
    win = len(window)
    for k in range(out.shape[0]):
        start = (first + k) * hop
        stop = min(win, len(signal) - start)
        row = out[k]
        x = signal[start : start + stop]
        i0 = 0
        if start == 0:  # a signal's first sample is kept as it is
            row[0] = x[0] * window[0]
            i0 = 1
        previous = signal[start + i0 - 1 : start + stop - 1]
        for i in range(i0, stop):
            row[i] = (x[i] - coefficient * previous[i - i0]) * window[i]
        row[stop:win] = 0.0


_emphasised_frames = _compiled(_emphasised_frames_kernel)

# filters per filterbank band: each band multiplies only the FFT bins its filters cover (a dense product would be
# 90% multiplications by zero: the triangles are narrow); smaller bands cost more in per-call overhead than they save
_BAND_FILTERS = 10


@dataclass(frozen=True)
class _FeatureOps:
    """The constant arrays of one feature config: the analysis window (all ones for python_speech_features'
    rectangular one, which multiplies by ones too), and the filterbank split into bands of filters, each with the
    range of power-spectrum bins (rows of the filterbank) its filters cover and those rows of its weights, which carry
    the 1 / n_fft power scale too."""

    window: np.ndarray
    bands: list[tuple[int, int, int, int, np.ndarray]]


_OPS_CACHE: dict[tuple, _FeatureOps] = {}


def _ops(cfg: AudioConfig, dtype: type) -> _FeatureOps:
    # all AudioConfig fields are scalars: its field values identify it (dataclasses.asdict took 60 us a call)
    key = (tuple(vars(cfg).items()), dtype)
    if key not in _OPS_CACHE:
        win, _ = _win_hop(cfg)
        # numpy.hamming (symmetric) is what voice2face's Sphinx code multiplies each frame by (§7.2)
        window = np.ones(win) if cfg.window == "rectangular" else np.hamming(win)
        scale = 1.0 / cfg.n_fft if cfg.power_scale == "per_nfft" else 1.0
        weights = mel_filterbank(cfg) * scale
        bands = []
        for m0 in range(0, cfg.n_mels, _BAND_FILTERS):
            m1 = min(m0 + _BAND_FILTERS, cfg.n_mels)
            rows = np.flatnonzero(weights[:, m0:m1].any(axis=1))
            r0, r1 = (int(rows[0]), int(rows[-1]) + 1) if rows.size else (0, 1)
            bands.append((r0, r1, m0, m1, np.ascontiguousarray(weights[r0:r1, m0:m1], dtype=dtype)))
        _OPS_CACHE[key] = _FeatureOps(window.astype(dtype), bands)
    return _OPS_CACHE[key]


def _power_kernel(spectrum: np.ndarray, out: np.ndarray) -> None:
    """|X|^2 of every bin of `spectrum` (F, 2 n_bins: real and imaginary parts interleaved, as torch.view_as_real
    lays out rfft's output) into `out` (F, n_bins): half the values torch's in-place square of both parts leaves for
    the filterbank product to add up."""
    for f in range(spectrum.shape[0]):
        row, power = spectrum[f], out[f]
        for b in range(out.shape[1]):
            power[b] = row[2 * b] * row[2 * b] + row[2 * b + 1] * row[2 * b + 1]


_power = _compiled(_power_kernel)


def _energies_into(frames: torch.Tensor, power: np.ndarray, out: np.ndarray, n_fft: int, ops: _FeatureOps) -> None:
    """Filterbank energies of F windowed, pre-emphasised frames (F, max(window, n_fft), zero beyond the window) into
    `out`, through the power spectrum workspace `power` (F, n_bins)."""
    # the frames come zero-padded to n_fft, contiguous: rfft then neither pads nor copies them first
    spectrum = torch.view_as_real(torch.fft.rfft(frames, n=n_fft)).numpy()
    _power(spectrum.reshape(len(frames), -1), power)
    for r0, r1, m0, m1, weights in ops.bands:
        np.matmul(power[:, r0:r1], weights, out=out[:, m0:m1])


def log_mel_batch(signals: Sequence[np.ndarray], cfg: AudioConfig, dtype: str | None = None) -> list[torch.Tensor]:
    """Log-mel features (n_mels, T) of several int16-scale signals, computed together.

    The frames of all signals are numbered in one sequence. Chunks of frames are pre-emphasised and windowed by a
    compiled kernel straight from the int16 samples of each signal into a zero-padded workspace, then go through
    torch's FFT, a compiled |X|^2 and the filterbank band products into one time-major (frames, n_mels) array, the
    layout the cache stores.
    Each result is a transposed (n_mels, T) view of its rows. `dtype` (default `cfg.dtype`): float64 reproduces
    python_speech_features to about 1e-12, float32 to about 1e-4.
    """
    if any(len(s) == 0 for s in signals):
        raise ValueError("log_mel of an empty signal (the original fails here with an IndexError)")
    if not signals:
        return []
    np_dtype, torch_dtype = _DTYPES[dtype or cfg.dtype]
    ops = _ops(cfg, np_dtype)
    win, hop = _win_hop(cfg)
    counts = [frame_count(len(s), cfg) for s in signals]
    first_frames = np.concatenate([[0], np.cumsum(counts)]).tolist()
    n_frames = first_frames[-1]
    workspace = np.zeros((min(_CHUNK_FRAMES, n_frames), max(win, cfg.n_fft)), dtype=np_dtype)
    power = np.empty((len(workspace), cfg.n_fft // 2 + 1), dtype=np_dtype)
    energies = np.empty((n_frames, cfg.n_mels), dtype=np_dtype)
    signal = 0  # the first signal with frames in the chunk
    for c in range(0, n_frames, _CHUNK_FRAMES):
        stop = min(c + _CHUNK_FRAMES, n_frames)
        # each signal frames its part of the chunk straight from its own samples (no copy of them all end to end)
        while first_frames[signal] < stop:
            lo, hi = max(c, first_frames[signal]), min(stop, first_frames[signal + 1])
            _emphasised_frames(
                signals[signal], lo - first_frames[signal], hop, np_dtype(cfg.preemphasis), ops.window,
                workspace[lo - c : hi - c],
            )
            if hi < first_frames[signal + 1]:
                break
            signal += 1
        chunk = workspace[: stop - c]
        _energies_into(torch.from_numpy(chunk), power[: stop - c], energies[c:stop], cfg.n_fft, ops)
    floored = torch.from_numpy(energies)
    if cfg.log_floor_mode == "replace_zeros":
        if floored.min() == 0:  # only digitally silent frames have any
            floored.masked_fill_(floored == 0, cfg.log_floor)
    else:
        floored.clamp_min_(cfg.log_floor)
    logs = floored.log_()
    return [logs[start:end].T for start, end in zip(first_frames[:-1], first_frames[1:])]


def log_mel(signal: np.ndarray, cfg: AudioConfig, dtype: str | None = None) -> torch.Tensor:
    """Log-mel features (n_mels, T) of one int16-scale signal; see :func:`log_mel_batch`."""
    return log_mel_batch([signal], cfg, dtype)[0].contiguous()


# --------------------------------------------------------------------------------------------------------------------
# Files to features
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Utterance:
    """Raw (not normalised) log-mel features of one file, with what was done to get them.

    `mel` is (n_mels, T), stored time-major (a transposed view of a contiguous (T, n_mels) block): `mel.T` is what
    the cache stores, without a copy.
    """

    path: str
    mel: torch.Tensor
    seconds: float
    voiced_seconds: float
    notes: tuple[str, ...] = field(default=())


def _with_notes(reason: str, notes: tuple[str, ...]) -> str:
    """A skip reason with what decoding found (a file cut short explains why it is too short or silent)."""
    return f"{reason} ({'; '.join(notes)})" if notes else reason


def extract_log_mels(
    paths: Sequence[str | Path], cfg: AudioConfig, batch_samples: int = 4_000_000
) -> list[Utterance | AudioError]:
    """Decode, VAD and featurise many files; a file that gives no features yields an :class:`AudioError` in its place.

    Reasons for skipping: unreadable or empty files, ffmpeg missing for m4a, audio shorter than one analysis window,
    and speech the VAD does not find (the original crashes or writes a single log(eps) frame for those, §1.4).
    Files are processed about `batch_samples` decoded samples at a time (4M: about 4 minutes of audio).
    """
    win, _ = _win_hop(cfg)
    results: list[Utterance | AudioError | None] = [None] * len(paths)
    pending: list[tuple[int, Waveform]] = []

    def flush() -> None:
        """VAD and features of the decoded files waiting (their VAD together: see voice_activity_batch)."""
        kept = [decoded.samples for _, decoded in pending]
        if cfg.vad:
            # load_audio gave every file cfg.sample_rate
            kept = [vad.apply(x) for vad, x in zip(voice_activity_batch(kept, cfg.sample_rate, cfg), kept)]
        voiced = []
        for (slot, decoded), x in zip(pending, kept):
            if len(x):
                voiced.append((slot, decoded, x))
            else:
                reason = f"silent: the VAD found no speech in {decoded.seconds:.2f} s"
                results[slot] = AudioError(paths[slot], _with_notes(reason, decoded.notes))
        for (slot, decoded, samples), mel in zip(voiced, log_mel_batch([v[2] for v in voiced], cfg)):
            # a view of its rows of the batch's array (at most a few MB, which preparation concatenates anyway)
            seconds = len(samples) / cfg.sample_rate
            results[slot] = Utterance(str(paths[slot]), mel, decoded.seconds, seconds, decoded.notes)
        pending.clear()

    waiting = 0
    for slot, path in enumerate(paths):
        try:
            decoded = load_audio(path, cfg.sample_rate)
            if len(decoded.samples) < win:
                reason = f"too short: {len(decoded.samples)} samples, less than one {cfg.win_ms:g} ms window"
                raise AudioError(path, _with_notes(reason, decoded.notes))
        except AudioError as error:
            results[slot] = error
            continue
        pending.append((slot, decoded))
        waiting += len(decoded.samples)
        if waiting >= batch_samples:
            flush()
            waiting = 0
    flush()
    return results  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------------------------
# Step 4: normalisation
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MelStats:
    """Mean and standard deviation of every raw log-mel value of a dataset's training split (one scalar each)."""

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


def normalize_mel(
    mel: torch.Tensor, cfg: AudioConfig, stats: MelStats | None = None, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Normalise raw log-mels (n_mels, T) as `cfg.mel_norm` says, into a new tensor or into `out` (which may be `mel`
    itself: a packed array normalised in place costs no second array, whose fresh pages the kernel must fault in).

    `global`: (x - mel_mean) / mel_std with the original's scalars (10.9915, 3.1661). `dataset`: the same with `stats`
    of the training split. `utterance`: voice2face's mean and variance per mel bin over this utterance's frames (§7.2).
    """
    # (x - mean) then a division in place: the same two roundings as (mel - mean) / std
    if cfg.mel_norm == "global":
        return torch.sub(mel, cfg.mel_mean, out=out).div_(cfg.mel_std)
    if cfg.mel_norm == "dataset":
        if stats is None:
            raise ValueError("mel_norm 'dataset' needs the training split's statistics (stats.json of the prepared data)")
        return torch.sub(mel, stats.mean, out=out).div_(stats.std)
    eps = float(np.finfo(np.float32).eps)
    # both statistics are taken before `out` (possibly `mel`) is overwritten
    mean, std = mel.mean(dim=-1, keepdim=True), mel.std(dim=-1, unbiased=False, keepdim=True)
    return torch.sub(mel, mean, out=out).div_(std + eps)


def pad_value(cfg: AudioConfig, stats: MelStats | None = None) -> float:
    """What short crops are right-padded with: a raw 0 after normalisation (-3.4716 for the original, §1.6).

    Per-utterance normalisation has no fixed map for a raw 0; it pads with 0, the utterance mean.
    """
    if cfg.mel_norm == "global":
        return cfg.normalised_zero
    if cfg.mel_norm == "dataset":
        if stats is None:
            raise ValueError("mel_norm 'dataset' needs the training split's statistics to know the padding value")
        return (0.0 - stats.mean) / stats.std
    return 0.0


def voice2face_audio_config() -> AudioConfig:
    """The voice2face recipe (§7.2): VAD mode 2 on 20 ms frames with a 50 ms buffer; 64 Sphinx filters (20-7200 Hz,
    area-normalised) on a 1024-point spectrum of Hamming-windowed 25 ms frames; log clipped at 1e-5; per-utterance
    normalisation. The framing is python_speech_features' (voice2face's Sphinx code ends one frame earlier or later).
    """
    return AudioConfig(
        vad_aggressiveness=2,
        vad_frame_ms=20,
        vad_padding_ms=50,
        n_mels=64,
        n_fft=1024,
        window="hamming",
        f_min=20.0,
        f_max=7200.0,
        filterbank_norm="area",
        power_scale="none",
        log_floor=1e-5,
        log_floor_mode="clip",
        mel_norm="utterance",
    )
