"""A source-filter speech synthesiser: babble that carries a speaker's sex, age and size, and nothing about the face.
A **score** of syllables and pauses drives (1) a Rosenberg **glottal source** at f0 with jitter, shimmer, intonation and
breathiness, (2) five cascaded **formants** in the STFT domain, scaled by the vocal-tract length and gliding to
consonant loci, plus noise bands, (3) a recording **channel**: EQ, a small room, background noise, gain, 16-bit PCM.
The same machinery laughs; `distractors` overlays laughter, music, noise and others on stretches of speech."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.fft import next_fast_len
from scipy.signal import istft, oaconvolve, stft

from sf2f.data.synthetic.traits import AGE_RANGE, Identity

__all__ = ["DURATION_RANGE", "SAMPLE_RATE", "Channel", "coloured_noise", "draw_channel", "synthesize_utterance"]

SAMPLE_RATE = 16_000
DURATION_RANGE = (2.0, 8.0)
# STFT of the filter stage: 32 ms sqrt-Hann windows at 50 % overlap reconstruct exactly
_N_FFT = 512
_HOP = 256
_FREQS_KHZ = np.fft.rfftfreq(_N_FFT, 1.0 / SAMPLE_RATE) / 1000.0
_WINDOW = np.sqrt(np.hanning(_N_FFT + 1)[:-1])
# vocal-tract length the vowel table below belongs to (adult men)
_REFERENCE_TRACT_CM = 17.0

# Vowel formants F1-F4 of adult men in Hz (rounded from Hillenbrand et al. 1995, F4 filled in), scaled per speaker.
_VOWELS = np.array([
    (342, 2322, 3000, 3650),  # i  heed
    (427, 2034, 2684, 3600),  # ɪ  hid
    (476, 2089, 2691, 3600),  # e  hayed
    (580, 1799, 2605, 3550),  # ɛ  head
    (588, 1952, 2601, 3550),  # æ  had
    (768, 1333, 2522, 3500),  # ɑ  hod
    (652, 997, 2538, 3450),  # ɔ  hawed
    (497, 910, 2459, 3400),  # o  hoed
    (469, 1122, 2434, 3400),  # ʊ  hood
    (378, 997, 2343, 3350),  # u  who'd
    (623, 1200, 2550, 3500),  # ʌ  hud
    (474, 1379, 1710, 3350),  # ɝ  heard
], dtype=float)
_BANDWIDTHS_HZ = np.array([70.0, 95.0, 130.0, 200.0, 260.0])
_F5_HZ = 4400.0


@dataclass(frozen=True)
class _Consonant:
    kind: str  # fricative | stop | nasal | approximant | aspirate
    locus: tuple[float, float, float, float]  # formant targets the neighbouring vowel glides from (Hz, men)
    band_hz: tuple[float, float] = (4000.0, 2000.0)  # noise centre and width (fricatives and bursts)
    noise: float = 0.0  # frication or burst amplitude
    voicing: float = 0.0  # voicing amplitude during the consonant


_ALVEOLAR = (300.0, 1700.0, 2600.0, 3500.0)
_LABIAL = (300.0, 900.0, 2200.0, 3300.0)
_VELAR = (300.0, 2000.0, 2300.0, 3400.0)
_CONSONANTS: tuple[_Consonant, ...] = (
    _Consonant("fricative", _ALVEOLAR, (5500.0, 1500.0), noise=0.9),  # s
    _Consonant("fricative", (300.0, 1900.0, 2400.0, 3400.0), (2900.0, 1000.0), noise=1.0),  # sh
    _Consonant("fricative", _LABIAL, (4500.0, 3500.0), noise=0.35),  # f
    _Consonant("fricative", _ALVEOLAR, (5500.0, 1500.0), noise=0.5, voicing=0.3),  # z
    _Consonant("fricative", _LABIAL, (4000.0, 3000.0), noise=0.25, voicing=0.4),  # v
    _Consonant("aspirate", _ALVEOLAR, noise=0.6),  # h
    _Consonant("stop", _LABIAL, (1200.0, 1500.0), noise=1.4),  # p
    _Consonant("stop", _ALVEOLAR, (4200.0, 1800.0), noise=1.4),  # t
    _Consonant("stop", _VELAR, (2200.0, 700.0), noise=1.4),  # k
    _Consonant("stop", _LABIAL, (1200.0, 1500.0), noise=0.7, voicing=0.15),  # b
    _Consonant("stop", _ALVEOLAR, (4200.0, 1800.0), noise=0.7, voicing=0.15),  # d
    _Consonant("stop", _VELAR, (2200.0, 700.0), noise=0.7, voicing=0.15),  # g
    _Consonant("nasal", (280.0, 1000.0, 2200.0, 3300.0), voicing=0.35),  # m
    _Consonant("nasal", (280.0, 1600.0, 2500.0, 3300.0), voicing=0.35),  # n
    _Consonant("approximant", (360.0, 1050.0, 2700.0, 3400.0), voicing=0.6),  # l
    _Consonant("approximant", (350.0, 1150.0, 1550.0, 3100.0), voicing=0.6),  # r
    _Consonant("approximant", (300.0, 650.0, 2200.0, 3300.0), voicing=0.6),  # w
    _Consonant("approximant", (280.0, 2200.0, 2950.0, 3500.0), voicing=0.6),  # j
)
_CODAS = tuple(c for c in _CONSONANTS if c.kind in ("fricative", "nasal"))


@dataclass(frozen=True)
class Channel:
    """The recording conditions of one clip: microphone and room colour (per clip, as one video is one setting)."""

    tilt_db_per_octave: float
    peak_hz: float
    peak_db: float
    highpass_hz: float
    lowpass_hz: float  # 0 = none
    room_rt60_s: float  # 0 = dry
    room_wet: float

    def response(self) -> np.ndarray:
        """The magnitude response on the synthesiser's STFT bins."""
        f = np.maximum(_FREQS_KHZ * 1000.0, 1.0)
        octaves = np.log2(f / 1000.0)
        gain_db = self.tilt_db_per_octave * np.clip(octaves, -3.0, 3.0)
        gain_db += self.peak_db * np.exp(-0.5 * (np.log2(f / self.peak_hz) / 0.6) ** 2)
        mag = 10.0 ** (gain_db / 20.0) / np.sqrt(1.0 + (self.highpass_hz / f) ** 4)
        if self.lowpass_hz > 0:
            mag /= np.sqrt(1.0 + (f / self.lowpass_hz) ** 8)
        return mag


def draw_channel(rng: np.random.Generator) -> Channel:
    """A random but plausible recording channel."""
    reverberant = rng.random() < 0.6
    return Channel(
        tilt_db_per_octave=float(rng.uniform(-1.5, 1.0)),
        peak_hz=float(np.exp(rng.uniform(np.log(300.0), np.log(5000.0)))),
        peak_db=float(rng.uniform(-3.0, 3.0)),
        highpass_hz=float(rng.uniform(40.0, 90.0)),
        lowpass_hz=float(rng.uniform(4500.0, 7800.0)) if rng.random() < 0.3 else 0.0,
        room_rt60_s=float(rng.uniform(0.15, 0.5)) if reverberant else 0.0,
        room_wet=float(rng.uniform(0.05, 0.3)) if reverberant else 0.0,
    )


class _Score:
    """What the speaker does over time: amplitude tracks per sample, formant and noise-band targets."""

    def __init__(self, n_samples: int) -> None:
        self.n = n_samples
        self.voicing = np.zeros(n_samples)
        self.frication = np.zeros(n_samples)
        self.aspiration = np.zeros(n_samples)
        n_frames = n_samples // _HOP + 2
        self.band_centre = np.full(n_frames, 4000.0)
        self.band_width = np.full(n_frames, 2000.0)
        # (times, values) keys that np.interp reads: formant targets (Hz) and intonation (semitones)
        self.formants: tuple[list[float], list[np.ndarray]] = ([], [])
        self.pitch: tuple[list[float], list[float]] = ([], [])

    def ramp(self, track: np.ndarray, start: float, end: float, amp: float, ramp_s: float = 0.012) -> None:
        """Add a trapezoid of height `amp` between two times (seconds) to an amplitude track."""
        a, b = int(start * SAMPLE_RATE), min(int(end * SAMPLE_RATE), self.n)
        if b <= a:
            return
        t = np.arange(a, b) / SAMPLE_RATE
        rise = np.minimum((t - start) / ramp_s, (end - t) / ramp_s)
        track[a:b] += amp * np.clip(rise, 0.0, 1.0)

    def band(self, start: float, end: float, centre: float, width: float) -> None:
        a, b = int(start * SAMPLE_RATE / _HOP), int(np.ceil(end * SAMPLE_RATE / _HOP)) + 1
        self.band_centre[a:b] = centre
        self.band_width[a:b] = width


def _add_key(track: tuple[list[float], list], time: float, value: float | np.ndarray) -> None:
    """Append a key to a track of the score, just after the last one if not later (np.interp needs rising times)."""
    times, values = track
    times.append(times[-1] + 1e-4 if times and time <= times[-1] else time)
    values.append(value)


def _write_score(person: Identity, rng: np.random.Generator, n_samples: int) -> _Score:
    """Phrases of syllables between silences; returns the filled score."""
    score = _Score(n_samples)
    tract = _REFERENCE_TRACT_CM / person.vocal_tract_cm  # shorter tract, higher formants
    # F1 also drops with age in both sexes (longitudinal studies of ageing voices), beyond the tract lengthening
    ageing = (person.age - AGE_RANGE[0]) / (AGE_RANGE[1] - AGE_RANGE[0])
    scale = tract * np.array([1.0 - 0.12 * ageing, 1.0, 1.0, 1.0])
    duration = n_samples / SAMPLE_RATE
    t = float(rng.uniform(0.25, 0.7))
    end = duration - float(rng.uniform(0.25, 0.7))
    rate = person.speaking_rate * float(rng.uniform(0.9, 1.1))
    _add_key(score.pitch, 0.0, 0.0)
    while t < end - 0.3:
        phrase_end = min(end, t + float(rng.uniform(0.8, 2.4)))
        phrase_start = t
        span = max(phrase_end - phrase_start, 1e-3)
        stressed = True
        while t < phrase_end - 0.12:
            length = min(float(rng.uniform(0.7, 1.3)) / rate, phrase_end - t)
            vowel = _VOWELS[rng.integers(len(_VOWELS))] * scale
            vowel_start = t
            if rng.random() < 0.8:
                vowel_start = _consonant(score, rng, _CONSONANTS[rng.integers(len(_CONSONANTS))], t, length, scale)
            vowel_end = t + length
            coda = _CODAS[rng.integers(len(_CODAS))] if rng.random() < 0.2 else None
            if coda is not None:
                vowel_end -= 0.25 * (vowel_end - vowel_start)
            # the vowel drifts a little towards another one (diphthong-like)
            drift = _VOWELS[rng.integers(len(_VOWELS))] * scale
            _add_key(score.formants, vowel_start + 0.25 * (vowel_end - vowel_start), vowel)
            _add_key(score.formants, vowel_start + 0.75 * (vowel_end - vowel_start), 0.8 * vowel + 0.2 * drift)
            score.ramp(score.voicing, vowel_start, vowel_end, 1.0 if stressed else 0.7, ramp_s=0.02)  # stress: louder
            # declination over the phrase, a pitch accent on stressed syllables
            mid = 0.5 * (vowel_start + vowel_end)
            decline = person.pitch_range * (0.5 - (mid - phrase_start) / span)
            accent = person.pitch_range * float(rng.uniform(0.3, 1.0)) if stressed else 0.0
            _add_key(score.pitch, mid, decline + accent)
            if coda is not None:
                _consonant(score, rng, coda, vowel_end, t + length - vowel_end, scale, coda=True)
            t += length
            stressed = rng.random() < 0.35
        t += float(rng.uniform(0.15, 0.55))
    _add_key(score.pitch, duration, -0.5 * person.pitch_range)
    return score


def _write_laughter(person: Identity, rng: np.random.Generator, n_samples: int) -> _Score:
    """Bouts of aspirated "ha" calls about five a second, each bout falling in pitch, a breath between bouts (the
    acoustics of laughter: Bachorowski, Smoski & Owren 2001, JASA 110(3))."""
    score, t = _Score(n_samples), 0.0
    vowel = _VOWELS[rng.choice([4, 5, 10])] * _REFERENCE_TRACT_CM / person.vocal_tract_cm  # æ, ɑ or ʌ
    _add_key(score.pitch, 0.0, 0.0)
    while t < n_samples / SAMPLE_RATE - 0.25:
        period = float(rng.uniform(0.17, 0.24))
        for call in range(int(rng.integers(3, 8))):
            score.ramp(score.aspiration, t, t + 0.35 * period, 0.8, ramp_s=0.01)
            score.ramp(score.voicing, t + 0.25 * period, t + 0.8 * period, 1.0 - 0.08 * call, ramp_s=0.015)
            _add_key(score.formants, t + 0.5 * period, vowel)
            _add_key(score.pitch, t + 0.5 * period, 4.0 - 1.5 * call + float(rng.normal(0.0, 1.0)))
            t += period
        t += float(rng.uniform(0.1, 0.35))  # a breath in
    return score


def _consonant(score: _Score, rng: np.random.Generator, c: _Consonant, start: float, syllable: float,
               scale: np.ndarray, coda: bool = False) -> float:
    """Write one consonant into the score; returns when the vowel after it starts."""
    length = syllable if coda else syllable * float(rng.uniform(0.3, 0.45))
    end = start + length
    centre, width = c.band_hz[0] * scale[1], c.band_hz[1] * scale[1]  # noise bands follow the tract length
    _add_key(score.formants, start + 0.5 * length, np.asarray(c.locus) * scale)
    if c.kind == "fricative":
        score.band(start, end, min(centre, 7200.0), width)
        score.ramp(score.frication, start, end, c.noise, ramp_s=0.02)
    elif c.kind == "aspirate":
        score.ramp(score.aspiration, start, end, c.noise, ramp_s=0.02)
    elif c.kind == "stop":
        burst = start + 0.7 * length
        score.band(burst, end, min(centre, 7200.0), width)
        score.ramp(score.frication, burst, min(burst + 0.02, end), c.noise, ramp_s=0.003)
        if c.voicing == 0.0:  # aspiration after an unvoiced release
            score.ramp(score.aspiration, burst + 0.01, end, 0.4, ramp_s=0.01)
    if c.voicing > 0:
        score.ramp(score.voicing, start, end if c.kind != "stop" else start + 0.7 * length, c.voicing)
    return end


def _glottal_source(person: Identity, score: _Score, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Glottal-flow derivative (unit RMS) and the flow itself (0..1) for the whole utterance."""
    n = score.n
    t = np.arange(n) / SAMPLE_RATE
    semitones = np.interp(t, *score.pitch)
    semitones += np.interp(t, np.linspace(0, t[-1], 8), rng.normal(0.0, 0.4, 8))
    # intonation moves around the speaker's habitual pitch: centre it on the voiced samples
    semitones -= np.average(semitones, weights=score.voicing + 1e-9)
    f0 = person.f0_hz * 2.0 ** (semitones / 12.0)
    if person.age > 55:  # a slow tremor in older voices
        depth = 0.03 * (person.age - 55.0) / 25.0
        f0 *= 1.0 + depth * np.sin(2 * np.pi * float(rng.uniform(4.5, 6.5)) * t + float(rng.uniform(0, 2 * np.pi)))
    # jitter and shimmer: one random perturbation per glottal period
    periods = np.floor(np.cumsum(f0) / SAMPLE_RATE).astype(np.int64)
    n_periods = int(periods[-1]) + 2
    f0 = f0 * (1.0 + person.jitter * rng.standard_normal(n_periods)[periods])
    phase = np.cumsum(f0) / SAMPLE_RATE
    cycle = np.floor(phase).astype(np.int64)
    p = phase - cycle
    # Rosenberg pulse; a breathy voice keeps the glottis open longer (softer pulse, steeper spectral tilt)
    open_quotient = 0.5 + 0.3 * person.breathiness
    rise, fall = 0.65 * open_quotient, 0.35 * open_quotient
    flow = np.where(p < rise, 0.5 * (1.0 - np.cos(np.pi * p / rise)),
                    np.where(p < rise + fall, np.cos(0.5 * np.pi * (p - rise) / fall), 0.0))
    flow *= np.maximum(1.0 + person.shimmer * rng.standard_normal(int(cycle[-1]) + 2)[cycle], 0.05)
    derivative = np.diff(flow, prepend=0.0)
    return derivative / (derivative.std() + 1e-12), flow


def _formant_envelope(score: _Score, n_frames: int) -> np.ndarray:
    """|H(f)| of five cascaded resonances per STFT frame (frames x bins), targets interpolated in time."""
    frame_t = np.arange(n_frames) * _HOP / SAMPLE_RATE  # _stft centres frame j on sample j * _HOP
    times, targets = np.asarray(score.formants[0]), np.asarray(score.formants[1])
    f2 = _FREQS_KHZ**2
    num = np.ones((n_frames, 1))
    den = np.ones((n_frames, f2.size))
    for k in range(5):
        fk = np.interp(frame_t, times, targets[:, k]) if k < 4 else np.full(n_frames, _F5_HZ)
        fk = (fk / 1000.0)[:, None]
        bk = _BANDWIDTHS_HZ[k] / 1000.0
        num *= fk**2
        den *= (fk**2 - f2) ** 2 + (bk**2) * f2
    return num / np.sqrt(den)


# scipy.signal's STFT pair, vectorised over frames (ShortTimeFFT loops over them in Python); not torch's: the writer's
# workers are forked, and a forked child that uses torch's thread pool can hang. stft divides the spectra by the
# window's sum and istft multiplies it back: the filter in between is linear, so the scale does not matter.
def _stft(x: np.ndarray, n_frames: int) -> np.ndarray:
    """(n_frames, bins) spectra of the frames centred on samples 0, _HOP, 2 _HOP, ... of `x` (zeros around it)."""
    padded = np.zeros((n_frames - 1) * _HOP)  # which scipy cuts into n_frames frames
    padded[: x.size] = x
    return stft(padded, window=_WINDOW, nperseg=_N_FFT, noverlap=_N_FFT - _HOP)[2].T


def _room(x: np.ndarray, channel: Channel, rng: np.random.Generator) -> np.ndarray:
    """A small room: the direct sound plus exponentially decaying diffuse reverberation."""
    if channel.room_rt60_s <= 0:
        return x
    length = int(channel.room_rt60_s * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    tail = rng.standard_normal(length) * np.exp(-6.9 * t / channel.room_rt60_s)
    tail[: int(0.004 * SAMPLE_RATE)] = 0.0
    ir = channel.room_wet * tail / np.sqrt(np.sum(tail**2))
    ir[0] = 1.0
    return oaconvolve(x, ir)[: x.size]


def coloured_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Background noise between white and brown, unit RMS."""
    size = next_fast_len(n, real=True)  # an FFT of a prime length would take 100x longer
    spectrum = np.fft.rfft(rng.standard_normal(size))
    f = np.maximum(np.fft.rfftfreq(size, 1.0 / SAMPLE_RATE), 20.0)
    noise = np.fft.irfft(spectrum * f ** (-0.5 * float(rng.uniform(0.0, 1.6))), n=size)[:n]
    return noise / (noise.std() + 1e-12)


def synthesize_utterance(person: Identity, channel: Channel, rng: np.random.Generator, duration_s: float,
                         laughing: bool = False, overlay: Callable[[np.ndarray, float], np.ndarray] | None = None
                         ) -> np.ndarray:
    """One utterance (or laugh) of `person` recorded through `channel`: int16 samples at 16 kHz, `duration_s` long.
    `overlay(speech, speech_rms)` may rewrite stretches of what reaches the microphone (see `distractors`)."""
    n = int(round(duration_s * SAMPLE_RATE))
    score = (_write_laughter if laughing else _write_score)(person, rng, n)
    derivative, flow = _glottal_source(person, score, rng)
    # breathy voices leak turbulent noise through the glottis, pulsed with the flow
    breath = score.voicing * (0.03 + 0.4 * person.breathiness) * (0.4 + 0.6 * flow)
    throat = derivative * score.voicing + rng.standard_normal(n) * (breath + score.aspiration)
    n_frames = (n + _HOP) // _HOP + 1
    formants = _formant_envelope(score, n_frames)
    f_hz = _FREQS_KHZ[None, :] * 1000.0
    band = np.exp(-0.5 * ((f_hz - score.band_centre[:n_frames, None]) / score.band_width[:n_frames, None]) ** 2)
    spec = _stft(throat, n_frames) * formants + _stft(rng.standard_normal(n) * score.frication, n_frames) * band
    # back to samples by overlap-add (the squared windows add up to one)
    filtered = istft((spec * channel.response()).T, window=_WINDOW, nperseg=_N_FFT, noverlap=_N_FFT - _HOP)[1][:n]
    speech = _room(filtered, channel, rng)
    # background noise at a random SNR relative to the active speech, then a random recording level
    active = (score.voicing + score.frication) > 0.05
    speech_rms = float(np.sqrt(np.mean(speech[active] ** 2))) if active.any() else 1.0
    speech = speech if overlay is None else overlay(speech, speech_rms)  # the background noise goes on
    snr_db = float(rng.uniform(15.0, 40.0))
    signal = speech + coloured_noise(rng, n) * speech_rms * 10.0 ** (-snr_db / 20.0)
    level = 32768.0 * 10.0 ** (float(rng.uniform(-30.0, -18.0)) / 20.0)
    signal *= level / speech_rms
    peak = np.abs(signal).max()
    if peak > 32000.0:
        signal *= 32000.0 / peak
    return np.round(signal).astype(np.int16)
