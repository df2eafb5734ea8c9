"""Reading the VoxCeleb + HQ-VoxCeleb layout of data/README.md (recipe §1.1-1.3) and its train/val/test split. Speech
folders are named by speaker id, face folders by name: identities are joined **by name** through the meta files (§1.2),
and what cannot be joined becomes a row of the report instead of the original's `KeyError` (§6 item 20)."""

from __future__ import annotations

import glob
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np
import pandas as pd

from sf2f.errors import SF2FError
from sf2f.paths import write_atomic

SPLITS: tuple[str, ...] = ("train", "val", "test")
AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".ogg", ".m4a", ".aac", ".mp4")
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


class LayoutError(SF2FError, ValueError):
    """The dataset folder does not have the expected layout (a missing meta file or column, a bad split.json)."""


@dataclass(frozen=True)
class MetaSpec:
    """One sub-dataset's meta file: its name, separator and the columns the pipeline reads (§1.1)."""

    file: str
    sep: str
    id_column: str
    name_column: str
    gender_column: str
    set_column: str


META: dict[str, MetaSpec] = {
    "vox1": MetaSpec("vox1_meta.csv", "\t", "VoxCeleb1 ID", "VGGFace1 ID", "Gender", "Set"),
    "vox2": MetaSpec("full_vox2_meta.csv", ",", "VoxCeleb2ID", "Name", "Gender_x", "Set"),
}


def read_meta(path: str | Path, sub: str) -> pd.DataFrame:
    """A meta file as a table with columns `row, speaker_id, name, gender, set` (row = position in the file); vox1 is
    TAB-separated, vox2 COMMA-separated (§1.1), names are UTF-8 (the real vox2 file has `Aco_Petrović`)."""
    spec = META[sub]
    path = Path(path)
    if not path.is_file():
        raise LayoutError(f"{path}: meta file not found (a {sub} dataset needs {spec.file}, see data/README.md)")
    try:
        table = pd.read_csv(path, sep=spec.sep, dtype=str, keep_default_na=False, encoding="utf-8",
                            skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise LayoutError(f"{path}: cannot be read as a {sub} meta file ({exc})") from None
    table.columns = [str(c).strip() for c in table.columns]
    required = (spec.id_column, spec.name_column)
    missing = [c for c in required if c not in table.columns]
    if missing:
        sep_name = "TAB" if spec.sep == "\t" else "COMMA"
        raise LayoutError(f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}; found "
                          f"{list(table.columns)}. A {sub} meta file is {sep_name}-separated with the columns "
                          f"{', '.join(required)} (and {spec.gender_column}, {spec.set_column}); see data/README.md")
    names = {spec.id_column: "speaker_id", spec.name_column: "name", spec.gender_column: "gender",
             spec.set_column: "set"}  # gender and set may be missing: empty then
    meta = table.reindex(columns=list(names), fill_value="").rename(columns=names).apply(lambda c: c.str.strip())
    return meta.assign(row=np.arange(len(table)))[["row", *names.values()]]


def _files(base: Path, pattern: str, suffixes: Sequence[str]) -> list[PurePath]:
    """The files of `base` matching `pattern` and `suffixes`, sorted; glob skips hidden ones (macOS's `._x.wav`)."""
    found = (PurePath(p) for p in glob.glob(pattern, root_dir=base))
    return sorted(p for p in found if p.suffix.lower() in suffixes and (base / p).is_file())


@dataclass
class DatasetIndex:
    """What a dataset folder holds, joined by name: the files are relative to `root` and `faces_root`."""

    root: Path
    faces_root: Path
    identities: pd.DataFrame  # with speech and faces, sorted by (sub, name) as the original does (§1.2); file counts
    utterances: pd.DataFrame  # sorted by path
    faces: pd.DataFrame  # sorted by path
    problems: list[tuple[str, str, str, str, str]]  # (sub, name, kind, path, reason) of what could not be joined
    meta: dict[str, pd.DataFrame]  # the meta tables (the original split rule needs their row order)


def build_index(root: str | Path, subs: Sequence[str] = ("vox1", "vox2"), face_type: str = "masked",
                faces_root: str | Path | None = None) -> DatasetIndex:
    """Index the sub-datasets of `root` that exist; `faces_root` holds the faces when not in `root` (as distributed)."""
    root = Path(root)
    faces_root = root if faces_root is None else Path(faces_root)
    for folder, what in ((root, "dataset"), (faces_root, "faces")):
        if not folder.is_dir():
            raise LayoutError(f"{folder}: {what} folder not found")
    identities, utterances, faces, problems, metas = [], [], [], [], {}
    for sub in subs:
        if sub not in META:
            raise LayoutError(f"unknown sub-dataset '{sub}' (known: {', '.join(META)})")
        if not any(p.is_dir() for p in (root / sub, root / "raw_wav" / sub, faces_root / sub)):
            continue
        meta = read_meta(root / sub / META[sub].file, sub)
        metas[sub] = meta
        named = meta[meta["name"] != ""]
        for name in named.loc[named.duplicated("name"), "name"]:
            problems.append((sub, name, "meta", META[sub].file,
                             "name listed more than once in the meta file; used the first row"))
        named = named.drop_duplicates("name")
        # raw_wav/<sub>/<dev|test>/<speaker id>/<clip id>/<file> and <sub>/<face type>_faces/<name>/<file>
        speech = pd.DataFrame([(p.parts[1], f"raw_wav/{sub}/{p.as_posix()}")
                               for p in _files(root / "raw_wav" / sub, "*/*/*/*", AUDIO_SUFFIXES)],
                              columns=["speaker_id", "path"])
        speech["name"] = speech["speaker_id"].map(dict(zip(named["speaker_id"], named["name"])))
        for spk in sorted(speech.loc[speech["name"].isna(), "speaker_id"].unique()):
            problems.append((sub, "", "speech", f"raw_wav/{sub}/*/{spk}",
                             f"speaker id {spk} is not in {META[sub].file}"))
        speech = speech.dropna(subset=["name"])
        faces_dir = f"{sub}/{face_type}_faces"
        images = pd.DataFrame([(p.parts[0], f"{faces_dir}/{p.as_posix()}")
                               for p in _files(faces_root / faces_dir, "*/*", IMAGE_SUFFIXES)],
                              columns=["name", "path"])
        with_speech, with_faces = set(speech["name"]), set(images["name"])
        for name in sorted(with_faces - with_speech):
            problems.append((sub, name, "identity", f"{faces_dir}/{name}", "has faces but no speech"))
        for name in sorted(with_speech - with_faces):
            problems.append((sub, name, "identity", "", f"has speech but no {face_type} faces"))
        both = with_speech & with_faces
        for _, row in named[named["name"].isin(both)].iterrows():
            identities.append((sub, row["name"], row["speaker_id"], row["gender"], int(row["row"])))
        utterances.append(speech[speech["name"].isin(both)].assign(sub=sub))
        faces.append(images[images["name"].isin(both)].assign(sub=sub))
    if not metas:
        raise LayoutError(f"{root}: none of the sub-datasets {list(subs)} is there (see data/README.md for the layout)")
    ident = pd.DataFrame(identities, columns=["sub", "name", "speaker_id", "gender", "meta_row"])
    ident = ident.sort_values(["sub", "name"], kind="stable").reset_index(drop=True)
    utt = pd.concat(utterances, ignore_index=True).sort_values(["sub", "name", "path"], kind="stable")
    img = pd.concat(faces, ignore_index=True).sort_values(["sub", "name", "path"], kind="stable")
    ident = ident.join(utt.groupby(["sub", "name"]).size().rename("n_utterances"), on=["sub", "name"])
    ident = ident.join(img.groupby(["sub", "name"]).size().rename("n_faces"), on=["sub", "name"])
    return DatasetIndex(root, faces_root, ident, utt.reset_index(drop=True), img.reset_index(drop=True), problems,
                        metas)


Split = dict[str, dict[str, list[str]]]


def split_of_row(row: int) -> str:
    """The original split rule (recipe §1.3): meta row i -> test when i % 10 == 8, val when 9, else train."""
    return {8: "test", 9: "val"}.get(row % 10, "train")


def original_split(meta: Mapping[str, pd.DataFrame]) -> Split:
    """:func:`split_of_row` over every named meta row, used or not, as the original does (vox1: 1001/125/125 names)."""
    split: Split = {}
    for sub, table in meta.items():
        named = table[table["name"] != ""]
        where = named["row"].map(split_of_row)
        split[sub] = {s: named["name"][where == s].tolist() for s in SPLITS}
    return split


def seeded_split(identities: pd.DataFrame, fractions: Sequence[float], seed: int) -> Split:
    """A seeded shuffle of each sub-dataset's identities: round(fraction * n) for val and test, the rest train."""
    rng = np.random.default_rng(seed)
    split: Split = {}
    for sub, group in identities.groupby("sub", sort=True):
        names = np.array(sorted(group["name"]))[rng.permutation(len(group))]
        n_val, n_test = (int(round(f * len(names))) for f in fractions[1:])
        n_train = len(names) - n_val - n_test
        parts = {"train": names[:n_train], "val": names[n_train : n_train + n_val], "test": names[n_train + n_val :]}
        split[sub] = {s: sorted(parts[s].tolist()) for s in SPLITS}
    return split


def read_split(path: str | Path) -> Split:
    """Read and check a split.json: {sub: {train|val|test: [names]}}, no name in two splits of one sub-dataset."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise LayoutError(f"{path}: not a readable split file ({exc})") from None
    if not isinstance(data, dict):
        raise LayoutError(f"{path}: a split file maps sub-datasets to {{train, val, test}} name lists")
    for sub, parts in data.items():
        if not isinstance(parts, dict) or not all(isinstance(parts.get(s, []), list) for s in SPLITS):
            raise LayoutError(f"{path}: '{sub}' must map train/val/test to lists of names")
        unknown = set(parts) - set(SPLITS)
        if unknown:
            raise LayoutError(f"{path}: '{sub}' has unknown split(s) {sorted(unknown)} (expected {', '.join(SPLITS)})")
        seen: dict[str, str] = {}
        for s in SPLITS:
            for name in parts.get(s, []):
                if name in seen and seen[name] != s:
                    raise LayoutError(f"{path}: '{name}' is in both {seen[name]} and {s} of {sub}")
                seen[name] = s
    return {sub: {s: list(parts.get(s, [])) for s in SPLITS} for sub, parts in data.items()}


def load_or_create_split(index: DatasetIndex, out: str | Path, rule: str = "original",
                         fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> tuple[Split, Path]:
    """The split to prepare and the file it came from: the dataset's own split.json (the synthetic data ships one),
    else the one an earlier run wrote into `out`, else a new one by `rule` (`original` or `seeded`), written there."""
    for candidate in (index.root / "split.json", Path(out) / "split.json"):
        if candidate.is_file():
            return read_split(candidate), candidate
    if rule == "original":
        split = original_split(index.meta)
    elif rule == "seeded":
        split = seeded_split(index.identities, fractions, seed)
    else:
        raise ValueError(f"unknown split rule '{rule}' (original or seeded)")
    target = Path(out) / "split.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, json.dumps(split, ensure_ascii=False, indent=1) + "\n")
    return split, target
