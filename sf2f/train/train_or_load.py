"""The notebooks' "train or load": the course keeps its runs in `runs/course/<profile>/<config>/`, so notebook 05
trains what notebooks 02, 06 and 07 then load."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sf2f.config import ExperimentConfig, describe_diff, load_resolved_config
from sf2f.errors import UsageError
from sf2f.paths import RUNS_DIR, folder_lock
from sf2f.train.trainer import Callback, Trainer, TrainResult, recipe_diff


def course_run_dir(config_name: str, profile: str) -> Path:
    """Where the course notebooks keep the run of a paper config under a profile."""
    return RUNS_DIR / "course" / profile / config_name


def train_or_load(
    cfg: ExperimentConfig,
    data: str | Path,
    run_dir: str | Path,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
    **trainer_options: Any,
) -> TrainResult:
    """The finished run in `run_dir` if it ran this recipe; else resume it, or train it from the start. A folder of
    another recipe is an error, not overwritten. Processes that need the same run take turns (notebooks open at once):
    the second waits, then loads the run the first finished."""
    run_dir = Path(run_dir).absolute()
    with folder_lock(run_dir, ".train.lock", f"waiting for another process training {run_dir}"):
        saved = run_dir / "config.yaml"
        if saved.exists():
            diff = recipe_diff(load_resolved_config(saved), cfg)
            if diff:
                raise UsageError(f"{run_dir} holds a run of another recipe ({describe_diff(diff)}); delete it or "
                                 "choose another folder")
            if (run_dir / "done.json").exists():
                return TrainResult.read(run_dir)
        trainer = Trainer(cfg, data, run_dir, resume=saved.exists(), progress=progress, callbacks=callbacks,
                          **trainer_options)
        return trainer.fit()
