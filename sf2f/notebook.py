"""The first code cell of every notebook: one call gives each lesson the same set-up (fastbook's idea), seeded, on its
device, with the plotting style, and a :class:`CourseContext` that knows where the notebook writes; and the pipeline
figure notebook 00 and the README show."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

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
        """A PNG in this notebook's output folder, and in the figures folder if set (`make demo`: `figures/`)."""
        target = self.output_dir / "figures" / f"{name}.png"
        for path in [target] + ([self.figures_dir / target.name] if self.figures_dir is not None else []):
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=120, bbox_inches="tight")
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


# (label, detail, x, y, colour); the generator path runs left to right, training-only parts sit below it
_BOXES: dict[str, tuple[str, str, float, float, str]] = {
    "wav": ("speech", "16 kHz wav", 0.07, 0.72, "#dbe9f6"),
    "mel": ("VAD + log-mel", "40 x T, 100 frames/s", 0.205, 0.72, "#dbe9f6"),
    "seg": ("segments", "N x 125 frames", 0.34, 0.72, "#dbe9f6"),
    "enc": ("voice encoder", "1D-Inception, 512-d", 0.475, 0.72, "#fde2c8"),
    "fuse": ("attention fuser", "N embeddings to 1", 0.61, 0.72, "#fde2c8"),
    "dec": ("face decoder", "GLU up-sampling", 0.745, 0.72, "#fde2c8"),
    "face": ("face", "64 (+128) px", 0.88, 0.72, "#e3f1dc"),
    "loss": ("losses", "GAN, id CE, L1, FaceNet", 0.61, 0.27, "#f3dcef"),
    "disc": ("discriminators", "realism + identity", 0.745, 0.27, "#f3dcef"),
    "real": ("real face", "same speaker", 0.88, 0.27, "#e3f1dc"),
}
# (from, to, matplotlib connection style, line style)
_ARROWS = [
    *[(a, b, "arc3", "-") for a, b in [("wav", "mel"), ("mel", "seg"), ("seg", "enc"), ("enc", "fuse"),
                                       ("fuse", "dec"), ("dec", "face")]],
    ("face", "disc", "arc3", "-"), ("real", "disc", "arc3", "-"), ("disc", "loss", "arc3", "-"),
    ("face", "loss", "arc3", "-"), ("real", "loss", "arc3,rad=-0.35", "-"), ("loss", "fuse", "arc3", "--"),
]


def pipeline_figure() -> Figure:
    """The SF2F pipeline as a block diagram: speech to face on top, the training signals below."""
    fig, ax = plt.subplots(figsize=(13, 4.6))
    ax.set(xlim=(0, 1), ylim=(0, 1))
    ax.axis("off")
    w, h = 0.1, 0.19
    for label, detail, x, y, colour in _BOXES.values():
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.01", fc=colour, ec="0.3"))
        ax.text(x, y + 0.03, label, ha="center", va="center", fontsize=9.5, weight="bold")
        ax.text(x, y - 0.045, detail, ha="center", va="center", fontsize=7.5)
    for a, b, connection, line in _ARROWS:
        (xa, ya), (xb, yb) = _BOXES[a][2:4], _BOXES[b][2:4]
        dx, dy = xb - xa, yb - ya
        if "rad" in connection:  # a curved arrow runs below its row, from bottom edge to bottom edge
            start, end = (xa, ya - h / 2 - 0.01), (xb, yb - h / 2 - 0.01)
        else:  # start and end on the box edges: the largest step along (dx, dy) that stays inside a box
            s = min((w / 2 + 0.008) / abs(dx) if dx else float("inf"), (h / 2 + 0.01) / abs(dy) if dy else float("inf"))
            start, end = (xa + s * dx, ya + s * dy), (xb - s * dx, yb - s * dy)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", connectionstyle=connection, linestyle=line,
                                     mutation_scale=12, color="0.25"))
    ax.text(0.475, 0.9, "the generator: all that runs at inference", ha="center", fontsize=10, style="italic")
    ax.text(0.27, 0.22, "training only: the generated face is compared with the speaker's\nreal face and judged by "
            "discriminators; the losses train the\ngenerator (stage 2 trains the attention fuser alone)",
            ha="center", va="center", fontsize=9, style="italic", color="0.3")
    ax.set_title("Speech Fusion to Face (SF2F): from a voice to a face", fontsize=12)
    return fig
