"""Face images: any image file to an RGB face crop at 64 or 128 px (HQ-VoxCeleb's are aligned already, recipe §1.1,
§1.5; raw photos go through MTCNN, :class:`FaceAligner`), the ImageNet normalisation (§1.5), and the VGG box the FaceNet
loss and metrics look at (§4.3)."""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from sf2f.errors import BadInputError, UnavailableError, require_nonempty_file

# mean and std per RGB channel (§1.5): `imagenet` is what every config uses; `standard` exists in the original, unused
IMAGE_NORMS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "standard": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
ImageNorm = Literal["imagenet", "standard"]
# (left, top, right, bottom) fractions of the mean VGGFace2 face box, rounded as the original uses them (§4.3)
VGG_BOX: tuple[float, float, float, float] = (0.235, 0.195, 0.765, 0.915)


def facenet_pytorch(purpose: str) -> ModuleType:
    """facenet-pytorch (MTCNN, InceptionResnetV1 = FaceNet), imported here alone: its metadata pins torch<2.3, numpy<2
    and Pillow<10.3, yet it works with today's, so it is no dependency of sf2f and `make venv` installs it with
    `--no-deps`. Missing, it is an error that says what (`purpose`) needs it and how to install it."""
    try:
        return importlib.import_module("facenet_pytorch")
    except ModuleNotFoundError as exc:
        if exc.name != "facenet_pytorch":
            raise
        raise UnavailableError(f"{purpose} needs facenet-pytorch, which is not installed: `pip install --no-deps "
                               "facenet-pytorch==2.6.0` (without its stale pins; `make venv` does this)") from None


class FaceImageError(BadInputError):
    """An image that gives no face crop, with the reason (it goes into the preparation report)."""


class NoFaceError(FaceImageError):
    """MTCNN found no face (or none above the probability threshold)."""


def _to_rgb(img: Image.Image, background: tuple[int, int, int]) -> tuple[Image.Image, list[str]]:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit or float grey levels: PIL's convert('L') would clip everything above 255 to white
        grey = np.asarray(img, dtype=np.float64)
        top = grey.max() if grey.size else 0.0
        scale = 255.0 if top <= 1.0 else (255.0 / 65535.0 if top > 255.0 else 1.0)
        img = Image.fromarray(np.clip(np.round(grey * scale), 0, 255).astype(np.uint8), "L")
    if mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and "transparency" in img.info):
        composite = Image.alpha_composite(Image.new("RGBA", img.size, (*background, 255)), img.convert("RGBA"))
        return composite.convert("RGB"), [f"{mode} image: transparency composited on {background}"]
    return img.convert("RGB"), [] if mode in ("RGB", "P") else [f"{mode} image converted to RGB"]


def load_image(path: str | Path,
               background: tuple[int, int, int] = (255, 255, 255)) -> tuple[Image.Image, tuple[str, ...]]:
    """Any image PIL reads as RGB (EXIF orientation applied, transparency composited on `background`), with notes of
    what was converted (colour mode, rotation); :class:`FaceImageError` for empty, unreadable or truncated files."""
    path = Path(path)
    require_nonempty_file(path, FaceImageError)
    try:
        with Image.open(path) as opened:
            opened.load()  # decode now: a truncated JPEG fails here, not later in a training worker
            notes = ["rotated by its EXIF orientation"] if opened.getexif().get(0x0112, 1) != 1 else []
            rgb, more = _to_rgb(ImageOps.exif_transpose(opened), background)
            rgb.load()
    except UnidentifiedImageError:
        raise FaceImageError(path, "not an image file PIL can read") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise FaceImageError(path, f"unreadable image ({exc})") from None
    if min(rgb.size) == 0:
        raise FaceImageError(path, f"image has no pixels ({rgb.size[0]}x{rgb.size[1]})")
    return rgb, tuple(notes + more)


def resize_face(img: Image.Image, size: int) -> Image.Image:
    """Squash (not crop) to size x size with PIL bilinear, antialiased as the original's torchvision Resize (§1.5)."""
    return img.resize((size, size), Image.BILINEAR)


def _norm_tensors(norm: str, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if norm not in IMAGE_NORMS:
        raise ValueError(f"unknown image normalisation '{norm}' (known: {', '.join(IMAGE_NORMS)})")
    return tuple(torch.tensor(v, dtype=like.dtype, device=like.device).view(3, 1, 1) for v in IMAGE_NORMS[norm])


def normalize_images(pixels: np.ndarray | torch.Tensor, norm: ImageNorm = "imagenet") -> torch.Tensor:
    """uint8 images (..., H, W, 3) to float (..., 3, H, W): ToTensor's /255, then (x - mean) / std (§1.5)."""
    x = pixels.to(torch.float32) if isinstance(pixels, torch.Tensor) else torch.from_numpy(np.array(pixels, np.float32))
    x = x.movedim(-1, -3) / 255.0
    mean, std = _norm_tensors(norm, x)
    return (x - mean) / std


def to_pixel_range(x: torch.Tensor, norm: ImageNorm = "imagenet") -> torch.Tensor:
    """Normalised images (..., 3, H, W) back to float pixels in [0, 255], differentiably (§3.1, §4.2)."""
    mean, std = _norm_tensors(norm, x)
    return ((x * std + mean) * 255.0).clamp(0, 255)


def denormalize_images(x: torch.Tensor, norm: ImageNorm = "imagenet") -> torch.Tensor:
    """Normalised images (..., 3, H, W) to uint8 as the original displays them: truncated, not rounded (§1.5)."""
    return to_pixel_range(x.detach(), norm).to(torch.uint8)


def vgg_box_slices(height: int, width: int, box: tuple[float, ...] = VGG_BOX) -> tuple[slice, slice]:
    """Rows int(top H)..int(bottom H), columns int(left W)..int(right W), inclusive (§4.3): 64 -> 47 x 34 pixels."""
    left, top, right, bottom = box
    return slice(int(top * height), int(bottom * height) + 1), slice(int(left * width), int(right * width) + 1)


def crop_vgg_box(images: torch.Tensor, box: tuple[float, ...] = VGG_BOX) -> torch.Tensor:
    """The VGG-box crop of images (..., H, W)."""
    rows, cols = vgg_box_slices(images.shape[-2], images.shape[-1], box)
    return images[..., rows, cols]


@dataclass(frozen=True)
class FaceDetection:
    """One MTCNN detection: box (x0, y0, x1, y1), probability, and five landmarks (eyes, nose, mouth corners)."""

    box: tuple[float, float, float, float]
    probability: float
    landmarks: np.ndarray

    @property
    def eye_angle(self) -> float:
        """Degrees by which the line from the left to the right eye tilts down (image y grows downwards)."""
        (lx, ly), (rx, ry) = self.landmarks[0], self.landmarks[1]
        return math.degrees(math.atan2(ry - ly, rx - lx))


class FaceAligner:
    """Detect a face with MTCNN and cut an eye-levelled square around it, for raw photos: centred where the box's
    centre lands after rotating about the eyes, `1 + 2 * margin` times the box's larger side (HQ-VoxCeleb crops show
    some hair and neck); parts outside the photo are black, as in a PIL crop."""

    def __init__(self, margin: float = 0.25, min_probability: float = 0.9, device: str = "cpu") -> None:
        mtcnn = facenet_pytorch("aligning faces with MTCNN (--align-faces)").MTCNN  # a 4 s import: only when used
        self.margin, self.min_probability = margin, min_probability
        self._mtcnn = mtcnn(keep_all=True, device=device)

    def detect(self, img: Image.Image) -> list[FaceDetection]:
        """Every face MTCNN finds, most probable first."""
        boxes, probs, points = self._mtcnn.detect(img, landmarks=True)
        if boxes is None:
            return []
        found = [FaceDetection(tuple(map(float, b)), float(p), np.asarray(l)) for b, p, l in zip(boxes, probs, points)]
        return sorted(found, key=lambda d: -d.probability)

    def align(self, img: Image.Image, detection: FaceDetection, size: int) -> Image.Image:
        """The eye-levelled square crop of one detection, resized to size x size (PIL bilinear)."""
        angle = detection.eye_angle
        eyes = detection.landmarks[:2].mean(axis=0)
        x0, y0, x1, y1 = detection.box
        # where the box centre goes when the photo turns by `angle` (counter-clockwise on screen) about the eyes
        dx, dy = (x0 + x1) / 2 - eyes[0], (y0 + y1) / 2 - eyes[1]
        c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        cx, cy = eyes[0] + c * dx + s * dy, eyes[1] - s * dx + c * dy
        rotated = img.rotate(angle, resample=Image.BICUBIC, center=(float(eyes[0]), float(eyes[1])))
        half = max(x1 - x0, y1 - y0) * (1 + 2 * self.margin) / 2
        square = rotated.crop((round(cx - half), round(cy - half), round(cx + half), round(cy + half)))
        return resize_face(square, size)

    def __call__(self, img: Image.Image, size: int, path: str | Path = "<image>") -> Image.Image:
        """The aligned crop of the most probable face; :class:`NoFaceError` when there is none."""
        found = [d for d in self.detect(img) if d.probability >= self.min_probability]
        if not found:
            raise NoFaceError(path, f"no face found by MTCNN (probability >= {self.min_probability})")
        return self.align(img, found[0], size)
