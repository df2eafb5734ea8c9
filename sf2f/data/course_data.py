"""Training-ready data for a config in one call: the dataset (generated if synthetic), then its cache in
`data/prepared/<dataset folder>-<face type>-<image size>/` (faces resized, §1.5; the dataset may be read-only)."""

from __future__ import annotations

from pathlib import Path

from sf2f.config import DataConfig
from sf2f.data.prepare import PrepareSettings, prepare
from sf2f.data.prepared import PreparedData
from sf2f.errors import MissingPathError
from sf2f.paths import DATA_DIR, project_path


def prepared_dir(data: DataConfig, root: str | Path | None = None) -> Path:
    """Where the cache of a data config lives (`root` overrides `data.root`, e.g. a notebook's data_root)."""
    base = Path(root).absolute() if root else project_path(data.root)
    return DATA_DIR / "prepared" / f"{base.name}-{data.face_type}-{data.image_size}"


def prepared_data(data: DataConfig, root: str | Path | None = None, progress: bool = True) -> PreparedData:
    """The prepared cache of a dataset, made on first use; a `root` that is a prepared folder is used as it is."""
    base = Path(root).absolute() if root else project_path(data.root)
    if (base / "manifest.json").is_file():  # already a prepared folder (python -m sf2f prepare --out ...)
        return PreparedData(base)
    if data.kind == "synthetic":
        from sf2f.data.synthetic import ensure_synthetic_dataset
        ensure_synthetic_dataset(base, data.synthetic, progress=progress)
    elif not base.is_dir():
        raise MissingPathError(f"{base}: no dataset here; put VoxCeleb audio and HQ-VoxCeleb faces there in the "
                               "layout of data/README.md")
    out = prepared_dir(data, base)
    prepare(base, out, PrepareSettings.from_data_config(data), progress=progress)
    return PreparedData(out)
