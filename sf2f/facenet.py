"""facenet-pytorch (MTCNN face detection, InceptionResnetV1 = FaceNet), imported in one place.

facenet-pytorch 2.6.0 pins torch<2.3, numpy<2 and Pillow<10.3 in its metadata yet works with the current stack, so it
cannot be a dependency of the sf2f package (pip would downgrade torch to satisfy the pins): `make venv` installs it
with `--no-deps`. Only the paper profile (FaceNet perceptual loss), face alignment of raw photos and the footprint
estimate need it; the synthetic course runs without it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from sf2f.errors import UnavailableError

__all__ = ["facenet_pytorch"]


def facenet_pytorch(purpose: str) -> ModuleType:
    """The facenet_pytorch module, or an error that says what needs it and how to install it."""
    try:
        return importlib.import_module("facenet_pytorch")
    except ModuleNotFoundError as exc:
        if exc.name != "facenet_pytorch":
            raise
        raise UnavailableError(f"{purpose} needs facenet-pytorch, which is not installed: `pip install --no-deps "
                               "facenet-pytorch==2.6.0` (without its stale pins; `make venv` does this)") from None
