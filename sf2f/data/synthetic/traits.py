"""Who the synthetic people are: hidden traits, names, speaker ids and the split (notebook 01). Traits are **shared**
by voice and face (sex, age, size), **face-only** or **voice-only**; identity i draws from streams seeded by
(seed, i), so it is the same person whatever the dataset size or the number of workers."""

from __future__ import annotations

import dataclasses
import unicodedata
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sf2f.data.layouts import split_of_row

__all__ = ["FACE_ONLY_TRAITS", "SHARED_TRAITS", "VOICE_ONLY_TRAITS", "Identity", "draw_identities", "traits_table"]

HAIR_COLOURS: tuple[str, ...] = ("black", "brown", "blonde", "red", "auburn")
HAIR_COLOUR_P = (0.3, 0.3, 0.2, 0.1, 0.1)
HAIR_STYLES: tuple[str, ...] = ("short", "long", "bob", "curly", "bald")
HAIR_STYLE_P = (0.3, 0.2, 0.2, 0.18, 0.12)
EYE_COLOURS: tuple[str, ...] = ("brown", "blue", "green", "grey")
EYE_COLOUR_P = (0.45, 0.25, 0.15, 0.15)
BACKGROUNDS: tuple[str, ...] = ("studio", "office", "outdoor", "stage")

SHARED_TRAITS: tuple[str, ...] = ("sex", "age", "size")
FACE_ONLY_TRAITS: tuple[str, ...] = ("hair_colour", "hair_style", "skin_tone", "eye_colour", "glasses", "background")
VOICE_ONLY_TRAITS: tuple[str, ...] = ("speaking_rate", "breathiness", "pitch_range")

AGE_RANGE = (18.0, 80.0)

# Random streams of one identity: every stream is seeded by (seed, index, stream[, item]) so that nothing depends on
# the order in which identities, utterances or faces are generated.
STREAM_TRAITS, STREAM_FACES, STREAM_VOICES, STREAM_CHANNELS, STREAM_LAYOUT, STREAM_DISTRACTORS = range(6)

_FIRST_ONSETS = ("", "b", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "st", "ch")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "io", "y")
_CODAS = ("", "", "n", "r", "l", "s", "m", "th", "x", "d")
_LAST_ENDINGS = ("son", "ez", "ini", "ova", "sen", "ton", "ard", "ski", "ler", "ian", "berg", "ley")
# a few names carry non-ASCII letters, as the real meta files do (`Aco_Petrović`); the set stays Latin-script
_NON_ASCII_ENDINGS = ("ić", "ová", "ström", "ñez", "ønsen", "é", "ü", "çek")
_NATIONALITIES = ("USA", "UK", "Ireland", "India", "Canada", "Australia", "Germany", "France", "Spain", "Italy",
                  "Brazil", "Mexico", "Norway", "Croatia", "Nigeria", "Japan")


def identity_rng(seed: int, index: int, stream: int, *item: int) -> np.random.Generator:
    """The random stream `stream` (traits, faces, voices, ...) of identity `index`, optionally of one item in it."""
    return np.random.default_rng([seed, index, stream, *item])


@dataclass(frozen=True)
class Identity:
    """One synthetic person: where they sit in the layout, and their hidden traits."""

    index: int
    sub: str  # vox1 or vox2
    row: int  # row in the sub-dataset's meta file; decides the split (recipe §1.3)
    speaker_id: str  # the VoxCeleb speaker folder: id1NNNN (vox1), id0NNNN (vox2)
    name: str  # face folder and meta name (VGGFace1 ID / Name)
    set: str  # VoxCeleb's official dev/test set: which raw_wav/<sub>/<set>/ folder holds the speech
    split: str  # train / val / test of split.json
    nationality: str
    # shared by voice and face
    sex: str  # "m" or "f"
    age: float  # years
    size: float  # body and head size, standard score within the population (independent of sex)
    # face only
    hair_colour: str
    hair_style: str
    skin_tone: float  # 0 = light, 1 = dark
    eye_colour: str
    glasses: bool
    background: str  # scene behind the person in origin_faces
    # voice only
    speaking_rate: float  # syllables per second
    breathiness: float  # 0 = modal voice, 1 = breathy
    pitch_range: float  # intonation range in semitones
    # the voice physiology, derived from the shared traits plus individual variation
    f0_hz: float
    vocal_tract_cm: float
    jitter: float  # cycle-to-cycle period perturbation (fraction)
    shimmer: float  # cycle-to-cycle amplitude perturbation (fraction)


def _invented_name(rng: np.random.Generator) -> str:
    def word(syllables: int) -> str:
        parts = [rng.choice(_FIRST_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)]
        return "".join(parts) + rng.choice(_CODAS)

    first = word(int(rng.integers(1, 3)))
    if rng.random() < 0.05:  # vox1 has names such as A.J._Buckley
        first = f"{first[0]}.{rng.choice(list('ABCDEJKMRT'))}."
    ending = rng.choice(_NON_ASCII_ENDINGS) if rng.random() < 0.08 else rng.choice(_LAST_ENDINGS)
    last = word(int(rng.integers(1, 3))) + ending
    return unicodedata.normalize("NFC", f"{first.capitalize()}_{last.capitalize()}")


def _voice_physiology(rng: np.random.Generator, sex: str, age: float, size: float) -> dict[str, float]:
    """Rough adult norms: f0 about 110 Hz (young men) and 220 Hz (young women), converging with age; vocal tracts of
    about 17 and 14.5 cm, longer in larger bodies and with age (larynx descent); jitter and shimmer grow with age."""
    ageing = (age - AGE_RANGE[0]) / (AGE_RANGE[1] - AGE_RANGE[0])  # 0 .. 1
    f0, vtl = (110.0 + 35.0 * ageing, 17.0) if sex == "m" else (222.0 - 45.0 * ageing, 14.5)
    f0 *= (1.0 - 0.03 * size) * float(np.exp(rng.normal(0.0, 0.05)))
    vtl = (vtl * (1.0 + 0.07 * size) + 0.6 * ageing) * float(np.exp(rng.normal(0.0, 0.015)))
    return {"f0_hz": round(f0, 2), "vocal_tract_cm": round(vtl, 3),
            "jitter": round((0.004 + 0.02 * ageing) * float(np.exp(rng.normal(0.0, 0.2))), 5),
            "shimmer": round((0.02 + 0.14 * ageing) * float(np.exp(rng.normal(0.0, 0.2))), 5)}


def _draw_identity(seed: int, index: int, n: int) -> Identity:
    rng = identity_rng(seed, index, STREAM_TRAITS)
    n_vox1 = (n + 1) // 2  # the first half of the identities goes to vox1, the rest to vox2, in meta-row order
    sub, row = ("vox1", index) if index < n_vox1 else ("vox2", index - n_vox1)
    # vox1 speaker ids are id1NNNN, vox2 ones id0NNNN (VoxCeleb2's run from id00012 to id09272)
    speaker_id = f"id1{row + 1:04d}" if sub == "vox1" else f"id{12 + row:05d}"
    sex = "m" if rng.random() < 0.5 else "f"
    age = float(rng.uniform(*AGE_RANGE))
    size = float(np.clip(rng.normal(), -2.5, 2.5))
    # keyword arguments are evaluated in order: the random draws keep the order of the fields
    return Identity(
        index=index, sub=sub, row=row, speaker_id=speaker_id, name=_invented_name(rng),
        set="test" if row % 10 == 7 else "dev", split=split_of_row(row), nationality=str(rng.choice(_NATIONALITIES)),
        sex=sex, age=round(age, 2), size=round(size, 4), hair_colour=str(rng.choice(HAIR_COLOURS, p=HAIR_COLOUR_P)),
        hair_style=str(rng.choice(HAIR_STYLES, p=HAIR_STYLE_P)),
        skin_tone=round(float(rng.uniform()), 4), eye_colour=str(rng.choice(EYE_COLOURS, p=EYE_COLOUR_P)),
        glasses=bool(rng.random() < 0.3), background=str(rng.choice(BACKGROUNDS)),
        speaking_rate=round(float(rng.uniform(3.2, 6.0)), 3), breathiness=round(float(rng.uniform()), 4),
        pitch_range=round(float(rng.uniform(1.5, 6.0)), 3), **_voice_physiology(rng, sex, age, size),
    )


def draw_identities(n: int, seed: int) -> list[Identity]:
    """`n` identities for `seed`; identity i's traits do not depend on `n` (its layout position does)."""
    people = [_draw_identity(seed, i, n) for i in range(n)]
    # names must be unique (face folders are named by them), also on case-insensitive file systems
    seen: set[str] = set()
    for i, person in enumerate(people):
        name, k = person.name, 1
        while name.casefold() in seen:
            k += 1
            name = f"{person.name}_{k}"
        seen.add(name.casefold())
        if name != person.name:
            people[i] = dataclasses.replace(person, name=name)
    return people


def traits_table(people: list[Identity]) -> pd.DataFrame:
    """One row per identity, every field of :class:`Identity` as a column (written as `traits.csv`)."""
    return pd.DataFrame([dataclasses.asdict(p) for p in people])
