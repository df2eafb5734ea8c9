"""Figures the notebooks and the README share."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

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
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
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
