"""The first code cell of every notebook: one call gives each lesson the same set-up (fastbook's idea), seeded, on
its device, with the plotting style, and a :class:`CourseContext` that knows where the notebook writes.
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
        """Save a figure as PNG into this notebook's output folder, and into the figures folder when one is set
        (`make demo` sets the repository's `figures/`, which the README shows)."""
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


def setup_notebook(name: str, profile: str, data_root: str = "", device: str = "auto", output_dir: str = "",
                   figures_dir: str = "", seed: int = 0) -> CourseContext:
    """Apply a notebook's parameters. Empty paths mean the profile's `data.root` and `runs/notebooks/<name>`; a path
    given is taken from the working folder, as on the command line."""
    if profile not in PROFILES:
        raise UsageError(f"profile must be one of {', '.join(PROFILES)}, got '{profile}' (check SF2F_PROFILE)")
    runtime = setup_runtime(seed=seed, device=device)
    sns.set_theme(context="notebook", style="whitegrid")
    plt.rcParams["figure.dpi"] = 100
    pd.set_option("display.precision", 4)
    default_data = load_config("sf2f_1st_stage", profile=profile).data.root
    ctx = CourseContext(name, profile, user_path(data_root) if data_root else project_path(default_data),
                        user_path(output_dir) if output_dir else RUNS_DIR / "notebooks" / name,
                        user_path(figures_dir) if figures_dir else None, runtime)
    ctx.output_dir.mkdir(parents=True, exist_ok=True)
    print(f"{name}: profile '{profile}', {runtime.describe()}")
    print(f"data: {ctx.data_root}\noutputs: {ctx.output_dir}")
    return ctx
