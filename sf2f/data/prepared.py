"""Reading a prepared cache (what :mod:`sf2f.data.prepare` writes): the split tables and memory-mapped arrays, opened
lazily so that DataLoader workers map the files themselves."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sf2f.audio import MelStats
from sf2f.data.layouts import SPLITS
from sf2f.errors import SF2FError, UsageError


class PrepareError(SF2FError, RuntimeError):
    """The output folder holds a preparation with other settings, or is not a prepared dataset."""


def read_manifest(path: Path) -> dict[str, Any] | None:
    """A prepared folder's manifest.json, or None when it is missing or unreadable (an unfinished preparation)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def open_array(path: Path) -> np.ndarray:
    """Memory-map a .npy file (an empty one cannot be mapped, so it is read)."""
    try:
        return np.load(path, mmap_mode="r")
    except ValueError:
        return np.load(path)


class PreparedSplit:
    """One split's tables and lazily opened arrays; `max_identities` keeps the first ones (labels stay 0..n-1)."""

    def __init__(self, root: Path, split: str, image_size: int, max_identities: int | None = None) -> None:
        self.root, self.split, self.image_size = root, split, image_size
        folder = root / split
        self.identities = pd.read_csv(folder / "identities.csv", keep_default_na=False)
        if max_identities is not None:
            self.identities = self.identities.iloc[:max_identities]
        self.utterances = pd.read_csv(folder / "utterances.csv", keep_default_na=False)
        self.faces = pd.read_csv(folder / "faces.csv", keep_default_na=False)
        self._utt = self.utterances[["offset", "frames"]].to_numpy()
        self._ranges = self.identities[["utt_start", "utt_stop", "face_start", "face_stop"]].to_numpy()

    def __getstate__(self) -> dict[str, Any]:
        # pickled without the arrays: DataLoader workers map the files themselves instead of receiving copies
        return {k: v for k, v in self.__dict__.items() if k not in ("mels", "face_pixels")}

    @functools.cached_property
    def mels(self) -> np.ndarray:
        return open_array(self.root / self.split / "mels.npy")

    @functools.cached_property
    def face_pixels(self) -> np.ndarray:
        return open_array(self.root / self.split / f"faces_{self.image_size}.npy")

    def stats(self) -> MelStats:
        return MelStats(**json.loads((self.root / "stats.json").read_text(encoding="utf-8")))

    def __len__(self) -> int:
        return len(self.identities)

    def utterance_rows(self, label: int) -> range:
        return range(int(self._ranges[label, 0]), int(self._ranges[label, 1]))

    def face_rows(self, label: int) -> range:
        return range(int(self._ranges[label, 2]), int(self._ranges[label, 3]))

    def mel(self, row: int) -> np.ndarray:
        """Raw log-mels (n_mels, T) of utterance `row`, copied out of the memory map."""
        offset, frames = self._utt[row]
        return np.array(self.mels[offset : offset + frames].T, dtype=np.float32)

    def face(self, row: int) -> np.ndarray:
        """uint8 RGB pixels (S, S, 3) of face `row`."""
        return np.array(self.face_pixels[row])


class PreparedData:
    """A prepared cache folder: its manifest, report and splits."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        manifest = read_manifest(self.root / "manifest.json")
        if manifest is None:
            raise PrepareError(f"{root}: not a prepared dataset (no manifest.json); run `python -m sf2f prepare`")
        self.manifest = manifest

    def split(self, name: str, max_identities: int | None = None) -> PreparedSplit:
        if name not in SPLITS:
            raise UsageError(f"unknown split '{name}' (train, val or test)")
        return PreparedSplit(self.root, name, int(self.manifest["settings"]["image_size"]), max_identities)

    def report(self) -> pd.DataFrame:
        return pd.read_csv(self.root / "report.csv", keep_default_na=False)

    def statistics(self) -> pd.DataFrame:
        """One row per identity of every split: utterances, faces, seconds of audio and of kept speech (notebook 01)."""
        tables = []
        for split in SPLITS:
            part = self.split(split)
            utt = part.utterances.groupby("label")[["seconds", "voiced_seconds", "frames"]].sum()
            table = part.identities[["label", "sub", "name", "gender"]].join(utt, on="label")
            table["utterances"] = part.identities["utt_stop"] - part.identities["utt_start"]
            table["faces"] = part.identities["face_stop"] - part.identities["face_start"]
            tables.append(table.assign(split=split))
        return pd.concat(tables, ignore_index=True)
