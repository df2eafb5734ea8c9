"""The course's training data in one call: the synthetic dataset, generated or reused, then prepared (packed cache).

Notebooks that train (05) or evaluate (06, 07) call :func:`prepared_course_data` with their context. It generates the
synthetic dataset at `ctx.data_root` on first use (`sf2f.data.synthetic`), prepares it with
:func:`sf2f.data.cache.prepare` into `data/prepared/<dataset folder>-<image size>` (the same default as
`python -m sf2f prepare`), and returns that folder; both steps reuse what is already there. A `data_root` that is
already a prepared folder is used as it is.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from sf2f.config import load_config
from sf2f.data.cache import PrepareSettings, prepare
from sf2f.paths import DATA_DIR

__all__ = ["CourseDataError", "prepared_course_data"]


class CourseDataError(RuntimeError):
    """The course data cannot be made here."""


def prepared_course_data(ctx: Any, config: str = "sf2f_1st_stage", progress: bool = True) -> Path:
    """The prepared folder of the notebook's dataset (see the module docstring). `ctx` is a notebook's
    :class:`~sf2f.notebook.CourseContext`; `config` decides image size and audio settings (its profile's)."""
    root = Path(ctx.data_root)
    if (root / "manifest.json").is_file():
        return root
    cfg = load_config(config, profile=ctx.profile)
    try:
        from sf2f.data.synthetic import ensure_synthetic_dataset
    except ImportError as exc:
        raise CourseDataError(
            f"the synthetic dataset generator (sf2f.data.synthetic) is not available ({exc}); point data_root at a "
            "prepared folder (python -m sf2f prepare) instead"
        ) from None
    dataset = ensure_synthetic_dataset(dataclasses.replace(cfg.data, root=str(root)), progress=progress)
    out = DATA_DIR / "prepared" / f"{Path(dataset).name}-{cfg.data.image_size}"
    prepare(dataset, out, PrepareSettings.from_data_config(cfg.data), workers=os.cpu_count() or 1, progress=progress)
    return out
