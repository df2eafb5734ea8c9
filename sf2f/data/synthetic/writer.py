"""Writes the synthetic dataset in the real data's layout (data/README.md, recipe §1.2), plus `traits.csv`,
`distractors.csv` (if asked for) and `synthetic.json` (the parameters; `"complete": false` until the rest is written).
Files are written whole from streams seeded by (seed, index): any number of workers gives the same bytes, and a rerun
finishes a killed run."""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import os
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from sf2f.config import SyntheticConfig
from sf2f.config.schema import ValueProblem
from sf2f.data import run_jobs
from sf2f.data.layouts import META, SPLITS
from sf2f.data.synthetic.distractors import Distractor, distract, plan_distractors
from sf2f.data.synthetic.faces import face_shape, render_face
from sf2f.data.synthetic.traits import (
    STREAM_CHANNELS,
    STREAM_DISTRACTORS,
    STREAM_FACES,
    STREAM_LAYOUT,
    STREAM_VOICES,
    Identity,
    draw_identities,
    identity_rng,
    traits_table,
)
from sf2f.data.synthetic.voices import DURATION_RANGE, SAMPLE_RATE, draw_channel, synthesize_utterance
from sf2f.errors import SF2FError, UsageError
from sf2f.paths import remove_partial_files, write_atomic

__all__ = ["ensure_synthetic_dataset", "face_dir", "generate_dataset", "read_traits", "speaker_dir"]

#: Bump when the generator's output changes: an old dataset then fails the parameter check instead of mixing in.
GENERATOR_VERSION = 1
MARKER = "synthetic.json"
_CLIP_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"))
_JPEG_QUALITY = 92


class SyntheticDatasetError(SF2FError, RuntimeError):
    """The target folder cannot hold this synthetic dataset (other parameters, or not a synthetic dataset)."""


@dataclass(frozen=True)
class GenerationReport:
    root: Path
    params: SyntheticConfig
    status: str  # generated | finished (a half-written dataset completed) | reused
    identities_written: int
    seconds: float

    def describe(self) -> str:
        p = self.params
        what = f"{p.identities} identities x ({p.utterances} utterances, {p.faces} faces), seed {p.seed}"
        what += f", distractors in {p.distractors:.0%} of utterances" if p.distractors else ""
        if self.status == "reused":
            return f"reused the complete synthetic dataset in {self.root}: {what}"
        return f"{self.status} {self.root}: {what}; wrote {self.identities_written} identities in {self.seconds:.1f} s"


def _field(person: Identity | pd.Series, key: str) -> str:
    # a traits-table row is a Series, whose attribute `sub` would be Series.sub (subtraction): index it instead
    return str(person[key] if isinstance(person, pd.Series) else getattr(person, key))


def speaker_dir(root: Path, person: Identity | pd.Series) -> Path:
    """raw_wav/<sub>/<dev|test>/<speaker id>: the VoxCeleb speaker folder of an identity or a traits-table row."""
    return Path(root) / "raw_wav" / _field(person, "sub") / _field(person, "set") / _field(person, "speaker_id")


def face_dir(root: Path, person: Identity | pd.Series, kind: str = "masked") -> Path:
    """<sub>/<masked|origin>_faces/<name>: the HQ-VoxCeleb face folder."""
    if kind not in ("masked", "origin"):
        raise ValueError(f"face kind must be 'masked' or 'origin', got '{kind}'")
    return Path(root) / _field(person, "sub") / f"{kind}_faces" / _field(person, "name")


def _utterances(root: Path, person: Identity, params: SyntheticConfig) -> list[tuple[str, Path]]:
    """(clip id, wav path) of each utterance: a few YouTube-like clips, numbered from 00001 in each."""
    rng = identity_rng(params.seed, person.index, STREAM_LAYOUT)
    n_clips = min(params.utterances, 1 + params.utterances // 3)
    ids = ["".join(rng.choice(_CLIP_ALPHABET, 11)) for _ in range(n_clips)]
    owner = np.sort(np.concatenate([np.arange(n_clips), rng.integers(0, n_clips, params.utterances - n_clips)]))
    out, count = [], [0] * n_clips
    for clip in owner:
        count[clip] += 1
        out.append((ids[clip], speaker_dir(root, person) / ids[clip] / f"{count[clip]:05d}.wav"))
    return out


def _face_paths(root: Path, person: Identity, faces: int) -> list[tuple[Path, Path]]:
    masked, origin = face_dir(root, person, "masked"), face_dir(root, person, "origin")
    return [(masked / f"{k}.jpg", origin / f"{k}.jpg") for k in range(faces)]


def _identity_files(root: Path, person: Identity, params: SyntheticConfig) -> list[Path]:
    faces = [p for pair in _face_paths(root, person, params.faces) for p in pair]
    return [*(path for _, path in _utterances(root, person, params)), *faces]


def _wav_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def _jpeg_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=_JPEG_QUALITY)
    return buffer.getvalue()


def _utterance_draws(params: SyntheticConfig, person: Identity, u: int
                     ) -> tuple[np.random.Generator, float, list[Distractor], np.random.Generator]:
    """Utterance `u`'s speech stream, its length, and its distractors with the stream their sounds come from."""
    rng = identity_rng(params.seed, person.index, STREAM_VOICES, u)
    distractor_rng = identity_rng(params.seed, person.index, STREAM_DISTRACTORS, u)
    duration = float(rng.uniform(*DURATION_RANGE))
    return rng, duration, plan_distractors(distractor_rng, duration, params.distractors), distractor_rng


def _write_identity(root: Path, person: Identity, params: SyntheticConfig) -> None:
    seed = params.seed
    utterances = _utterances(root, person, params)
    channels = {clip: draw_channel(identity_rng(seed, person.index, STREAM_CHANNELS, i))
                for i, clip in enumerate(dict.fromkeys(clip for clip, _ in utterances))}
    for u, (clip, path) in enumerate(utterances):
        rng, duration, plan, distractor_rng = _utterance_draws(params, person, u)
        overlay = distract(plan, person, channels[clip], distractor_rng)
        write_atomic(path, _wav_bytes(synthesize_utterance(person, channels[clip], rng, duration, overlay=overlay)))
    shape = face_shape(person, identity_rng(seed, person.index, STREAM_FACES))
    for k, (masked_path, origin_path) in enumerate(_face_paths(root, person, params.faces)):
        masked, origin = render_face(person, shape, identity_rng(seed, person.index, STREAM_FACES, k))
        write_atomic(masked_path, _jpeg_bytes(masked))
        write_atomic(origin_path, _jpeg_bytes(origin))


def _write_distractor_table(root: Path, people: list[Identity], params: SyntheticConfig) -> None:
    """distractors.csv: every stretch, its file and kind (plans redrawn, no sound: a resume lists the earlier run's)."""
    stretches = [(path.relative_to(root).as_posix(), d.kind, d.start_s, d.end_s) for p in people
                 for u, (_, path) in enumerate(_utterances(root, p, params))
                 for d in _utterance_draws(params, p, u)[2]]
    table = pd.DataFrame(stretches, columns=["file", "kind", "start_s", "end_s"])
    write_atomic(root / "distractors.csv", table.to_csv(index=False, lineterminator="\n"))


def _write_tables(root: Path, people: list[Identity], params: SyntheticConfig) -> None:
    """traits.csv, distractors.csv (if any), the two meta files in their real formats, and split.json (recipe §1.3)."""
    write_atomic(root / "traits.csv", traits_table(people).to_csv(index=False, lineterminator="\n"))
    if params.distractors:
        _write_distractor_table(root, people, params)
    by_sub = {sub: [p for p in people if p.sub == sub] for sub in META}
    rows = {
        "vox1": [("VoxCeleb1 ID", "VGGFace1 ID", "Gender", "Nationality", "Set")]
        + [(p.speaker_id, p.name, p.sex, p.nationality, p.set) for p in by_sub["vox1"]],
        "vox2": [("Class_ID", "Name", "Sample_Num", "Flag", "Gender_x", "VoxCeleb2ID", "VGGFace2ID", "Gender_y", "Set")]
        + [(f"n{p.speaker_id[2:]:0>6}", p.name, params.faces, 1, p.sex, p.speaker_id, f"n{p.speaker_id[2:]:0>6}",
            p.sex, p.set) for p in by_sub["vox2"]],
    }
    for sub in META:
        text = io.StringIO()
        csv.writer(text, delimiter=META[sub].sep, lineterminator="\n").writerows(rows[sub])
        write_atomic(root / sub / META[sub].file, text.getvalue())
    split = {sub: {part: [p.name for p in by_sub[sub] if p.split == part] for part in SPLITS} for sub in META}
    write_atomic(root / "split.json", json.dumps(split, ensure_ascii=False, indent=1) + "\n")


def _write_marker(root: Path, params: SyntheticConfig, complete: bool, people: list[Identity]) -> None:
    record = {"generator": "sf2f.data.synthetic", "version": GENERATOR_VERSION, "params": dataclasses.asdict(params),
              "complete": complete}
    if complete:
        per_sub = {sub: sum(p.sub == sub for p in people) for sub in META}
        record["counts"] = {"identities": len(people), "utterances": len(people) * params.utterances,
                            "faces": len(people) * params.faces, **per_sub}
    write_atomic(root / MARKER, json.dumps(record, indent=1) + "\n")


def _read_marker(root: Path) -> dict | None:
    path = root / MARKER
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        found = record["params"]
        record["params"] = {k: int(found[k]) for k in ("identities", "utterances", "faces", "seed")}
        record["params"]["distractors"] = float(found.get("distractors", 0.0))  # (datasets made before the option)
        return record
    except (ValueError, KeyError, TypeError) as exc:
        raise SyntheticDatasetError(f"{path}: not a valid synthetic-dataset marker ({exc}); delete the folder"
                                    ) from None


def dataset_status(root: str | Path) -> str:
    """`missing` (no folder or an empty one), `partial` (half-written), `complete`, or `foreign` (something else)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise SyntheticDatasetError(f"{root} is a file, not a dataset folder")
    if not root.exists() or not any(root.iterdir()):
        return "missing"
    record = _read_marker(root)
    if record is None:
        return "foreign"
    return "complete" if record.get("complete") is True else "partial"


def generate_dataset(root: str | Path, identities: int = 300, utterances: int = 8, faces: int = 4, seed: int = 0,
                     distractors: float = 0.0, *, workers: int | None = None, progress: bool = True
                     ) -> GenerationReport:
    """Create, finish (after a killed run) or reuse the synthetic dataset in `root`, in `workers` processes (None: one
    per core for large jobs); `distractors`: the share of utterances with distractor stretches (`distractors.py`)."""
    start = time.perf_counter()
    params = SyntheticConfig(identities, utterances, faces, seed, distractors)
    try:
        params.validate()
    except ValueProblem as problem:
        got = getattr(params, problem.key)
        raise UsageError(f"synthetic dataset {root}: {problem.key} {problem.message}, got {got}") from None
    root = Path(root)
    status = dataset_status(root)
    if status == "foreign":
        raise SyntheticDatasetError(
            f"{root} is not empty and holds no {MARKER}: it is not a synthetic dataset, so nothing is written into it"
        )
    if status != "missing":
        record = _read_marker(root)
        wanted = {"version": GENERATOR_VERSION, **dataclasses.asdict(params)}
        found = {"version": record.get("version"), **record["params"]}
        diff = [f"{k}: {found[k]} on disk, {wanted[k]} asked" for k in wanted if found.get(k) != wanted[k]]
        if diff:
            raise SyntheticDatasetError(
                f"{root} holds a {'complete' if status == 'complete' else 'half-written'} synthetic dataset with other "
                f"parameters ({'; '.join(diff)}). Ask for the same parameters, choose another folder, or delete this "
                "one to regenerate it."
            )
    people = draw_identities(params.identities, params.seed)
    todo = [p for p in people if not all(f.exists() for f in _identity_files(root, p, params))]
    if status == "complete" and not todo:
        return GenerationReport(root, params, "reused", 0, time.perf_counter() - start)
    root.mkdir(parents=True, exist_ok=True)
    _write_marker(root, params, complete=False, people=people)
    remove_partial_files(root)
    # one process per core, but only when there is enough work to pay for starting them (about a second each)
    n_workers = max(1, min(os.cpu_count() or 1, len(todo) // 16)) if workers is None else workers
    with tqdm(total=len(people), initial=len(people) - len(todo), desc="synthetic identities", unit="id",
              disable=not progress) as bar:
        run_jobs(functools.partial(_write_identity, root, params=params), todo, n_workers, bar)
    _write_tables(root, people, params)
    _write_marker(root, params, complete=True, people=people)
    return GenerationReport(root, params, "generated" if status == "missing" else "finished", len(todo),
                            time.perf_counter() - start)


def ensure_synthetic_dataset(root: str | Path, config: SyntheticConfig, *, progress: bool = True,
                             log: Callable[[str], object] | None = print) -> Path:
    """The absolute `root` of a complete synthetic dataset of `config`, generated on first use (notebooks call this)."""
    report = generate_dataset(Path(root).absolute(), **dataclasses.asdict(config), progress=progress)
    if log is not None:
        log(report.describe())
    return report.root


def read_traits(root: str | Path) -> pd.DataFrame:
    """The hidden traits of every identity of a complete synthetic dataset (one row per identity, in index order)."""
    root = Path(root)
    status = dataset_status(root)
    if status != "complete":
        hint = {"partial": "it is half-written: run `python -m sf2f data synthetic --out` on it again to finish it",
                "missing": "it does not exist yet", "foreign": f"it holds no {MARKER}"}[status]
        raise SyntheticDatasetError(f"{root}: not a complete synthetic dataset ({hint})")
    return pd.read_csv(root / "traits.csv", keep_default_na=False)
