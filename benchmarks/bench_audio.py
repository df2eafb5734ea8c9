"""wav -> normalised log-mel, VAD included: sf2f.audio against the original's per-file recipe, one thread, one process.

Both sides process the same wav files: 48 utterances of 2 to 8 s cut from the real CMU ARCTIC recordings in
tests/data, with pauses and faint noise (so the VAD has work to do), 16 kHz mono 16-bit like VoxCeleb1.

- original: per file, `wave` read, webrtcvad + ring-buffer collector, python_speech_features.logfbank (float64), one
  pickle per utterance (benchmarks/original_audio.py, reference §1.4);
- sf2f: soundfile read, the same VAD decisions, batched torch log-mels (float32, the default), global normalisation,
  all utterances packed into one .npy (as the cache stores them).

Goal (issue 4): at least 5x faster per core, i.e. a ratio (sf2f / original) of 0.2 or less. More rows time the
parts: the features alone (float32 and the exact float64 mode) against logfbank, and the VAD alone. Both sides must
call webrtcvad on every 30 ms frame, in order (its decisions depend on its internal state), at about 3 us a call; that
shared cost bounds the whole-pipeline ratio from below, whatever the features cost.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import python_speech_features
import soundfile as sf
import torch
from threadpoolctl import threadpool_limits

from benchmarks import original_audio
from benchmarks.harness import Comparison, compare
from sf2f import audio
from sf2f.config import AudioConfig
from sf2f.paths import REPO_ROOT

SPEECH = [REPO_ROOT / "tests" / "data" / name for name in ("arctic_a0007.wav", "arctic_a0009.wav")]


def make_wavs(folder: Path, count: int = 48, seed: int = 0) -> list[Path]:
    """`count` utterances of 2-8 s of real speech with pauses, in VoxCeleb's <speaker>/<clip>/<n>.wav layout."""
    rng = np.random.default_rng(seed)
    sources = [sf.read(p, dtype="int16")[0].astype(np.float64) for p in SPEECH]
    paths = []
    for k in range(count):
        target = int(rng.uniform(2.0, 8.0) * 16000)
        pieces, total = [], 0
        while total < target:
            source = sources[int(rng.integers(2))]
            start = int(rng.integers(0, len(source) // 2))
            piece = source[start : start + int(rng.integers(8000, len(source) - start))] * rng.uniform(0.3, 1.0)
            pause = rng.normal(0, 10, int(rng.uniform(0.1, 0.6) * 16000))
            pieces += [pause, piece]
            total += len(pause) + len(piece)
        path = folder / f"id{k // 8:05d}" / f"clip{k % 4}" / f"{k:05d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.clip(np.concatenate(pieces)[:target], -32768, 32767).astype(np.int16), 16000, subtype="PCM_16")
        paths.append(path)
    return paths


def sf2f_pipeline(paths: list[Path], out: Path, cfg: AudioConfig, batch: int = 16) -> None:
    """What one preparation worker does with an identity's utterances, plus the normalisation training applies."""
    mels = []
    for start in range(0, len(paths), batch):
        for result in audio.extract_log_mels(paths[start : start + batch], cfg):
            mels.append(audio.normalize_mel(result.mel, cfg).T)
    np.save(out / "mels.npy", torch.cat(mels).numpy())


def run(repeats: int = 10) -> list[Comparison]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # numpy's BLAS (python_speech_features' filterbank product) gets one thread too
        with threadpool_limits(limits=1):
            return _run(repeats)
    finally:
        torch.set_num_threads(threads)


def _run(repeats: int) -> list[Comparison]:
    cfg = AudioConfig()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        paths = make_wavs(tmp_path / "wav")
        seconds = sum(sf.info(p).duration for p in paths)
        (tmp_path / "ours").mkdir()
        (tmp_path / "original").mkdir()
        waves = [audio.load_audio(p).samples for p in paths]
        voiced = [original_audio.vad(w) for w in waves]
        results = [
            compare(
                f"wav -> normalised log-mel, VAD included, {len(paths)} files, {seconds:.0f} s of audio, 1 thread",
                lambda: sf2f_pipeline(paths, tmp_path / "ours", cfg),
                lambda: original_audio.convert_files(paths, tmp_path / "original"),
                repeats=repeats,
                reference_label="original (per file)",
            ),
            compare(
                "VAD only (webrtcvad on every frame + the ring-buffer state machine)",
                lambda: [audio.voice_activity(w, 16000, cfg).apply(w) for w in waves],
                lambda: [original_audio.vad(w) for w in waves],
                repeats=repeats,
                reference_label="original VAD",
            ),
        ]
        for dtype, note in (("float32", ""), ("float64", " (exact mode)")):
            results.append(
                compare(
                    f"log-mel features only (after VAD), {dtype}{note}",
                    lambda dtype=dtype: audio.log_mel_batch(voiced, cfg, dtype),
                    lambda: [python_speech_features.logfbank(v, samplerate=16000, nfilt=40) for v in voiced],
                    repeats=repeats,
                    reference_label="logfbank",
                )
            )
    full = results[0]
    print(
        f"audio seconds per second, 1 thread: sf2f {seconds / full.candidate_median:.0f}, "
        f"original {seconds / full.reference_median:.0f}; speed-up {full.speedup:.1f}x (goal: 5x)"
    )
    return results
