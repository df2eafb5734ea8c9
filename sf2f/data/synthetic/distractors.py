"""Distractors (issue 24): stretches where the speaker is hard to hear, as in real recordings, so that the attention
fuser (reference §2.2) has segments to weight down. Some utterances get one or two stretches of whole 1.25 s segments
(recipe §1.6) inside the speech, each of one kind; a second voice shows only against the speaker's other segments, so
it is rarer. Plans come from the utterance's length alone (the writer lists them without synthesising) and from their
own random stream, as do their sounds: utterances without distractors keep their bytes. Off by default
(`synthetic.distractors: 0`, the data the shipped weights were trained on); notebook 04 measures the fuser with them."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy.signal import butter, sosfilt

from sf2f.data.synthetic.traits import Identity, draw_identities
from sf2f.data.synthetic.voices import SAMPLE_RATE, Channel, coloured_noise, synthesize_utterance

__all__ = ["KINDS", "LENGTH_S", "MEASURED_SHARE", "Distractor", "distract", "plan_distractors"]

# measured (issue 24): with a share of 0.8 about half of the segments touch a stretch, every speaker keeps clean ones
MEASURED_SHARE = 0.8
LENGTH_S = (1.3, 4.0)
_SECOND_P = 0.3  # the chance of a second stretch, where it fits
_MARGIN_S = 0.7  # the score speaks from at most 0.7 s after the start to at least 0.7 s before the end
_TELEPHONE = butter(4, (300.0, 3400.0), "bandpass", fs=SAMPLE_RATE, output="sos")
Sound = Callable[[np.ndarray, float, Identity, Channel, np.random.Generator], np.ndarray]


class Distractor(NamedTuple):
    """One stretch of an utterance, in seconds from its start."""

    kind: str
    start_s: float
    end_s: float


def _music(stretch: np.ndarray, rms: float, person: Identity, channel: Channel, rng: np.random.Generator) -> np.ndarray:
    """A few sustained chords (root, third, fifth; five harmonics each) at about speech level."""
    t, out = np.arange(stretch.size) / SAMPLE_RATE, np.zeros(stretch.size)
    edges = np.linspace(0, stretch.size, int(rng.integers(2, 6)) + 1).astype(int)
    for a, b in itertools.pairwise(edges):
        chord = 220.0 * 2.0 ** ((rng.integers(-12, 10) + np.array([0.0, rng.choice([3.0, 4.0]), 7.0])) / 12.0)
        out[a:b] = sum(np.sin(2 * np.pi * h * f * t[a:b]) / h for f in chord for h in range(1, 6))
        out[a:b] *= np.clip(np.minimum(t[a:b] - t[a], t[b - 1] - t[a:b]) / 0.03, 0.0, 1.0)  # 30 ms attack, release
    return out * rms * float(rng.uniform(0.7, 1.4)) / (out.std() + 1e-12)


def _voice(person: Identity, channel: Channel, rng: np.random.Generator, n: int, rms: float, laughing: bool = False
           ) -> np.ndarray:
    """`person` through the speaker's microphone and room at about the speaker's level; speech from the middle of a
    longer utterance (whose score starts and ends with pauses)."""
    pad = 0 if laughing else int(_MARGIN_S * SAMPLE_RATE)
    voice = synthesize_utterance(person, channel, rng, (n + 2 * pad) / SAMPLE_RATE, laughing)[pad : pad + n]
    return voice * rms / (voice.std() + 1e-12)


def _laughter(stretch: np.ndarray, rms: float, person: Identity, channel: Channel, rng: np.random.Generator
              ) -> np.ndarray:
    """The speaker laughing: pitched far above their speech and breathy (Bachorowski et al. 2001)."""
    laughing = dataclasses.replace(person, f0_hz=person.f0_hz * rng.uniform(1.4, 2.0), breathiness=rng.uniform(0.6, 1))
    return _voice(laughing, channel, rng, stretch.size, rms, laughing=True)


def _telephone(stretch: np.ndarray, rms: float, person: Identity, channel: Channel, rng: np.random.Generator
               ) -> np.ndarray:
    """The speaker through a telephone line: ITU-T G.712's 300-3400 Hz band, saturating a little at its peaks."""
    narrow = sosfilt(_TELEPHONE, stretch)
    clipped = np.tanh(rng.uniform(1.5, 4.0) * narrow / (np.abs(narrow).max() + 1e-12))
    return clipped * stretch.std() / (clipped.std() + 1e-12)  # as loud as the speech it carries


# what the microphone hears in a stretch of each kind instead of the speech, and how often each kind is drawn
KINDS: dict[str, tuple[float, Sound]] = {
    "noise": (0.22, lambda x, rms, p, c, rng: x + coloured_noise(rng, x.size) * rms * 10 ** rng.uniform(-0.25, 0.25)),
    "music": (0.22, _music),
    "laughter": (0.22, _laughter),
    "telephone": (0.22, _telephone),
    # someone else speaking instead: drawn from a seed far beyond any dataset's, so no identity of the dataset
    "second voice": (0.12, lambda x, rms, p, c, rng: _voice(
        draw_identities(1, int(rng.integers(2**40, 2**62)))[0], c, rng, x.size, rms)),
}


def plan_distractors(rng: np.random.Generator, duration_s: float, share: float) -> list[Distractor]:
    """None (with probability 1 - `share`) or one or two stretches inside the speech of an utterance this long."""
    if rng.random() >= share:
        return []
    lengths = rng.uniform(*LENGTH_S, size=1 + int(rng.random() < _SECOND_P))
    room = duration_s - 2 * _MARGIN_S
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), room, side="right")]
    starts = _MARGIN_S + np.sort(rng.uniform(0.0, room - lengths.sum(), lengths.size)) + np.cumsum(lengths) - lengths
    kinds = rng.choice(list(KINDS), size=lengths.size, p=[p for p, _ in KINDS.values()])
    return [Distractor(str(k), round(float(s), 3), round(float(s + n), 3)) for k, s, n in zip(kinds, starts, lengths)]


def distract(plan: list[Distractor], person: Identity, channel: Channel, rng: np.random.Generator
             ) -> Callable[[np.ndarray, float], np.ndarray]:
    """The `overlay` of `voices.synthesize_utterance` that puts `plan`'s sounds (drawn from `rng`) into the speech,
    cross-faded over 20 ms."""
    def overlay(speech: np.ndarray, rms: float) -> np.ndarray:
        for d in plan:
            a, b = int(d.start_s * SAMPLE_RATE), int(d.end_s * SAMPLE_RATE)
            inside = np.arange(b - a)
            fade = np.clip(np.minimum(inside + 1, b - a - inside) / (0.02 * SAMPLE_RATE), 0.0, 1.0)
            speech[a:b] += fade * (KINDS[d.kind][1](speech[a:b], rms, person, channel, rng) - speech[a:b])
        return speech
    return overlay
