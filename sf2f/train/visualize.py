"""What a training run looks like: sample grids (real | generated per scale), loss curves, a live plot for notebooks.
The original logs a "GT | low | pred" strip to TensorBoard (recipe §3.2 step 5); here the trainer writes the grids to
`<run>/samples/`, and checkpoints hold weights only (§6 item 17)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor
from torchvision.utils import make_grid

from sf2f.faces import denormalize_images
from sf2f.train.logs import read_log


def sample_grid(real: Tensor, generated: Sequence[Tensor], image_norm: str = "imagenet", pad: int = 2) -> np.ndarray:
    """uint8 (H, W, 3): one row per sample, columns real | generated at each scale (smaller scales enlarged by
    nearest-neighbour to the real face's size, so their blockiness shows)."""
    size = real.shape[-1]
    columns = [real.float().cpu()] + [F.interpolate(g.float().cpu(), size=(size, size)) for g in generated]
    tiles = torch.stack([denormalize_images(c, image_norm) for c in columns], dim=1)  # (n, columns, 3, S, S)
    grid = make_grid(tiles.flatten(0, 1), nrow=len(columns), padding=pad, pad_value=255)
    return grid.permute(1, 2, 0).numpy()


def sample_grid_files(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, file) of every sample grid a run saved, in step order."""
    return [(int(p.stem.split("_")[1]), p) for p in sorted(Path(run_dir, "samples").glob("step_*.png"))]


def _wide(log: pd.DataFrame, split: str) -> pd.DataFrame:
    part = log[log["split"] == split]
    return part.pivot_table(index="step", columns="name", values="value", aggfunc="last").sort_index()


def loss_curves(log: pd.DataFrame | str | Path, fig: Figure | None = None) -> Figure:
    """The training losses (one panel per family: L1, perceptual, generator GAN / AC, discriminators) and the
    validation metrics of a run's long-form log (a DataFrame or the run folder)."""
    log = read_log(log) if not isinstance(log, pd.DataFrame) else log
    train, val = _wide(log, "train"), _wide(log, "val")
    families = {
        "L1 (image space)": [c for c in train if c.startswith("l1_")],
        "perceptual": [c for c in train if c.startswith("perceptual_")],
        "generator adversarial + identity": [c for c in train if c.startswith("g_") and c != "g_total"],
        "discriminators": [c for c in train if c.startswith("d_") and c != "d_total"],
        "validation": [c for c in val],
    }
    families = {k: v for k, v in families.items() if v}
    fig = fig or plt.figure(figsize=(4.2 * max(1, len(families)), 3.3))
    fig.clear()
    axes = fig.subplots(1, max(1, len(families)), squeeze=False)[0]
    for ax, (title, columns) in zip(axes, families.items()):
        table = val if title == "validation" else train
        for column in columns:
            series = table[column].dropna()
            ax.plot(series.index, series.values, marker="o" if len(series) < 12 else None, ms=3, label=column)
        ax.set(title=title, xlabel="step")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


class LiveLossPlot:
    """A trainer callback that redraws the loss curves in a notebook every `every` steps and at the end."""

    def __init__(self, every: int = 20) -> None:
        self.every = every
        self.figure: Figure | None = None
        self._handle: Any = None

    def __call__(self, trainer: Any, step: int) -> None:
        if step % self.every == 0 or step == trainer.total_steps:
            self.redraw(read_log(trainer.run_dir))

    def redraw(self, log: pd.DataFrame) -> None:
        if log.empty:
            return
        from IPython.display import display

        self.figure = loss_curves(log, self.figure)
        if self._handle is None:
            self._handle = display(self.figure, display_id=True)
            plt.close(self.figure)  # shown through the display handle only, not again at the end of the cell
        else:
            self._handle.update(self.figure)
