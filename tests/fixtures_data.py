"""Tiny datasets in the real layout (data/README.md), written with soundfile and PIL for the data-pipeline tests.

The speech is cut from the two CMU ARCTIC recordings in tests/data (real speech, so webrtcvad finds it), padded with
silence and scaled per utterance. Faces are drawn ellipses on coloured backgrounds: preparation of HQ-VoxCeleb-style
faces does not detect faces, so any image does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw

from sf2f.config import ExperimentConfig, load_config
from sf2f.data.prepare import PrepareSettings, prepare
from sf2f.data.prepared import PreparedData
from sf2f.data.synthetic import ensure_synthetic_dataset

DATA_DIR = Path(__file__).parent / "data"
SPEECH_FILES = (DATA_DIR / "arctic_a0007.wav", DATA_DIR / "arctic_a0009.wav")
VOX1_COLUMNS = ["VoxCeleb1 ID", "VGGFace1 ID", "Gender", "Nationality", "Set"]
VOX2_COLUMNS = ["Class_ID", "Name", "Sample_Num", "Flag", "Gender_x", "VoxCeleb2ID", "VGGFace2ID", "Gender_y", "Set"]


def real_speech(index: int = 0) -> np.ndarray:
    """One of the two real recordings: int16, 16 kHz, mono."""
    samples, rate = sf.read(SPEECH_FILES[index], dtype="int16")
    assert rate == 16000
    return samples


def speech_clip(rng: np.random.Generator, seconds: float = 1.5, pad: float = 0.4) -> np.ndarray:
    """A slice of real speech with silence around it and a random gain, int16."""
    source = real_speech(int(rng.integers(2)))
    n = int(seconds * 16000)
    start = int(rng.integers(0, len(source) - n))
    gain = rng.uniform(0.5, 1.0)
    silence = np.zeros(int(pad * 16000))
    return np.concatenate([silence, source[start : start + n] * gain, silence]).astype(np.int16)


def face_image(rng: np.random.Generator, size: tuple[int, int] = (90, 90)) -> Image.Image:
    background = tuple(int(v) for v in rng.integers(0, 255, 3))
    skin = tuple(int(v) for v in rng.integers(120, 255, 3))
    img = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(img)
    w, h = size
    draw.ellipse((w * 0.2, h * 0.1, w * 0.8, h * 0.9), fill=skin)
    draw.ellipse((w * 0.33, h * 0.38, w * 0.43, h * 0.46), fill=(20, 20, 20))
    draw.ellipse((w * 0.57, h * 0.38, w * 0.67, h * 0.46), fill=(20, 20, 20))
    return img


@dataclass
class Person:
    sub: str
    speaker_id: str
    name: str
    utterances: int = 3
    faces: int = 2
    in_meta: bool = True
    seconds: tuple[float, float] = (1.2, 2.2)  # speech per utterance, before 0.4 s of silence on each side


@dataclass
class TinyDataset:
    root: Path
    people: list[Person]
    # relative path -> a word the report's reason must contain
    bad_audio: dict[str, str] = field(default_factory=dict)
    bad_images: dict[str, str] = field(default_factory=dict)
    converted: dict[str, str] = field(default_factory=dict)

    def usable(self) -> list[Person]:
        return [p for p in self.people if p.in_meta and p.utterances and p.faces]


def _meta_rows(people: list[Person], sub: str, rows: int) -> list[list[str]]:
    """`rows` meta rows; person k of this sub-dataset sits at row positions (0, 1, 2, 8, 9, 3, 4, ...), so that the
    original split rule (row % 10: 8 test, 9 val) gives every split someone."""
    order = [0, 1, 2, 8, 9, 3, 4, 5, 6, 7] + list(range(10, rows))
    table = [[f"{sub}_filler{i:02d}", f"Filler_{i:02d}"] for i in range(rows)]
    listed = [p for p in people if p.sub == sub and p.in_meta]
    for slot, person in zip(order, listed):
        table[slot] = [person.speaker_id, person.name]
    return table


def write_meta(root: Path, people: list[Person], rows: int = 12, drop_column: str | None = None) -> None:
    for sub, columns, sep, fname in (
        ("vox1", VOX1_COLUMNS, "\t", "vox1_meta.csv"),
        ("vox2", VOX2_COLUMNS, ",", "full_vox2_meta.csv"),
    ):
        lines = [sep.join(c for c in columns if c != drop_column)]
        for i, (speaker, name) in enumerate(_meta_rows(people, sub, rows)):
            if sub == "vox1":
                values = dict(zip(VOX1_COLUMNS, [speaker, name, "m" if i % 2 else "f", "Nowhere", "dev"]))
            else:
                values = dict(zip(VOX2_COLUMNS, [str(i), name, "10", "1", "m", speaker, f"n{i:06d}", "m", "dev"]))
            lines.append(sep.join(values[c] for c in columns if c != drop_column))
        (root / sub).mkdir(parents=True, exist_ok=True)
        (root / sub / fname).write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_person(root: Path, person: Person, rng: np.random.Generator, face_type: str = "masked") -> None:
    for u in range(person.utterances):
        path = root / "raw_wav" / person.sub / "dev" / person.speaker_id / f"clip{u % 2}" / f"{u + 1:05d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, speech_clip(rng, seconds=float(rng.uniform(*person.seconds))), 16000, subtype="PCM_16")
    folder = root / person.sub / f"{face_type}_faces" / person.name
    for f in range(person.faces):
        folder.mkdir(parents=True, exist_ok=True)
        face_image(rng).save(folder / f"{f:04d}.jpg", quality=95)


def default_people(n_per_sub: int = 3) -> list[Person]:
    people = []
    for k in range(n_per_sub):
        people.append(Person("vox1", f"id1{k:04d}", ["A.J._Buckley", "Zoë_Ünal", "Björk"][k % 3] + ("" if k < 3 else f"_{k}")))
        people.append(Person("vox2", f"id0{k:04d}", ["Aco_Petrović", "Aaron_Ashmore", "李_小龙"][k % 3] + ("" if k < 3 else f"_{k}")))
    return people


def build_dataset(root: Path, n_per_sub: int = 3, seed: int = 0, bad: bool = False) -> TinyDataset:
    """A tiny dataset in the real layout; with `bad`, every kind of bad input the pipeline must report."""
    rng = np.random.default_rng(seed)
    people = default_people(n_per_sub)
    if bad:
        people += [
            Person("vox1", "id19001", "Faces_Only", utterances=0, faces=2),
            Person("vox1", "id19002", "Speech_Only", utterances=2, faces=0),
            Person("vox2", "id09003", "Not_In_Meta", utterances=1, faces=1, in_meta=False),
        ]
    write_meta(root, people)
    for person in people:
        write_person(root, person, rng)
    data = TinyDataset(root, people)
    if bad:
        _add_bad_inputs(data, rng)
    return data


def _add_bad_inputs(data: TinyDataset, rng: np.random.Generator) -> None:
    """Bad files in the folders of the first two vox1 people (who keep enough good files to stay usable)."""
    root = data.root
    a, b = data.people[0], data.people[2]
    clip = root / "raw_wav" / "vox1" / "dev" / a.speaker_id / "clipbad"
    clip.mkdir(parents=True)
    speech = speech_clip(rng, 1.5).astype(np.float64) / 32768.0

    (clip / "00001.wav").write_bytes(b"")
    data.bad_audio[_rel(root, clip / "00001.wav")] = "empty"
    (clip / "00002.wav").write_text("this is a text file, not audio\n" * 20)
    data.bad_audio[_rel(root, clip / "00002.wav")] = "not a readable audio file"
    sf.write(clip / "00003.wav", np.zeros(16000 * 2, np.int16), 16000, subtype="PCM_16")
    data.bad_audio[_rel(root, clip / "00003.wav")] = "silent"
    sf.write(clip / "00004.wav", speech[:200], 16000, subtype="PCM_16")
    data.bad_audio[_rel(root, clip / "00004.wav")] = "too short"
    full = clip / "00005.wav"
    sf.write(full, speech, 16000, subtype="PCM_16")
    raw = full.read_bytes()
    full.write_bytes(raw[: len(raw) * 2 // 3])
    data.converted[_rel(root, full)] = "truncated"
    for k, subtype in enumerate(("PCM_U8", "PCM_24", "FLOAT"), start=6):
        sf.write(clip / f"{k:05d}.wav", speech, 16000, subtype=subtype)
        data.converted[_rel(root, clip / f"{k:05d}.wav")] = subtype
    # an unusual rate and two channels, in another speaker's folder
    other = root / "raw_wav" / "vox1" / "dev" / b.speaker_id / "clipodd"
    other.mkdir(parents=True)
    import torch
    from torchaudio.functional import resample

    at_22k = resample(torch.from_numpy(speech), 16000, 22050).numpy()
    sf.write(other / "00001.wav", np.stack([at_22k, 0.5 * at_22k], axis=1), 22050, subtype="PCM_16")
    data.converted[_rel(root, other / "00001.wav")] = "resampled from 22050"

    faces = root / "vox1" / "masked_faces" / a.name
    (faces / "notes.png").write_text("a text file with an image suffix\n")
    data.bad_images[_rel(root, faces / "notes.png")] = "not an image"
    jpeg = faces / "cut.jpg"
    face_image(rng).save(jpeg, quality=95)
    jpeg.write_bytes(jpeg.read_bytes()[:400])
    data.bad_images[_rel(root, jpeg)] = "unreadable image"
    (faces / "empty.png").write_bytes(b"")
    data.bad_images[_rel(root, faces / "empty.png")] = "empty"
    face = face_image(rng)
    face.convert("L").save(faces / "grey.png")
    data.converted[_rel(root, faces / "grey.png")] = "L image"
    face.convert("CMYK").save(faces / "cmyk.jpg")
    data.converted[_rel(root, faces / "cmyk.jpg")] = "CMYK"
    rgba = face.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(faces / "alpha.png")
    data.converted[_rel(root, faces / "alpha.png")] = "transparency"


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def prepared_synthetic(
    root: Path, config: str, overrides: Sequence[str], out: Path | None = None
) -> tuple[ExperimentConfig, PreparedData]:
    """A `quick` config with `overrides` and its synthetic data, generated in `root` and prepared into `out` (default
    `root/prepared`): both inside a temporary folder, where the repository's default cache would not be."""
    cfg = load_config(config, profile="quick", overrides=[f"data.root={root}", *overrides])
    ensure_synthetic_dataset(root, cfg.data.synthetic, progress=False, log=None)
    out = out or root / "prepared"
    prepare(root, out, PrepareSettings.from_data_config(cfg.data), progress=False)
    return cfg, PreparedData(out)
