"""Preparation (`python -m sf2f prepare`): a dataset folder to the packed cache, every log-mel and face of a split in a
few memory-mapped files plus index tables (read back by :mod:`sf2f.data.prepared`).

The original keeps one pickle per utterance and opens a random face file and a random pickle for every sample (§1.2,
§1.6); on real data that is hundreds of thousands of small files. :func:`prepare` turns a dataset folder (the layout
of data/README.md) into::

    <out>/manifest.json          settings, input fingerprint and counts; written last, so its presence means complete
    <out>/split.json             the split that was prepared (the dataset's own, or made once by the split rule)
    <out>/report.csv             every skipped or converted file and every dropped identity, with the reason
    <out>/stats.json             mean and std of the training split's raw log-mels (for mel_norm: dataset)
    <out>/<split>/mels.npy       (total frames, n_mels) raw log-mels of all utterances, one block per utterance
    <out>/<split>/faces_<S>.npy  (n faces, S, S, 3) uint8 RGB faces
    <out>/<split>/identities.csv label, sub, name, speaker id, and where its utterances and faces start and end
    <out>/<split>/utterances.csv identity label, file, frame offset and count, durations
    <out>/<split>/faces.csv      identity label, file, row

Preparation works per identity in worker processes. Each identity's result goes to `parts/<hash>.npz` through a
temporary file and a rename; a part whose inputs and settings are unchanged is never recomputed. The packing step then
concatenates the parts in identity order into the files above (each again through a temporary file), and the manifest
comes last. A killed run therefore resumes where it stopped and ends with the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import shutil
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import as_completed
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
from sf2f.data.layouts import SPLITS, DatasetIndex, build_index, load_or_create_split
from sf2f.data.prepared import PrepareError, open_array, read_manifest
from sf2f.faces import FaceAligner, FaceImageError, load_image, resize_face
from sf2f.paths import atomic_path, folder_lock, write_atomic
from sf2f.runtime import process_pool

__all__ = [
    "CACHE_VERSION",
    "REPORT_COLUMNS",
    "PrepareError",
    "PrepareResult",
    "PrepareSettings",
    "prepare",
]

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
    def from_data_config(cfg: DataConfig, **changes: Any) -> PrepareSettings:
        settings = PrepareSettings(
            audio=cfg.audio,
            image_size=cfg.image_size,
            face_type=cfg.face_type,
            sub_datasets=tuple(cfg.sub_datasets),
            split_rule=cfg.split_rule,
            split_fractions=tuple(cfg.split_fractions),
        )
        return dataclasses.replace(settings, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["sub_datasets"] = list(self.sub_datasets)
        data["split_fractions"] = list(self.split_fractions)
        return data

    def part_key(self) -> str:
        """What one identity's part depends on besides its files."""
        keep = {k: v for k, v in self.to_dict().items() if k in ("audio", "image_size", "align_faces")}
        return json.dumps({"version": CACHE_VERSION, **keep}, sort_keys=True)


@dataclass(frozen=True)
class _Job:
    root: str
    faces_root: str
    sub: str
    name: str
    speaker_id: str
    gender: str
    utterances: tuple[str, ...]
    faces: tuple[str, ...]
    part: str
    fingerprint: str
    settings: PrepareSettings


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def _fingerprint(files: Sequence[tuple[Path, str]], settings: PrepareSettings) -> str:
    """Settings plus (relative path, size, modification time) of every input file: a part is reused while it holds."""
    stamps = []
    for root, rel in files:
        st = (root / rel).stat()
        stamps.append((rel, st.st_size, st.st_mtime_ns))
    return _sha1(json.dumps([settings.part_key(), stamps], ensure_ascii=False))


@functools.lru_cache(maxsize=1)
def _aligner() -> FaceAligner:
    """One MTCNN per worker process, built on first use."""
    return FaceAligner()


@contextmanager
def _single_thread() -> Iterator[None]:
    """Features are computed with one torch thread, so that every worker count gives bit-identical floats."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _prepare_identity(job: _Job) -> str:
    """Featurise one identity's utterances and faces into its part file (atomically). Returns the part path."""
    root, faces_root, s = Path(job.root), Path(job.faces_root), job.settings
    report: list[tuple[str, str, str, str]] = []
    with _single_thread():
        results = extract_log_mels([root / p for p in job.utterances], s.audio)
    mels, frames, paths, seconds, voiced = [], [], [], [], []
    for rel, result in zip(job.utterances, results):
        if isinstance(result, AudioError):
            report.append(("audio", rel, "skipped", result.reason))
            continue
        report += [("audio", rel, "converted", note) for note in result.notes]
        mels.append(result.mel.T.numpy())
        frames.append(result.mel.shape[1])
        paths.append(rel)
        seconds.append(result.seconds)
        voiced.append(result.voiced_seconds)
    faces, face_paths = [], []
    for rel in job.faces:
        try:
            loaded = load_image(faces_root / rel)
            image = _aligner()(loaded.image, s.image_size, rel) if s.align_faces else resize_face(loaded.image, s.image_size)
        except FaceImageError as error:
            report.append(("image", rel, "skipped", error.reason))
            continue
        report += [("image", rel, "converted", note) for note in loaded.notes]
        faces.append(np.asarray(image, dtype=np.uint8))
        face_paths.append(rel)
    dtype = np.dtype(s.audio.dtype)
    with atomic_path(Path(job.part)) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            fingerprint=np.array(job.fingerprint),
            identity=np.array([job.sub, job.name]),
            mels=np.concatenate(mels).astype(dtype, copy=False) if mels else np.zeros((0, s.audio.n_mels), dtype),
            mel_frames=np.array(frames, dtype=np.int64),
            utt_paths=np.array(paths, dtype=str),
            utt_seconds=np.array(seconds, dtype=np.float64),
            utt_voiced=np.array(voiced, dtype=np.float64),
            faces=np.stack(faces) if faces else np.zeros((0, s.image_size, s.image_size, 3), np.uint8),
            face_paths=np.array(face_paths, dtype=str),
            report=np.array(report, dtype=str).reshape(-1, 4),
        )
    return job.part


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
    report: Path

    def summary(self) -> str:
        lines = [f"prepared data in {self.out}" + (" (already up to date)" if self.up_to_date else "")]
        if not self.up_to_date:
            lines.append(f"identities computed {self.computed}, reused from an earlier run {self.reused}")
        for split, c in self.counts.items():
            lines.append(
                f"  {split}: {c['identities']} identities, {c['utterances']} utterances ({c['frames']} frames), "
                f"{c['faces']} faces"
            )
        skipped = pd.read_csv(self.report, keep_default_na=False)
        lines.append(f"report: {self.report} ({int((skipped['action'] != 'converted').sum())} skipped or dropped)")
        return "\n".join(lines)


def _run_jobs(jobs: list[_Job], workers: int, progress: bool, on_done: Callable[[int, int], None] | None) -> None:
    bar = tqdm(total=len(jobs), desc="preparing identities", unit="id", disable=not progress)
    done = 0

    def finished() -> None:
        nonlocal done
        done += 1
        bar.update(1)
        if on_done is not None:
            on_done(done, len(jobs))

    try:
        if workers <= 0 or len(jobs) <= 1:
            for job in jobs:
                _prepare_identity(job)
                finished()
            return
        with process_pool(workers) as pool:
            for future in as_completed([pool.submit(_prepare_identity, job) for job in jobs]):
                future.result()
                finished()
    finally:
        bar.close()


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


def _pack_split(out: Path, split: str, jobs: list[_Job], settings: PrepareSettings, report: list[tuple]) -> dict[str, int]:
    """Concatenate the parts of one split, in identity order, into its memory-mapped files and tables."""
    folder = out / split
    folder.mkdir(parents=True, exist_ok=True)
    kept: list[_Job] = []
    sizes: list[tuple[int, int]] = []
    for job in jobs:
        with np.load(job.part, allow_pickle=False) as part:
            report += [(split, job.sub, job.name, *row) for row in part["report"].tolist()]
            n_frames, n_faces = int(part["mel_frames"].sum()), len(part["face_paths"])
        if n_frames == 0 or n_faces == 0:
            what = "speech" if n_frames == 0 else "faces"
            report.append((split, job.sub, job.name, "identity", "", "dropped", f"no usable {what}: every file was skipped"))
            continue
        kept.append(job)
        sizes.append((n_frames, n_faces))

    identities, utterances, faces = [], [], []
    frame_offset = face_offset = 0
    for label, (job, (n_frames, n_faces)) in enumerate(zip(kept, sizes)):
        with np.load(job.part, allow_pickle=False) as part:
            lengths = part["mel_frames"]
            starts = frame_offset + np.concatenate([[0], np.cumsum(lengths)[:-1]])
            for path, start, length, sec, voiced in zip(
                part["utt_paths"].tolist(), starts, lengths, part["utt_seconds"], part["utt_voiced"]
            ):
                utterances.append((label, path, int(start), int(length), float(sec), float(voiced)))
            for i, path in enumerate(part["face_paths"].tolist()):
                faces.append((label, path, face_offset + i))
        identities.append((
            label, job.sub, job.name, job.speaker_id, job.gender,
            len(utterances) - len(lengths), len(utterances), face_offset, face_offset + n_faces,
        ))
        frame_offset += n_frames
        face_offset += n_faces

    def blocks(key: str) -> Iterator[np.ndarray]:
        for job in kept:
            with np.load(job.part, allow_pickle=False) as part:
                yield part[key]

    size = settings.image_size
    _save_array(folder / "mels.npy", (frame_offset, settings.audio.n_mels), np.dtype(settings.audio.dtype), blocks("mels"))
    _save_array(folder / f"faces_{size}.npy", (face_offset, size, size, 3), np.dtype(np.uint8), blocks("faces"))
    columns = ["label", "sub", "name", "speaker_id", "gender", "utt_start", "utt_stop", "face_start", "face_stop"]
    ident = pd.DataFrame(identities, columns=columns)
    _write_csv(folder / "identities.csv", ident)
    _write_csv(
        folder / "utterances.csv",
        pd.DataFrame(utterances, columns=["label", "path", "offset", "frames", "seconds", "voiced_seconds"]),
    )
    _write_csv(folder / "faces.csv", pd.DataFrame(faces, columns=["label", "path", "row"]))
    return {"identities": len(kept), "utterances": len(utterances), "frames": frame_offset, "faces": face_offset}


def _train_stats(out: Path) -> dict[str, float]:
    mels = open_array(out / "train" / "mels.npy")
    total = total_sq = 0.0
    for start in range(0, len(mels), 65536):
        block = np.asarray(mels[start : start + 65536], dtype=np.float64)
        total += float(block.sum())
        total_sq += float(np.square(block).sum())
    stats = MelStats.from_sums(total, total_sq, mels.size) if mels.size else MelStats(float("nan"), float("nan"), 0)
    return dataclasses.asdict(stats)


def prepare(
    data_root: str | Path,
    out: str | Path,
    settings: PrepareSettings | None = None,
    workers: int = 0,
    progress: bool = True,
    overwrite: bool = False,
    keep_parts: bool = False,
    on_identity_done: Callable[[int, int], None] | None = None,
    faces_root: str | Path | None = None,
) -> PrepareResult:
    """Prepare (or finish preparing, or confirm) the packed cache of a dataset folder.

    `workers` processes featurise identities in parallel (0: in this process). A complete output with the same settings
    and unchanged input files is left as it is; other settings are refused unless `overwrite`. `keep_parts` keeps the
    per-identity parts after packing (they make a later re-run after adding data incremental). `on_identity_done(done,
    total)` is called after each identity (progress hooks, tests). `faces_root`: the face tree's folder when it is
    not `data_root` (HQ-VoxCeleb unpacked as distributed).
    """
    settings = settings or PrepareSettings()
    root, out = Path(data_root), Path(out)
    index = build_index(root, settings.sub_datasets, settings.face_type, faces_root)
    # two notebooks or runs that need the same cache (a course run beside a terminal `prepare`) would race on the
    # same temporary part files: they take turns, and the second finds the cache complete
    with folder_lock(out, ".prepare.lock", f"waiting for another process preparing {out}"):
        return _prepare_locked(root, out, index, settings, workers, progress, overwrite, keep_parts, on_identity_done)


def _prepare_locked(
    root: Path,
    out: Path,
    index: DatasetIndex,
    settings: PrepareSettings,
    workers: int,
    progress: bool,
    overwrite: bool,
    keep_parts: bool,
    on_identity_done: Callable[[int, int], None] | None,
) -> PrepareResult:
    """The body of :func:`prepare`, run while this process holds the folder's lock."""
    manifest_path = out / "manifest.json"
    old = read_manifest(manifest_path)
    if old is not None and old.get("settings") != settings.to_dict():
        if not overwrite:
            was, now = flatten_config(old.get("settings") or {}), flatten_config(settings.to_dict())
            changed = ", ".join(f"{k}: {was.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(was) | set(now)) if was.get(k) != now.get(k))
            raise PrepareError(
                f"{out} holds data prepared with other settings ({changed}); use another output folder or "
                "overwrite=True (--overwrite)"
            )
        manifest_path.unlink()
    split, split_source = load_or_create_split(index, out, settings.split_rule, settings.split_fractions, settings.seed)
    split_text = json.dumps(split, ensure_ascii=False, indent=1) + "\n"
    if split_source != out / "split.json":
        write_atomic(out / "split.json", split_text)

    report: list[tuple] = [("", sub, name, kind, path, "skipped", reason) for sub, name, kind, path, reason in index.problems]
    where = {(sub, name): s for sub, parts in split.items() for s in SPLITS for name in parts[s]}
    parts_dir = out / "parts"
    parts_dir.mkdir(exist_ok=True)
    jobs: dict[str, list[_Job]] = {s: [] for s in SPLITS}
    utts = index.utterances.groupby(["sub", "name"])["path"].apply(tuple).to_dict()
    imgs = index.faces.groupby(["sub", "name"])["path"].apply(tuple).to_dict()
    for sub, name, speaker, gender in index.identities[["sub", "name", "speaker_id", "gender"]].itertuples(index=False):
        s = where.get((sub, name))
        if s is None:
            report.append(("", sub, name, "identity", "", "skipped", f"not in any split of {split_source.name}"))
            continue
        files = [(root, rel) for rel in utts[(sub, name)]] + [(index.faces_root, rel) for rel in imgs[(sub, name)]]
        part = parts_dir / f"{_sha1(f'{sub}/{name}')[:20]}.npz"
        jobs[s].append(
            _Job(
                str(root), str(index.faces_root), sub, name, speaker, gender, utts[(sub, name)], imgs[(sub, name)],
                str(part), _fingerprint(files, settings), settings,
            )
        )

    everything = [j for s in SPLITS for j in jobs[s]]
    overall = _sha1(json.dumps([split_text, [j.fingerprint for j in everything]]))
    if old is not None and old.get("fingerprint") == overall and old.get("settings") == settings.to_dict():
        return PrepareResult(out, 0, len(everything), True, old["counts"], out / "report.csv")

    for stale in parts_dir.glob("*.tmp"):  # left by a killed run: never trusted
        stale.unlink()
    todo = [j for j in everything if not _part_is_current(j)]
    _run_jobs(todo, workers, progress, on_identity_done)

    counts = {s: _pack_split(out, s, jobs[s], settings, report) for s in SPLITS}
    write_atomic(out / "stats.json", json.dumps(_train_stats(out), indent=1) + "\n")
    table = pd.DataFrame(report, columns=REPORT_COLUMNS).sort_values(REPORT_COLUMNS, kind="stable")
    _write_csv(out / "report.csv", table)
    manifest = {"version": CACHE_VERSION, "settings": settings.to_dict(), "fingerprint": overall, "counts": counts}
    write_atomic(manifest_path, json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True) + "\n")
    if not keep_parts:
        shutil.rmtree(parts_dir, ignore_errors=True)
    return PrepareResult(out, len(todo), len(everything) - len(todo), False, counts, out / "report.csv")
