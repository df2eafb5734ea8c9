"""One call from a config to training-ready data: generate (synthetic), prepare, reuse."""

from __future__ import annotations

from pathlib import Path

import pytest

from sf2f.config import DataConfig, SyntheticConfig
from sf2f.data.course_data import prepared_data, prepared_dir


def test_synthetic_data_is_generated_prepared_and_then_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sf2f.data.course_data.DATA_DIR", tmp_path / "data")
    data = DataConfig(kind="synthetic", root=str(tmp_path / "synth"),
                      synthetic=SyntheticConfig(identities=24, utterances=2, faces=1, seed=3))
    first = prepared_data(data, progress=False)
    assert first.root == prepared_dir(data) == tmp_path / "data" / "prepared" / "synth-masked-64"
    stats = first.statistics()
    assert len(stats) == 24 and set(stats["split"]) == {"train", "val", "test"}
    assert (stats["utterances"] == 2).all() and (stats["faces"] == 1).all()
    manifest = first.root / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    again = prepared_data(data, progress=False)
    assert again.root == first.root and manifest.stat().st_mtime_ns == stamp
    # a prepared folder given as the data root is used as it is
    assert prepared_data(DataConfig(kind="voxceleb"), root=first.root, progress=False).root == first.root


def test_missing_real_data_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="data/README.md"):
        prepared_data(DataConfig(kind="voxceleb", root=str(tmp_path / "VoxCeleb")), progress=False)
