"""facenet-pytorch (MTCNN face detection, InceptionResnetV1 = FaceNet), imported in one place: its metadata pins
torch<2.3, numpy<2 and Pillow<10.3, yet it works with today's, so it is no dependency of sf2f (pip would downgrade
torch) and `make venv` installs it with `--no-deps`. The synthetic course runs without it.
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
