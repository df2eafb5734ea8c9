"""The pieces of the interactive demo (notebook 07): figures of a generated face and its attention, a face morph, a
speaker's recordings, and whether widgets can be shown (the notebook draws every figure statically too, so a batch run,
which renders no widget, misses nothing)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import Tensor

from sf2f.data.prepared import PreparedSplit
from sf2f.faces import denormalize_images
from sf2f.infer import FaceFromVoice


def widgets_available() -> bool:
    """True in a Jupyter kernel with ipywidgets installed, where controls can be displayed; False in plain Python."""
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def speaker_recordings(split: PreparedSplit, label: int, data_root: str | Path) -> list[Path]:
    """The audio files of identity `label` of a prepared split (its table's paths are relative to `data_root`)."""
    return [Path(data_root) / p for p in split.utterances.iloc[list(split.utterance_rows(label))]["path"]]


def _show(ax: plt.Axes, pixels: np.ndarray, title: str) -> None:
    ax.imshow(pixels)
    ax.set(title=title, xticks=[], yticks=[])
    ax.grid(False)


def face_figure(face: FaceFromVoice, real: np.ndarray | None = None, title: str = "") -> Figure:
    """The real face (uint8 (H, W, 3), when known), the generated one, and for a fuser model its attention over the
    windows: the (N, N) weights, with lines between files, and the share of the fused mix each window provides."""
    panels = (real is not None) + 1 + 2 * (face.attention is not None)
    # the bar chart of window weights gets more room than the square panels
    ratios = [1] * (panels - 1) + [1.6] if face.attention is not None else None
    fig, axes = plt.subplots(1, panels, figsize=(3.0 * panels + 1.0, 3.2), squeeze=False,
                             gridspec_kw={"width_ratios": ratios})
    axes = list(axes[0])
    if real is not None:
        _show(axes.pop(0), real, "real face")
    _show(axes.pop(0), face.pixels(), f"generated ({face.fusion} fusion)")
    if face.attention is not None:
        heat, bars = axes
        n = len(face.speech)
        image = heat.imshow(face.attention.numpy(), cmap="viridis", vmin=0)
        starts = np.flatnonzero(np.diff(face.speech.file_index.numpy())) + 0.5
        for s in starts:
            heat.axhline(s, color="white", lw=1)
            heat.axvline(s, color="white", lw=1)
        heat.set(title="attention: query window -> context", xlabel="context window", ylabel="query window")
        heat.grid(False)
        fig.colorbar(image, ax=heat, fraction=0.046)
        colours = plt.get_cmap("tab10")(face.speech.file_index.numpy() % 10)
        bars.bar(np.arange(n), face.segment_weights.numpy(), color=colours)
        bars.axhline(1 / n, color="grey", ls="--", lw=1, label="uniform 1/N")
        bars.set(title="share of the fused mix (colour = file)", xlabel="window", ylabel="weight")
        bars.legend(fontsize=8)
        for axis in (heat.xaxis, heat.yaxis, bars.xaxis):
            axis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def morph_figure(images: Tensor, weights: Sequence[float], names: tuple[str, str],
                 image_norm: str = "imagenet") -> Figure:
    """A row of faces decoded along the way from one voice embedding to another, (T, 3, H, W) for weights t."""
    pixels = denormalize_images(images, image_norm).permute(0, 2, 3, 1).numpy()
    fig, axes = plt.subplots(1, len(weights), figsize=(1.9 * len(weights), 2.4), squeeze=False)
    for ax, img, t in zip(axes[0], pixels, weights):
        _show(ax, img, f"t = {t:.2f}")
    axes[0][0].set_xlabel(names[0])
    axes[0][-1].set_xlabel(names[1])
    fig.suptitle(f"from {names[0]}'s voice (t = 0) to {names[1]}'s (t = 1)")
    fig.tight_layout()
    return fig
