"""Write the synthetic dataset to disk in exactly the layout of the real data (data/README.md, recipe §1.2).

```
<root>/
  synthetic.json                      the generation parameters; "complete": true is written last, atomically
  traits.csv                          every hidden trait of every identity
  split.json                          {"vox1": {"train": [names], "val": [...], "test": [...]}, "vox2": {...}}
  vox1/vox1_meta.csv                  TAB-separated, like the VoxCeleb1 meta file
  vox1/{masked,origin}_faces/<name>/<k>.jpg
  vox2/full_vox2_meta.csv             comma-separated, like HQ-VoxCeleb's full_vox2_meta.csv
  vox2/{masked,origin}_faces/<name>/<k>.jpg
  raw_wav/<sub>/{dev,test}/<speaker id>/<11-character clip id>/<00001>.wav
```

Generation is deterministic: identity i draws everything from streams seeded by (seed, i), files are written whole
(to a hidden temporary name, then renamed), so the same parameters give the same bytes with any number of workers.
A run that stops half-way leaves `synthetic.json` with `"complete": false`; the next run with the same parameters
finishes it (only the identities with missing files are generated again), and nothing reads it as a dataset before.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import time
import wave
from collections.abc import Callable, Iterator
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from sf2f.config import DataConfig, SyntheticConfig
from sf2f.data.synthetic.faces import face_shape, render_face
from sf2f.data.synthetic.traits import (
    STREAM_CHANNELS,
    STREAM_FACES,
    STREAM_LAYOUT,
    STREAM_VOICES,
    SUB_DATASETS,
    Identity,
    draw_identities,
    identity_rng,
    traits_table,
)
from sf2f.data.synthetic.voices import DURATION_RANGE, SAMPLE_RATE, draw_channel, synthesize_utterance
from sf2f.errors import SF2FError
from sf2f.paths import project_path, write_atomic

__all__ = [
    "GENERATOR_VERSION",
    "MARKER",
    "GenerationReport",
    "SyntheticDatasetError",
    "dataset_status",
    "ensure_synthetic_dataset",
    "face_dir",
    "generate_dataset",
    "read_traits",
    "speaker_dir",
]

#: Bump when the generator's output changes: an old dataset then fails the parameter check instead of mixing in.
GENERATOR_VERSION = 1
MARKER = "synthetic.json"
META_FILES = {"vox1": "vox1_meta.csv", "vox2": "full_vox2_meta.csv"}
_PART = ".part"
_CLIP_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"))
_JPEG_QUALITY = 92


class SyntheticDatasetError(SF2FError, RuntimeError):
    """The target folder cannot hold this synthetic dataset (other parameters, or not a synthetic dataset)."""


@dataclass(frozen=True)
class GenerationReport:
    """What `generate_dataset` did."""

    root: Path
    params: dict[str, int]
    status: str  # generated | finished (a half-written dataset completed) | reused
    identities_written: int
    seconds: float

    def describe(self) -> str:
        p = self.params
        what = f"{p['identities']} identities x ({p['utterances']} utterances, {p['faces']} faces), seed {p['seed']}"
        if self.status == "reused":
            return f"reused the complete synthetic dataset in {self.root}: {what}"
        return f"{self.status} {self.root}: {what}; wrote {self.identities_written} identities in {self.seconds:.1f} s"


# --------------------------------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------------------------------


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


def _clips(person: Identity, seed: int, utterances: int) -> list[tuple[str, int]]:
    """(clip id, utterance number) of each utterance: a few YouTube-like clips, numbered from 00001 in each."""
    rng = identity_rng(seed, person.index, STREAM_LAYOUT)
    n_clips = min(utterances, 1 + utterances // 3)
    ids = ["".join(rng.choice(_CLIP_ALPHABET, 11)) for _ in range(n_clips)]
    owner = np.sort(np.concatenate([np.arange(n_clips), rng.integers(0, n_clips, utterances - n_clips)]))
    out, count = [], [0] * n_clips
    for clip in owner:
        count[clip] += 1
        out.append((ids[clip], count[clip]))
    return out


def _utterance_paths(root: Path, person: Identity, seed: int, utterances: int) -> list[Path]:
    base = speaker_dir(root, person)
    return [base / clip / f"{k:05d}.wav" for clip, k in _clips(person, seed, utterances)]


def _face_paths(root: Path, person: Identity, faces: int) -> list[tuple[Path, Path]]:
    masked, origin = face_dir(root, person, "masked"), face_dir(root, person, "origin")
    return [(masked / f"{k}.jpg", origin / f"{k}.jpg") for k in range(faces)]


def _identity_files(root: Path, person: Identity, params: SyntheticConfig) -> list[Path]:
    faces = [p for pair in _face_paths(root, person, params.faces) for p in pair]
    return [*_utterance_paths(root, person, params.seed, params.utterances), *faces]


# --------------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------------


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


def _write_identity(root: Path, person: Identity, params: SyntheticConfig) -> int:
    """Synthesise and write every utterance and face of one identity; returns the number of files written."""
    seed, written = params.seed, 0
    clips = _clips(person, seed, params.utterances)
    channels = {clip: draw_channel(identity_rng(seed, person.index, STREAM_CHANNELS, i))
                for i, clip in enumerate(dict.fromkeys(c for c, _ in clips))}
    for u, ((clip, _), path) in enumerate(zip(clips, _utterance_paths(root, person, seed, params.utterances))):
        rng = identity_rng(seed, person.index, STREAM_VOICES, u)
        duration = float(rng.uniform(*DURATION_RANGE))
        write_atomic(path, _wav_bytes(synthesize_utterance(person, channels[clip], rng, duration)))
        written += 1
    shape = face_shape(person, identity_rng(seed, person.index, STREAM_FACES))
    for k, (masked_path, origin_path) in enumerate(_face_paths(root, person, params.faces)):
        masked, origin = render_face(person, shape, identity_rng(seed, person.index, STREAM_FACES, k))
        write_atomic(masked_path, _jpeg_bytes(masked))
        write_atomic(origin_path, _jpeg_bytes(origin))
        written += 2
    return written


def _write_identity_job(job: tuple[str, Identity, dict[str, int]]) -> int:
    root, person, params = job
    return _write_identity(Path(root), person, SyntheticConfig(**params))


def _write_tables(root: Path, people: list[Identity], params: SyntheticConfig) -> None:
    """traits.csv, the two meta files in their real formats, and split.json (recipe §1.3)."""
    write_atomic(root / "traits.csv", traits_table(people).to_csv(index=False, lineterminator="\n").encode("utf-8"))
    by_sub = {sub: [p for p in people if p.sub == sub] for sub in SUB_DATASETS}
    rows = {
        "vox1": [("VoxCeleb1 ID", "VGGFace1 ID", "Gender", "Nationality", "Set")]
        + [(p.speaker_id, p.name, p.sex, p.nationality, p.set) for p in by_sub["vox1"]],
        "vox2": [("Class_ID", "Name", "Sample_Num", "Flag", "Gender_x", "VoxCeleb2ID", "VGGFace2ID", "Gender_y", "Set")]
        + [(f"n{p.speaker_id[2:]:0>6}", p.name, params.faces, 1, p.sex, p.speaker_id, f"n{p.speaker_id[2:]:0>6}",
            p.sex, p.set) for p in by_sub["vox2"]],
    }
    for sub, delimiter in (("vox1", "\t"), ("vox2", ",")):
        text = io.StringIO()
        csv.writer(text, delimiter=delimiter, lineterminator="\n").writerows(rows[sub])
        write_atomic(root / sub / META_FILES[sub], text.getvalue().encode("utf-8"))
    split = {sub: {part: [p.name for p in by_sub[sub] if p.split == part] for part in ("train", "val", "test")}
             for sub in SUB_DATASETS}
    write_atomic(root / "split.json", (json.dumps(split, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))


def _write_marker(root: Path, params: SyntheticConfig, complete: bool, people: list[Identity]) -> None:
    record = {
        "generator": "sf2f.data.synthetic",
        "version": GENERATOR_VERSION,
        "params": dataclasses.asdict(params),
        "complete": complete,
    }
    if complete:
        record["counts"] = {"identities": len(people), "utterances": len(people) * params.utterances,
                            "faces": len(people) * params.faces, **{sub: sum(p.sub == sub for p in people)
                                                                     for sub in SUB_DATASETS}}
    write_atomic(root / MARKER, (json.dumps(record, indent=1) + "\n").encode("utf-8"))


# --------------------------------------------------------------------------------------------------------------------
# State of a folder
# --------------------------------------------------------------------------------------------------------------------


def _read_marker(root: Path) -> dict | None:
    path = root / MARKER
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        record["params"] = {k: int(record["params"][k]) for k in ("identities", "utterances", "faces", "seed")}
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


def _check_params(root: Path, record: dict, params: SyntheticConfig) -> None:
    wanted = {"version": GENERATOR_VERSION, **dataclasses.asdict(params)}
    found = {"version": record.get("version"), **record["params"]}
    diff = [f"{k}: {found[k]} on disk, {wanted[k]} asked" for k in wanted if found.get(k) != wanted[k]]
    if diff:
        state = "complete" if record.get("complete") else "half-written"
        raise SyntheticDatasetError(
            f"{root} holds a {state} synthetic dataset with other parameters ({'; '.join(diff)}). "
            "Ask for the same parameters, choose another folder, or delete this one to regenerate it."
        )


def _clean_partial_files(root: Path) -> None:
    """Remove temporary files a killed run left behind (they are hidden and end in .part)."""
    for folder, _, files in os.walk(root):
        for name in files:
            if name.startswith(".") and name.endswith(_PART):
                os.remove(os.path.join(folder, name))


# --------------------------------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------------------------------


def _auto_workers(n_jobs: int) -> int:
    """One process per core, but only when there is enough work to pay for starting them (about a second each)."""
    return max(1, min(os.cpu_count() or 1, n_jobs // 16))


def _run(jobs: list[tuple[str, Identity, dict[str, int]]], workers: int, bar: tqdm) -> Iterator[int]:
    if workers <= 1:
        for job in jobs:
            yield _write_identity_job(job)
            bar.update()
        return
    # imported here: the workers import this module and must not pay for torch, which sf2f.runtime imports
    from sf2f.runtime import process_pool

    with process_pool(workers) as pool:
        for future in as_completed([pool.submit(_write_identity_job, job) for job in jobs]):
            yield future.result()
            bar.update()


def generate_dataset(
    root: str | Path,
    identities: int = 300,
    utterances: int = 8,
    faces: int = 4,
    seed: int = 0,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> GenerationReport:
    """Create, finish or reuse the synthetic dataset in `root` (see the module docstring for the layout).

    A complete dataset with the same parameters is reused as it is; a half-written one (a killed run) is finished; a
    dataset with other parameters, or a non-empty folder that is not a synthetic dataset, is an error naming the folder
    and the mismatch. `workers` processes generate identities in parallel (None: one per core for large jobs).
    """
    start = time.perf_counter()
    params = SyntheticConfig(identities=identities, utterances=utterances, faces=faces, seed=seed)
    if utterances < 1 or faces < 1:
        raise ValueError(f"a synthetic identity needs at least 1 utterance and 1 face, got {utterances} and {faces}")
    root = Path(root)
    status = dataset_status(root)
    if status == "foreign":
        raise SyntheticDatasetError(
            f"{root} is not empty and holds no {MARKER}: it is not a synthetic dataset, so nothing is written into it"
        )
    record = _read_marker(root) if status != "missing" else None
    if record is not None:
        _check_params(root, record, params)
    people = draw_identities(params.identities, params.seed)
    todo = [p for p in people if not all(f.exists() for f in _identity_files(root, p, params))]
    if status == "complete" and not todo:
        return GenerationReport(root, dataclasses.asdict(params), "reused", 0, time.perf_counter() - start)

    root.mkdir(parents=True, exist_ok=True)
    _write_marker(root, params, complete=False, people=people)
    _clean_partial_files(root)
    n_workers = _auto_workers(len(todo)) if workers is None else max(1, workers)
    jobs = [(str(root), person, dataclasses.asdict(params)) for person in todo]
    with tqdm(total=len(people), initial=len(people) - len(todo), desc="synthetic identities", unit="id",
              disable=not progress) as bar:
        written = sum(1 for _ in _run(jobs, n_workers, bar))
    _write_tables(root, people, params)
    _write_marker(root, params, complete=True, people=people)
    return GenerationReport(root, dataclasses.asdict(params), "generated" if status == "missing" else "finished",
                            written, time.perf_counter() - start)


def ensure_synthetic_dataset(
    where: str | Path | DataConfig,
    config: SyntheticConfig | None = None,
    *,
    workers: int | None = None,
    progress: bool = True,
    log: Callable[[str], object] | None = print,
) -> Path:
    """The root of a complete synthetic dataset, generated on first use and reused afterwards (notebooks call this).

    `where` is a folder (a relative path is taken from the working folder; a :class:`DataConfig`'s root, as every
    path in a config, from the repository root) with `config` giving the size and seed
    (default: :class:`SyntheticConfig`'s 300 identities), or a :class:`DataConfig` that carries both.
    """
    if isinstance(where, DataConfig):
        if where.kind != "synthetic":
            raise ValueError(f"data.kind is '{where.kind}': {where.root} is not a synthetic dataset to generate")
        root, config = project_path(where.root), config or where.synthetic
    else:
        root = Path(where).absolute()
    config = config or SyntheticConfig()
    report = generate_dataset(root, **dataclasses.asdict(config), workers=workers, progress=progress)
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
