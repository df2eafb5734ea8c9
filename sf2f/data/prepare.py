"""`python -m sf2f prepare`: a dataset folder to the cache of :mod:`sf2f.data.prepared` (memory-mapped arrays and CSV
tables per split where the original opens a pickle and a face file per sample, §1.2, §1.6; manifest.json last). Parts
`parts/<hash>.npz` are made in workers and reused while their inputs are unchanged: a killed run resumes, same bytes."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import shutil
import zipfile
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from sf2f.audio import AudioError, MelStats, extract_log_mels
from sf2f.config import AudioConfig, DataConfig, flatten_config
from sf2f.data import run_jobs
from sf2f.data.layouts import SPLITS, build_index, load_or_create_split
from sf2f.data.prepared import PrepareError, open_array, read_manifest
from sf2f.faces import FaceAligner, FaceImageError, load_image, resize_face
from sf2f.paths import atomic_path, folder_lock, remove_partial_files, write_atomic

CACHE_VERSION = 1
REPORT_COLUMNS = ["split", "sub", "identity", "kind", "path", "action", "reason"]


@dataclass(frozen=True)
class PrepareSettings:
    """Everything that decides the prepared bytes (the manifest records it; a re-run with other settings is refused)."""

    audio: AudioConfig = field(default_factory=AudioConfig)
    image_size: int = 64
    face_type: str = "masked"
    # raw photos: detect and align each face with MTCNN first (HQ-VoxCeleb faces are aligned already)
    align_faces: bool = False
    sub_datasets: tuple[str, ...] = ("vox1", "vox2")
    split_rule: str = "original"
    split_fractions: tuple[float, ...] = (0.8, 0.1, 0.1)
    seed: int = 0

    @staticmethod
    def from_data_config(cfg: DataConfig) -> PrepareSettings:
        return PrepareSettings(audio=cfg.audio, image_size=cfg.image_size, face_type=cfg.face_type,
                               sub_datasets=tuple(cfg.sub_datasets), split_rule=cfg.split_rule,
                               split_fractions=tuple(cfg.split_fractions))

    def to_dict(self) -> dict[str, Any]:
        """As the manifest holds it (tuples as JSON lists), so that a re-run compares like with like."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


@dataclass(frozen=True)
class _Job:
    sub: str
    name: str
    speaker_id: str
    gender: str
    utterances: tuple[str, ...]
    faces: tuple[str, ...]
    part: str
    fingerprint: str


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _fingerprint(files: Sequence[tuple[Path, str]], settings: PrepareSettings) -> str:
    """A part is reused while the settings it depends on and each input file's (path, size, mtime) are unchanged."""
    keep = {k: v for k, v in settings.to_dict().items() if k in ("audio", "image_size", "align_faces")}
    stats = [(rel, (root / rel).stat()) for root, rel in files]
    stamps = [(rel, st.st_size, st.st_mtime_ns) for rel, st in stats]
    return _sha1(json.dumps([json.dumps({"version": CACHE_VERSION, **keep}, sort_keys=True), stamps],
                            ensure_ascii=False))


@functools.lru_cache(maxsize=1)
def _aligner() -> FaceAligner:
    """One MTCNN per worker process, built on first use."""
    return FaceAligner()


@contextmanager
def single_thread() -> Iterator[None]:
    """One torch thread in the block: features then come out bit-identical with any number of workers."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _prepare_identity(root: Path, faces_root: Path, s: PrepareSettings, job: _Job) -> None:
    report: list[tuple[str, str, str, str]] = []
    with single_thread():
        results = extract_log_mels([root / p for p in job.utterances], s.audio)
    kept = []
    for rel, result in zip(job.utterances, results):
        if isinstance(result, AudioError):
            report.append(("audio", rel, "skipped", result.reason))
            continue
        report += [("audio", rel, "converted", note) for note in result.notes]
        kept.append((rel, result))
    mels = [result.mel.T.numpy() for _, result in kept]
    faces, face_paths = [], []
    for rel in job.faces:
        try:
            loaded, notes = load_image(faces_root / rel)
            image = _aligner()(loaded, s.image_size, rel) if s.align_faces else resize_face(loaded, s.image_size)
        except FaceImageError as error:
            report.append(("image", rel, "skipped", error.reason))
            continue
        report += [("image", rel, "converted", note) for note in notes]
        faces.append(np.asarray(image, dtype=np.uint8))
        face_paths.append(rel)
    dtype = np.dtype(s.audio.dtype)
    with atomic_path(Path(job.part)) as tmp, open(tmp, "wb") as f:
        np.savez(f, fingerprint=np.array(job.fingerprint),
                 mels=np.concatenate(mels).astype(dtype, copy=False) if mels else np.zeros((0, s.audio.n_mels), dtype),
                 mel_frames=np.array([len(m) for m in mels], dtype=np.int64),
                 utt_paths=np.array([rel for rel, _ in kept], dtype=str),
                 utt_seconds=np.array([r.seconds for _, r in kept], dtype=np.float64),
                 utt_voiced=np.array([r.voiced_seconds for _, r in kept], dtype=np.float64),
                 faces=np.stack(faces) if faces else np.zeros((0, s.image_size, s.image_size, 3), np.uint8),
                 face_paths=np.array(face_paths, dtype=str), report=np.array(report, dtype=str).reshape(-1, 4))


def _part_is_current(job: _Job) -> bool:
    try:
        with np.load(job.part, allow_pickle=False) as part:
            return str(part["fingerprint"]) == job.fingerprint
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # missing, cut short by a crash, or foreign
        return False


@dataclass(frozen=True)
class PrepareResult:
    """What a call to :func:`prepare` did."""

    out: Path
    computed: int
    reused: int
    up_to_date: bool
    counts: dict[str, dict[str, int]]

    def summary(self) -> str:
        lines = [f"prepared data in {self.out}" + (" (already up to date)" if self.up_to_date else "")]
        if not self.up_to_date:
            lines.append(f"identities computed {self.computed}, reused from an earlier run {self.reused}")
        lines += [f"  {split}: {c['identities']} identities, {c['utterances']} utterances ({c['frames']} frames), "
                  f"{c['faces']} faces" for split, c in self.counts.items()]
        report = self.out / "report.csv"
        skipped = pd.read_csv(report, keep_default_na=False)
        lines.append(f"report: {report} ({int((skipped['action'] != 'converted').sum())} skipped or dropped)")
        return "\n".join(lines)


def _save_array(path: Path, shape: tuple[int, ...], dtype: np.dtype, blocks: Iterator[np.ndarray]) -> None:
    """Stream blocks into a .npy file of known shape (through a temporary file), never holding it all in memory."""
    with atomic_path(path) as tmp:
        if int(np.prod(shape)) == 0:
            with open(tmp, "wb") as f:  # (np.save would append .npy to the temporary name)
                np.save(f, np.zeros(shape, dtype))
            return
        target = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        row = 0
        for block in blocks:
            target[row : row + len(block)] = block
            row += len(block)
        target.flush()
        del target


def _write_csv(path: Path, table: pd.DataFrame) -> None:
    write_atomic(path, table.to_csv(index=False, lineterminator="\n"))


def _pack_split(out: Path, split: str, jobs: list[_Job], settings: PrepareSettings, report: list[tuple]
                ) -> dict[str, int]:
    """Concatenate the parts of one split, in identity order, into its memory-mapped files and tables."""
    kept: list[_Job] = []
    identities, utterances, faces = [], [], []
    frames = n_faces = 0
    for job in jobs:
        with np.load(job.part, allow_pickle=False) as part:
            report += [(split, job.sub, job.name, *row) for row in part["report"].tolist()]
            lengths, face_paths = part["mel_frames"], part["face_paths"].tolist()
            if lengths.sum() == 0 or not face_paths:
                what = "speech" if lengths.sum() == 0 else "faces"
                report.append((split, job.sub, job.name, "identity", "", "dropped",
                               f"no usable {what}: every file was skipped"))
                continue
            label = len(kept)
            kept.append(job)
            identities.append((label, job.sub, job.name, job.speaker_id, job.gender, len(utterances),
                               len(utterances) + len(lengths), n_faces, n_faces + len(face_paths)))
            starts = frames + np.concatenate([[0], np.cumsum(lengths)[:-1]])
            utterances += [(label, path, int(start), int(length), float(sec), float(voiced)) for path, start, length,
                           sec, voiced in zip(part["utt_paths"].tolist(), starts, lengths, part["utt_seconds"],
                                              part["utt_voiced"])]
            faces += [(label, path, n_faces + i) for i, path in enumerate(face_paths)]
            frames += int(lengths.sum())
            n_faces += len(face_paths)

    def blocks(key: str) -> Iterator[np.ndarray]:
        for job in kept:
            with np.load(job.part, allow_pickle=False) as part:
                yield part[key]

    folder, size = out / split, settings.image_size
    _save_array(folder / "mels.npy", (frames, settings.audio.n_mels), np.dtype(settings.audio.dtype), blocks("mels"))
    _save_array(folder / f"faces_{size}.npy", (n_faces, size, size, 3), np.dtype(np.uint8), blocks("faces"))
    columns = ["label", "sub", "name", "speaker_id", "gender", "utt_start", "utt_stop", "face_start", "face_stop"]
    _write_csv(folder / "identities.csv", pd.DataFrame(identities, columns=columns))
    _write_csv(folder / "utterances.csv", pd.DataFrame(
        utterances, columns=["label", "path", "offset", "frames", "seconds", "voiced_seconds"]))
    _write_csv(folder / "faces.csv", pd.DataFrame(faces, columns=["label", "path", "row"]))
    return {"identities": len(kept), "utterances": len(utterances), "frames": frames, "faces": n_faces}


def _train_stats(out: Path) -> dict[str, float]:
    mels = open_array(out / "train" / "mels.npy")
    total = total_sq = 0.0
    for start in range(0, len(mels), 65536):
        block = np.asarray(mels[start : start + 65536], dtype=np.float64)
        total += float(block.sum())
        total_sq += float(np.square(block).sum())
    stats = MelStats.from_sums(total, total_sq, mels.size) if mels.size else MelStats(float("nan"), float("nan"), 0)
    return dataclasses.asdict(stats)


def prepare(data_root: str | Path, out: str | Path, settings: PrepareSettings | None = None, workers: int = 0,
            progress: bool = True, overwrite: bool = False, keep_parts: bool = False,
            faces_root: str | Path | None = None) -> PrepareResult:
    """Prepare, finish or confirm the cache in `workers` processes (<= 1: this one); `keep_parts` makes a re-run after
    adding data incremental; `faces_root` holds the faces when not in `data_root` (HQ-VoxCeleb as distributed)."""
    settings = settings or PrepareSettings()
    root, out = Path(data_root), Path(out)
    index = build_index(root, settings.sub_datasets, settings.face_type, faces_root)
    # two notebooks or runs that need the same cache (a course run beside a terminal `prepare`) would race on the
    # same temporary part files: they take turns, and the second finds the cache complete
    with folder_lock(out, ".prepare.lock", f"waiting for another process preparing {out}"):
        remove_partial_files(out)  # a run killed while packing leaves its half-written split files
        manifest_path = out / "manifest.json"
        old = read_manifest(manifest_path)
        if old is not None and old.get("settings") != settings.to_dict():
            if not overwrite:
                was, now = flatten_config(old.get("settings") or {}), flatten_config(settings.to_dict())
                changed = ", ".join(f"{k}: {was.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(was) | set(now))
                                    if was.get(k) != now.get(k))
                raise PrepareError(f"{out} holds data prepared with other settings ({changed}); use another output "
                                   "folder or overwrite=True (--overwrite)")
            manifest_path.unlink()
        split, split_source = load_or_create_split(index, out, settings.split_rule, settings.split_fractions,
                                                   settings.seed)
        split_text = json.dumps(split, ensure_ascii=False, indent=1) + "\n"
        if split_source != out / "split.json":
            write_atomic(out / "split.json", split_text)
        report: list[tuple] = [("", sub, name, kind, path, "skipped", reason)
                               for sub, name, kind, path, reason in index.problems]
        where = {(sub, name): s for sub, parts in split.items() for s in SPLITS for name in parts[s]}
        jobs: dict[str, list[_Job]] = {s: [] for s in SPLITS}
        utts = index.utterances.groupby(["sub", "name"])["path"].apply(tuple).to_dict()
        imgs = index.faces.groupby(["sub", "name"])["path"].apply(tuple).to_dict()
        people = index.identities[["sub", "name", "speaker_id", "gender"]]
        for sub, name, speaker, gender in people.itertuples(index=False):
            s = where.get((sub, name))
            if s is None:
                report.append(("", sub, name, "identity", "", "skipped", f"not in any split of {split_source.name}"))
                continue
            files = [(root, rel) for rel in utts[(sub, name)]] + [(index.faces_root, rel) for rel in imgs[(sub, name)]]
            part = out / "parts" / f"{_sha1(f'{sub}/{name}')[:20]}.npz"
            jobs[s].append(_Job(sub, name, speaker, gender, utts[(sub, name)], imgs[(sub, name)], str(part),
                                _fingerprint(files, settings)))
        everything = [j for s in SPLITS for j in jobs[s]]
        overall = _sha1(json.dumps([split_text, [j.fingerprint for j in everything]]))
        if old is not None and old.get("fingerprint") == overall and old.get("settings") == settings.to_dict():
            return PrepareResult(out, 0, len(everything), True, old["counts"])
        todo = [j for j in everything if not _part_is_current(j)]
        with tqdm(total=len(todo), desc="preparing identities", unit="id", disable=not progress) as bar:
            run_jobs(functools.partial(_prepare_identity, root, index.faces_root, settings), todo, workers, bar)
        counts = {s: _pack_split(out, s, jobs[s], settings, report) for s in SPLITS}
        write_atomic(out / "stats.json", json.dumps(_train_stats(out), indent=1) + "\n")
        report_table = pd.DataFrame(report, columns=REPORT_COLUMNS)
        _write_csv(out / "report.csv", report_table.sort_values(REPORT_COLUMNS, kind="stable"))
        manifest = {"version": CACHE_VERSION, "settings": settings.to_dict(), "fingerprint": overall, "counts": counts}
        write_atomic(manifest_path, json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True) + "\n")
        if not keep_parts:
            shutil.rmtree(out / "parts", ignore_errors=True)
        return PrepareResult(out, len(todo), len(everything) - len(todo), False, counts)
