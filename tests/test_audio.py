"""sf2f.audio against the original recipe: python_speech_features 0.6 logfbank and the webrtcvad state machine (§1.4).

The oracle, benchmarks/original_audio.py, is the original's recipe written plainly per frame and per file, so the
batched code in sf2f.audio is checked against an independent implementation, on real speech.
"""

from __future__ import annotations

import dataclasses
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import python_speech_features as psf
import soundfile as sf
import torch
import torchaudio.functional as AF
from fixtures_data import SPEECH_FILES, real_speech

from benchmarks import original_audio as original
from sf2f import audio
from sf2f.audio import AudioError, MelStats, decode
from sf2f.audio import mel as mel_module
from sf2f.audio.vad import ring_buffer_keep
from sf2f.config import AudioConfig

CFG = AudioConfig()


def speech_with_pauses() -> np.ndarray:
    """Both real recordings with noise (which webrtcvad mode 1 takes for speech) and 0.75 s pauses between them:
    several trigger/release cycles."""
    rng = np.random.default_rng(0)
    parts = []
    for rec in (real_speech(0), real_speech(1), real_speech(0)[: 30000]):
        parts += [rng.normal(0, 30, 3000), np.zeros(12000), rec.astype(np.float64)]
    return np.clip(np.concatenate(parts), -32768, 32767).astype(np.int16)


# --------------------------------------------------------------------------------------------------------------------
# VAD
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ring, ratio", [(1, 0.9), (2, 0.9), (5, 0.9), (10, 0.9), (10, 0.5), (7, 0.3), (4, 0.75)])
def test_ring_buffer_matches_the_original_collector_on_random_decisions(ring: int, ratio: float) -> None:
    """The counting collector against the original's deque of frames; ratios below 0.9 can trigger on a partly
    filled buffer, which 0.9 never does."""
    rng = np.random.default_rng(ring * 100 + int(ratio * 100))
    for trial in range(300):
        p = rng.uniform(0.05, 0.95)
        if trial % 3 == 0:  # long runs, like speech and pauses
            decisions = np.repeat(rng.random(30) < p, rng.integers(1, 40, 30))[: int(rng.integers(0, 400))]
        else:
            decisions = rng.random(int(rng.integers(0, 120))) < p
        ours = np.flatnonzero(ring_buffer_keep(decisions.tolist(), ring, ratio))
        segments = original.collect_voiced(enumerate(decisions.tolist()), ring, ratio)
        assert ours.tolist() == [k for segment in segments for k in segment], f"trial {trial}"


@pytest.mark.parametrize("rate", [8000, 16000, 32000, 48000])
def test_vad_is_the_originals_at_every_rate_aggressiveness_and_frame_length(rate: int) -> None:
    """Speech with pauses at each rate webrtcvad accepts, every aggressiveness and frame length: the same samples as
    the oracle keeps, and webrtcvad really calls some frames speech and some not."""
    x = speech_with_pauses()
    if rate != 16000:
        x = AF.resample(torch.from_numpy(x.astype(np.float32)), 16000, rate).round().short().numpy()
    for mode in range(4):
        for frame_ms in (10, 20, 30):
            cfg = dataclasses.replace(CFG, vad_aggressiveness=mode, vad_frame_ms=frame_ms)
            result = audio.voice_activity(x, rate, cfg)
            np.testing.assert_array_equal(result.apply(x), original.vad(x, rate, mode, frame_ms))
            assert 0 < result.speech.sum() < result.n_frames


def test_vad_names_the_rates_webrtcvad_accepts() -> None:
    with pytest.raises(ValueError, match="not 44100 Hz"):
        audio.voice_activity(speech_with_pauses(), 44100, CFG)


@pytest.mark.parametrize("signal", ["a0007", "a0009", "pauses"])
def test_vad_output_is_the_originals_on_real_speech(signal: str) -> None:
    x = {"a0007": real_speech(0), "a0009": real_speech(1), "pauses": speech_with_pauses()}[signal]
    result = audio.voice_activity(x, 16000, CFG)
    kept = result.apply(x)
    np.testing.assert_array_equal(kept, original.vad(x))
    assert 0 < len(kept) < len(x)  # the state machine really drops something (leading silence at least)
    if signal == "pauses":
        changes = np.flatnonzero(np.diff(result.keep.astype(int)))
        assert len(changes) >= 4, "expected several voiced segments separated by dropped pauses"


def test_vad_with_the_voice2face_settings_matches_the_oracle() -> None:
    x = speech_with_pauses()
    cfg = audio.voice2face_audio_config()
    np.testing.assert_array_equal(audio.voice_activity(x, 16000, cfg).apply(x), original.vad(x, 16000, 2, 20, 50))


@pytest.mark.parametrize("frames, extra, expected", [(20, 0, 19), (20, 1, 20), (20, 479, 20), (1, 0, 0), (0, 100, 0)])
def test_trailing_frame_rule(frames: int, extra: int, expected: int) -> None:
    """Frames are taken while offset + 960 bytes < len: an exact multiple loses its last full frame too (§1.4)."""
    x = np.zeros(frames * 480 + extra, np.int16)
    assert audio.voice_activity(x, 16000, CFG).n_frames == expected


def test_vad_plotting_helpers_line_up_with_the_samples() -> None:
    x = speech_with_pauses()
    result = audio.voice_activity(x, 16000, CFG)
    mask = result.sample_mask(len(x))
    assert mask.shape == x.shape and mask.sum() == len(result.apply(x))
    np.testing.assert_array_equal(x[mask], result.apply(x))
    times = result.frame_times()
    assert times[0] == 0.0 and np.allclose(np.diff(times), 0.03)


# --------------------------------------------------------------------------------------------------------------------
# Log-mel filterbank
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SPEECH_FILES, ids=lambda p: p.stem)
def test_log_mel_matches_the_original_on_real_speech(path: Path) -> None:
    """The acceptance check: VAD + logfbank of real recordings, float64 within 1e-4 and float32 within 1e-3."""
    reference = original.wav_to_mel(path)
    voiced = original.vad(*original.read_pcm(path))
    wave = audio.load_audio(path)
    ours = audio.log_mel(audio.voice_activity(wave.samples, 16000, CFG).apply(wave.samples), CFG, "float64")
    assert ours.dtype == torch.float64 and ours.shape == reference.shape
    err64 = float(np.abs(ours.numpy() - reference).max())
    err32 = float(np.abs(audio.log_mel(voiced, CFG).numpy() - reference).max())
    print(f"{path.name}: max |ours - python_speech_features|: float64 {err64:.2e}, float32 {err32:.2e}")
    assert err64 < 1e-4
    assert err32 < 1e-3


@pytest.mark.parametrize("n", [1, 5, 399, 400, 401, 560, 561, 1234])
def test_framing_of_short_and_odd_lengths_matches_the_original(n: int) -> None:
    x = (np.random.default_rng(n).normal(0, 2000, n)).astype(np.int16)
    reference = psf.logfbank(x, samplerate=16000, nfilt=40).T
    assert audio.frame_count(n, CFG) == reference.shape[1]
    np.testing.assert_allclose(audio.log_mel(x, CFG, "float64").numpy(), reference, atol=1e-8)


def test_digital_silence_gives_log_eps_like_the_original() -> None:
    x = np.zeros(1600, np.int16)
    ours = audio.log_mel(x, CFG, "float64").numpy()
    np.testing.assert_allclose(ours, psf.logfbank(x, samplerate=16000, nfilt=40).T)
    assert np.allclose(ours, np.log(np.finfo(float).eps))


@pytest.mark.parametrize("nfilt, nfft, rate, low, high", [(40, 512, 16000, 0, 8000), (26, 512, 8000, 0, 4000), (64, 1024, 16000, 300, 7000)])
def test_filterbank_is_python_speech_features(nfilt: int, nfft: int, rate: int, low: float, high: float) -> None:
    cfg = AudioConfig(sample_rate=rate, n_mels=nfilt, n_fft=nfft, f_min=low, f_max=high)
    expected = psf.get_filterbanks(nfilt=nfilt, nfft=nfft, samplerate=rate, lowfreq=low, highfreq=high).T
    np.testing.assert_array_equal(audio.mel_filterbank(cfg), expected)


@pytest.mark.parametrize("chunk_frames", [7, 1024])
def test_batching_does_not_change_the_values(monkeypatch: pytest.MonkeyPatch, chunk_frames: int) -> None:
    """Signals batched together, in chunks of frames that cut through signals (7) or hold several whole ones."""
    signals = [real_speech(0)[: 400 + 37 * k] for k in range(1, 6)] + [real_speech(1)]
    monkeypatch.setattr(mel_module, "_CHUNK_FRAMES", chunk_frames)
    batched = audio.log_mel_batch(signals, CFG, "float64")
    for signal, mel in zip(signals, batched):
        torch.testing.assert_close(mel, audio.log_mel(signal, CFG, "float64"), rtol=0, atol=1e-12)


def test_empty_signal_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="empty signal"):
        audio.log_mel(np.zeros(0, np.int16), CFG)


def test_voice2face_features() -> None:
    cfg = audio.voice2face_audio_config()
    fb = audio.mel_filterbank(cfg)
    assert fb.shape == (513, 64)
    # area-normalised triangles: the area (sum x bin width in Hz) is about 1 for every filter wide enough to sample
    areas = fb.sum(axis=0) * cfg.sample_rate / cfg.n_fft
    assert np.allclose(areas[10:], 1.0, atol=0.05)
    lowest_bin, highest_bin = np.flatnonzero(fb.sum(axis=1))[[0, -1]]
    assert lowest_bin * 16000 / 1024 >= 20 and highest_bin * 16000 / 1024 <= 7200
    mel = audio.log_mel(real_speech(0), cfg)
    assert mel.shape[0] == 64 and float(mel.min()) >= np.log(1e-5) - 1e-6
    normed = audio.normalize_mel(mel, cfg)
    torch.testing.assert_close(normed.mean(dim=1), torch.zeros(64), atol=1e-4, rtol=0)
    torch.testing.assert_close(normed.std(dim=1, unbiased=False), torch.ones(64), atol=1e-3, rtol=0)


def test_voice2face_framing_is_python_speech_features_with_a_hamming_window() -> None:
    """The voice2face path (Hamming window, 1024-point spectrum, no 1/n_fft, log clipped at 1e-5) against
    python_speech_features' own framing and power spectrum with those settings, on signals batched together."""
    cfg = audio.voice2face_audio_config()
    signals = [real_speech(0), real_speech(1)[:5000], np.zeros(900, np.int16)]
    for signal, ours in zip(signals, audio.log_mel_batch(signals, cfg, "float64")):
        frames = psf.sigproc.framesig(psf.sigproc.preemphasis(signal, 0.97), 400, 160, winfunc=np.hamming)
        energies = psf.sigproc.powspec(frames, 1024) * 1024 @ audio.mel_filterbank(cfg)
        np.testing.assert_allclose(ours.numpy(), np.log(np.maximum(energies, 1e-5)).T, rtol=0, atol=1e-8)


# --------------------------------------------------------------------------------------------------------------------
# Normalisation
# --------------------------------------------------------------------------------------------------------------------


def test_global_normalisation_and_padding_value() -> None:
    mel = torch.tensor([[0.0, 10.9915, 14.1576]])
    torch.testing.assert_close(audio.normalize_mel(mel, CFG), torch.tensor([[-3.47162, 0.0, 1.0]]), atol=1e-5, rtol=0)
    assert round(audio.pad_value(CFG), 4) == -3.4716


def test_dataset_normalisation_needs_and_uses_the_statistics() -> None:
    cfg = dataclasses.replace(CFG, mel_norm="dataset")
    values = np.random.default_rng(0).normal(7.0, 2.0, (40, 300))
    stats = MelStats.from_sums(values.sum(), np.square(values).sum(), values.size)
    assert stats.mean == pytest.approx(values.mean()) and stats.std == pytest.approx(values.std())
    normed = audio.normalize_mel(torch.from_numpy(values), cfg, stats)
    assert abs(float(normed.mean())) < 1e-9 and float(normed.std(unbiased=False)) == pytest.approx(1.0)
    assert audio.pad_value(cfg, stats) == pytest.approx(-values.mean() / values.std())
    with pytest.raises(ValueError, match="statistics"):
        audio.normalize_mel(torch.from_numpy(values), cfg)


@pytest.mark.parametrize("mode", ["global", "dataset", "utterance"])
def test_normalisation_in_place_gives_the_same_values(mode: str) -> None:
    """`out=mel` overwrites the raw values with exactly what a new tensor would hold (the per-utterance statistics
    are taken before the overwrite); without `out` the input is left alone."""
    cfg = dataclasses.replace(CFG, mel_norm=mode)
    stats = MelStats(7.0, 2.0, 1)
    raw = torch.from_numpy(np.random.default_rng(1).normal(7.0, 2.0, (300, 40)).astype(np.float32)).T
    kept = raw.clone()
    fresh = audio.normalize_mel(raw, cfg, stats)
    assert torch.equal(raw, kept) and not torch.equal(fresh, kept)
    in_place = audio.normalize_mel(raw, cfg, stats, out=raw)
    assert in_place.data_ptr() == raw.data_ptr() and torch.equal(in_place, fresh)


# --------------------------------------------------------------------------------------------------------------------
# Decoding and bad input
# --------------------------------------------------------------------------------------------------------------------


def speech_float() -> np.ndarray:
    return real_speech(0).astype(np.float64) / 32768.0


def test_16bit_mono_is_read_bit_exactly(tmp_path: Path) -> None:
    wave = audio.load_audio(SPEECH_FILES[0])
    np.testing.assert_array_equal(wave.samples, real_speech(0))
    assert wave.notes == () and wave.sample_rate == 16000 and wave.seconds == pytest.approx(4.0)


@pytest.mark.parametrize("subtype, tolerance", [("PCM_U8", 256), ("PCM_24", 1), ("PCM_32", 1), ("FLOAT", 1)])
def test_other_sample_formats_become_16bit(tmp_path: Path, subtype: str, tolerance: int) -> None:
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, speech_float(), 16000, subtype=subtype)
    wave = audio.load_audio(path)
    assert wave.samples.dtype == np.int16 and any(subtype in n for n in wave.notes)
    assert np.abs(wave.samples.astype(int) - real_speech(0)).max() <= tolerance


def test_stereo_is_averaged(tmp_path: Path) -> None:
    x = speech_float()
    sf.write(tmp_path / "st.wav", np.stack([x, np.zeros_like(x)], axis=1), 16000, subtype="PCM_16")
    wave = audio.load_audio(tmp_path / "st.wav")
    assert "2 channels averaged to mono" in wave.notes
    assert np.abs(wave.samples.astype(int) - real_speech(0) / 2).max() <= 1


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000, 96000])
def test_unusual_rates_are_resampled_to_16k(tmp_path: Path, rate: int) -> None:
    x = torch.from_numpy(speech_float())
    at_rate = AF.resample(x, 16000, rate).numpy()
    sf.write(tmp_path / "r.wav", at_rate, rate, subtype="PCM_16")
    wave = audio.load_audio(tmp_path / "r.wav")
    assert wave.sample_rate == 16000 and abs(len(wave.samples) - 64000) <= 2
    assert any(f"from {rate} Hz" in n for n in wave.notes)
    reference = AF.resample(torch.from_numpy(at_rate), rate, 16000).numpy() * 32768  # same band limit
    n = min(len(reference), len(wave.samples))
    assert np.corrcoef(reference[:n], wave.samples[:n])[0, 1] > 0.999


def test_flac_is_read(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.flac", real_speech(1), 16000, subtype="PCM_16")
    np.testing.assert_array_equal(audio.load_audio(tmp_path / "a.flac").samples, real_speech(1))


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "empty file"), (b"definitely not audio " * 50, "not a readable audio file"), (b"RIFF\x24\x00\x00\x00WAVEfmt ", "not a readable")],
    ids=["empty", "text", "header-only"],
)
def test_unreadable_files_are_clear_errors(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=reason) as info:
        audio.load_audio(path)
    assert info.value.path == str(path) and str(path) in str(info.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="cannot be opened"):
        audio.load_audio(tmp_path / "nope.wav")


def test_truncated_wav_is_used_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    sf.write(path, real_speech(0), 16000, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:60000])
    wave = audio.load_audio(path)
    assert len(wave.samples) == (60000 - 44) // 2
    assert any("truncated" in n and "64000" in n for n in wave.notes)
    np.testing.assert_array_equal(wave.samples, real_speech(0)[: len(wave.samples)])


def _riff(chunks: list[tuple[bytes, bytes]], data_size: int | None = None) -> bytes:
    """A RIFF/WAVE file from (id, body) chunks, padded to even sizes; `data_size` overrides the data chunk's size."""
    body = b"WAVE"
    for cid, content in chunks:
        size = data_size if cid == b"data" and data_size is not None else len(content)
        body += cid + struct.pack("<I", size) + content + b"\x00" * (len(content) & 1)
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize(
    "layout",
    ["list-before-data", "chunk-after-data", "odd-byte-count", "streaming-size", "extensible", "data-before-fmt"],
)
def test_unusual_riff_layouts_read_like_the_originals_wave_module(tmp_path: Path, layout: str) -> None:
    """load_audio gives the samples Python's `wave` gives the original, whatever the chunks around them, also from
    WAVE_FORMAT_EXTENSIBLE (which `wave` refuses before Python 3.12: soundfile reads it) and with a streaming
    encoder's unknown data size (which is no truncation); data before fmt is a clear error."""
    x = real_speech(1)[:16001]
    pcm = x.astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    pcm_guid = bytes.fromhex("0100000000001000800000aa00389b71")  # KSDATAFORMAT_SUBTYPE_PCM
    extensible = struct.pack("<HHIIHHHHI", 0xFFFE, 1, 16000, 32000, 2, 16, 22, 16, 4) + pcm_guid
    chunks = {
        "list-before-data": [(b"fmt ", fmt), (b"LIST", b"INFOISFT\x05\x00\x00\x00abcd\x00"), (b"data", pcm)],
        "chunk-after-data": [(b"fmt ", fmt), (b"data", pcm), (b"id3 ", b"x" * 33)],
        "odd-byte-count": [(b"fmt ", fmt), (b"data", pcm + b"\x07")],
        "streaming-size": [(b"fmt ", fmt), (b"data", pcm)],
        "extensible": [(b"fmt ", extensible), (b"data", pcm)],
        "data-before-fmt": [(b"data", pcm), (b"fmt ", fmt)],
    }[layout]
    path = tmp_path / f"{layout}.wav"
    path.write_bytes(_riff(chunks, 0xFFFFFFFF if layout == "streaming-size" else None))
    if layout == "data-before-fmt":  # neither `wave` nor libsndfile reads it
        with pytest.raises(AudioError, match="not a readable audio file"):
            audio.load_audio(path)
        return
    wave = audio.load_audio(path)
    assert wave.samples.dtype == np.int16 and wave.notes == ()
    np.testing.assert_array_equal(wave.samples, x)
    if layout not in ("extensible", "streaming-size"):
        np.testing.assert_array_equal(np.frombuffer(original.read_pcm(path)[0], "<i2"), x)


def test_m4a_without_ffmpeg_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "00001.m4a"
    path.write_bytes(b"\x00\x00\x00\x20ftypM4A ")
    monkeypatch.setattr(decode.shutil, "which", lambda name: None)
    with pytest.raises(AudioError, match="needs ffmpeg, which is not installed.*apt-get install ffmpeg"):
        audio.load_audio(path)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_m4a_through_ffmpeg(tmp_path: Path) -> None:
    import subprocess

    wav, m4a = tmp_path / "a.wav", tmp_path / "a.m4a"
    sf.write(wav, real_speech(0), 16000, subtype="PCM_16")
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(wav), "-c:a", "aac", "-b:a", "128k", str(m4a)], check=True)
    wave = audio.load_audio(m4a)
    assert wave.notes == ("decoded with ffmpeg",) and abs(wave.seconds - 4.0) < 0.1
    n = min(64000, len(wave.samples))
    lag = int(np.argmax(np.correlate(wave.samples[:4000].astype(float), real_speech(0)[:3000].astype(float), "valid")))
    assert np.corrcoef(wave.samples[lag : n], real_speech(0)[: n - lag])[0, 1] > 0.95
    (tmp_path / "broken.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " * 10)
    with pytest.raises(AudioError, match="ffmpeg could not decode"):
        audio.load_audio(tmp_path / "broken.m4a")


def test_extract_reports_silence_and_short_clips_and_keeps_going(tmp_path: Path) -> None:
    sf.write(tmp_path / "silent.wav", np.zeros(32000, np.int16), 16000, subtype="PCM_16")
    sf.write(tmp_path / "noise.wav", np.random.default_rng(0).normal(0, 20, 32000).astype(np.int16), 16000)
    sf.write(tmp_path / "short.wav", real_speech(0)[20000:20300], 16000, subtype="PCM_16")
    sf.write(tmp_path / "blip.wav", real_speech(0)[20000:24000], 16000, subtype="PCM_16")  # 250 ms < the ring buffer
    (tmp_path / "empty.wav").write_bytes(b"")
    sf.write(tmp_path / "cut.wav", real_speech(0), 16000, subtype="PCM_16")
    (tmp_path / "cut.wav").write_bytes((tmp_path / "cut.wav").read_bytes()[:300])  # the header and 128 samples
    sf.write(tmp_path / "quiet44k.wav", np.zeros((44100, 2)), 44100, subtype="PCM_24")
    names = ("silent.wav", "noise.wav", "short.wav", "blip.wav", "empty.wav", "cut.wav", "quiet44k.wav")
    paths = [tmp_path / n for n in names] + [SPEECH_FILES[1]]
    results = audio.extract_log_mels(paths, CFG)
    reasons = [r.reason if isinstance(r, AudioError) else "ok" for r in results]
    assert reasons[0].startswith("silent") and reasons[1].startswith("silent") and reasons[3].startswith("silent")
    assert reasons[2] == "too short: 300 samples, less than one 25 ms window"
    assert reasons[4] == "empty file (0 bytes)"
    # what decoding found stays in the reason: a truncated file is too short because it was cut
    assert reasons[5].startswith("too short: 128 samples")
    assert "truncated: the header declares 64000 frames" in reasons[5]
    assert reasons[6].startswith("silent: the VAD found no speech in 1.00 s")
    assert "resampled from 44100 Hz" in reasons[6] and "2 channels averaged" in reasons[6]
    good = results[-1]
    assert isinstance(good, audio.Utterance) and good.mel.shape[0] == 40
    assert good.seconds == pytest.approx(3.095) and 0 < good.voiced_seconds < good.seconds
    reference = psf.logfbank(original.vad(real_speech(1)), samplerate=16000, nfilt=40).T
    assert np.abs(good.mel.numpy() - reference).max() < 1e-3


def test_extract_in_small_batches_gives_the_same_features() -> None:
    paths = [SPEECH_FILES[0], SPEECH_FILES[1]] * 3
    whole = audio.extract_log_mels(paths, CFG)
    pieces = audio.extract_log_mels(paths, CFG, batch_samples=1)
    for a, b in zip(whole, pieces):
        torch.testing.assert_close(a.mel, b.mel, rtol=0, atol=1e-5)


def test_without_vad_every_sample_is_featurised() -> None:
    cfg = dataclasses.replace(CFG, vad=False)
    (result,) = audio.extract_log_mels([SPEECH_FILES[0]], cfg)
    assert result.mel.shape[1] == audio.frame_count(64000, cfg) and result.voiced_seconds == result.seconds
