"""The first code cell of every notebook: one call gives each lesson the same set-up (fastbook's idea).

`setup_notebook` checks the papermill parameters, seeds everything, picks the device, sets the plotting style, and
returns a :class:`CourseContext` that knows where this notebook writes its outputs and figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from sf2f.config import PROFILES, load_config
from sf2f.errors import UsageError
from sf2f.paths import RUNS_DIR, project_path, user_path
from sf2f.runtime import RuntimeInfo, setup_runtime

__all__ = ["CourseContext", "setup_notebook"]


@dataclass(frozen=True)
class CourseContext:
    """What a notebook needs to know about its run."""

    name: str
    profile: str
    data_root: Path
    output_dir: Path
    figures_dir: Path | None
    runtime: RuntimeInfo

    def save_figure(self, fig: matplotlib.figure.Figure, name: str) -> Path:
        """Save a figure as PNG into this notebook's output folder, and into the figures folder when one is set.

        `make demo` sets the figures folder to the repository's `figures/`, so the README shows what the last demo
        run produced; interactive and test runs leave it unset and write under `runs/` only.
        """
        target = self.output_dir / "figures" / f"{name}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target, dpi=120, bbox_inches="tight")
        if self.figures_dir is not None:
            self.figures_dir.mkdir(parents=True, exist_ok=True)
            fig.savefig(self.figures_dir / f"{name}.png", dpi=120, bbox_inches="tight")
        return target

    def results_path(self, name: str) -> Path:
        """Where a results table (CSV) goes; `make demo` gathers them into results.md."""
        path = self.output_dir / "results" / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def _profile_data_root(profile: str) -> str:
    return load_config("sf2f_1st_stage", profile=profile).data.root


def setup_notebook(
    name: str,
    profile: str,
    data_root: str = "",
    device: str = "auto",
    output_dir: str = "",
    figures_dir: str = "",
    seed: int = 0,
) -> CourseContext:
    """Apply a notebook's parameters. Empty paths mean the project's defaults, in the repository: the profile's
    `data.root` (quick: `data/synthetic_quick`, demo: `data/synthetic`) and `runs/notebooks/<name>`. A path given
    is taken from the working folder, as on the command line (JupyterLab runs a notebook in its own folder,
    `notebooks/`; papermill in the folder it is started from)."""
    if profile not in PROFILES:
        raise UsageError(f"profile must be one of {', '.join(PROFILES)}, got '{profile}' (check SF2F_PROFILE)")
    runtime = setup_runtime(seed=seed, device=device)
    sns.set_theme(context="notebook", style="whitegrid")
    plt.rcParams["figure.dpi"] = 100
    pd.set_option("display.precision", 4)
    ctx = CourseContext(
        name=name,
        profile=profile,
        data_root=user_path(data_root) if data_root else project_path(_profile_data_root(profile)),
        output_dir=user_path(output_dir) if output_dir else RUNS_DIR / "notebooks" / name,
        figures_dir=user_path(figures_dir) if figures_dir else None,
        runtime=runtime,
    )
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    print(f"{name}: profile '{profile}', {runtime.describe()}")
    print(f"data: {ctx.data_root}\noutputs: {ctx.output_dir}")
    return ctx
