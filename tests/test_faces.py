"""sf2f.faces: reading any image as RGB, the original's resize and normalisation (§1.5), the VGG box (§4.3), MTCNN."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_data import face_image
from PIL import Image
from torchvision import transforms as T

from sf2f import faces
from sf2f.faces import FaceImageError, NoFaceError


@pytest.fixture
def photo() -> Image.Image:
    return face_image(np.random.default_rng(0), (90, 70))


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 0, 0), (0, 0, 10, 20))  # red on the left
    exif = img.getexif()
    exif[0x0112] = 6  # stored rotated: display needs a 90 degree clockwise turn
    img.save(tmp_path / "turned.jpg", exif=exif, quality=100)
    loaded, notes = faces.load_image(tmp_path / "turned.jpg")
    assert loaded.size == (20, 40) and notes == ("rotated by its EXIF orientation",)
    pixels = np.asarray(loaded)
    assert pixels[:8, :, 0].mean() > 200 and pixels[-8:, :, 0].mean() < 60  # the red band is now on top


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "LA", "P", "PA", "I;16", "1"])
def test_every_colour_mode_becomes_rgb(tmp_path: Path, photo: Image.Image, mode: str) -> None:
    suffix = ".jpg" if mode == "CMYK" else ".png"
    if mode == "I;16":
        source = Image.fromarray(np.asarray(photo.convert("L"), dtype=np.uint16) * 257)
        assert source.mode == "I;16"
    elif mode == "PA":
        source = photo.convert("P")
        source.info["transparency"] = 0
    else:
        source = photo.convert(mode)
    if mode in ("RGBA", "LA"):
        source.putalpha(0)
    source.save(tmp_path / f"x{suffix}")
    loaded, notes = faces.load_image(tmp_path / f"x{suffix}", background=(10, 200, 30))
    assert loaded.mode == "RGB" and loaded.size == photo.size
    pixels = np.asarray(loaded).astype(int)
    grey = np.asarray(photo.convert("L")).astype(int)
    if mode in ("RGBA", "LA"):
        assert (pixels == (10, 200, 30)).all() and "transparency" in notes[0]
    elif mode in ("L", "I;16"):
        assert np.abs(pixels[..., 1] - grey).max() <= 1  # a 16-bit image keeps its grey levels, it is not all white
    elif mode == "CMYK":
        assert notes == ("CMYK image converted to RGB",)
        assert np.abs(pixels - np.asarray(photo).astype(int)).mean() < 8


@pytest.mark.parametrize(
    "content, reason", [(b"", "empty file"), (b"<html>not an image</html>", "not an image file")], ids=["empty", "text"]
)
def test_unreadable_images_are_clear_errors(tmp_path: Path, content: bytes, reason: str) -> None:
    (tmp_path / "x.jpg").write_bytes(content)
    with pytest.raises(FaceImageError, match=reason) as info:
        faces.load_image(tmp_path / "x.jpg")
    assert info.value.path.endswith("x.jpg")


def test_truncated_jpeg_is_caught_when_reading_not_when_training(tmp_path: Path, photo: Image.Image) -> None:
    photo.save(tmp_path / "x.jpg", quality=95)
    data = (tmp_path / "x.jpg").read_bytes()
    (tmp_path / "x.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(FaceImageError, match="unreadable image"):
        faces.load_image(tmp_path / "x.jpg")


@pytest.mark.parametrize("size", [64, 128])
def test_resize_and_normalise_are_the_originals_torchvision_transform(photo: Image.Image, size: int) -> None:
    """§1.5: T.Resize([H, W]) on the PIL image (bilinear, squashing), ToTensor, Normalize(ImageNet)."""
    original = T.Compose([T.Resize([size, size]), T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    resized = faces.resize_face(photo, size)
    assert resized.size == (size, size)
    ours = faces.normalize_images(np.asarray(resized))
    torch.testing.assert_close(ours, original(photo), atol=1e-6, rtol=0)
    batch = faces.normalize_images(np.stack([np.asarray(resized)] * 2), "imagenet")
    assert batch.shape == (2, 3, size, size)


def test_denormalise_truncates_like_byte() -> None:
    mean, std = np.array(faces.IMAGE_NORMS["imagenet"][0]), np.array(faces.IMAGE_NORMS["imagenet"][1])
    wanted = np.array([100.7, 254.99, -3.0, 300.0, 0.4])  # pixel values before .byte()
    x = torch.tensor(((wanted[:, None] / 255.0 - mean) / std).T, dtype=torch.float32).view(3, 1, 5)
    out = faces.denormalize_images(x)
    assert out.dtype == torch.uint8
    assert out[0, 0].tolist() == [100, 254, 0, 255, 0]


def test_normalise_round_trip_is_within_one_level(photo: Image.Image) -> None:
    pixels = np.asarray(photo)
    back = faces.denormalize_images(faces.normalize_images(pixels)).permute(1, 2, 0).numpy().astype(int)
    assert np.abs(back - pixels).max() <= 1
    standard = faces.denormalize_images(faces.normalize_images(pixels, "standard"), "standard")
    assert np.abs(standard.permute(1, 2, 0).numpy().astype(int) - pixels).max() <= 1
    with pytest.raises(ValueError, match="unknown image normalisation"):
        faces.normalize_images(pixels, "zscore")  # type: ignore[arg-type]


@pytest.mark.parametrize("size, rows, cols, shape", [(64, (12, 59), (15, 49), (47, 34)), (128, (24, 118), (30, 98), (94, 68))])
def test_vgg_box(size: int, rows: tuple, cols: tuple, shape: tuple) -> None:
    r, c = faces.vgg_box_slices(size, size)
    assert (r.start, r.stop, c.start, c.stop) == (*rows, *cols)
    crop = faces.crop_vgg_box(torch.arange(size * size).view(1, 1, size, size).float())
    assert crop.shape[-2:] == shape
    assert crop[0, 0, 0, 0] == rows[0] * size + cols[0]


@pytest.fixture(scope="module")
def aligner() -> faces.FaceAligner:
    return faces.FaceAligner()


def test_mtcnn_finds_and_levels_the_face_in_a_real_photo(aligner: faces.FaceAligner) -> None:
    skdata = pytest.importorskip("skimage.data")
    photo = Image.fromarray(skdata.astronaut())
    (best, *_) = aligner.detect(photo)
    assert best.probability > 0.99
    x0, y0, x1, y1 = best.box
    assert 150 < x0 < x1 < 300 and 30 < y0 < y1 < 200  # the astronaut's face, upper middle of the 512x512 photo
    crop = aligner(photo, 128)
    assert crop.size == (128, 128)
    (again, *_) = aligner.detect(crop)
    assert again.probability > 0.99 and abs(again.eye_angle) < 1.0 < abs(best.eye_angle)
    ax0, ay0, ax1, ay1 = again.box
    assert abs((ax0 + ax1) / 2 - 64) < 10 and abs((ay0 + ay1) / 2 - 64) < 12  # the face sits in the middle


def test_no_face_is_a_clear_error(aligner: faces.FaceAligner) -> None:
    flat = Image.new("RGB", (200, 200), (120, 130, 140))
    assert aligner.detect(flat) == []
    with pytest.raises(NoFaceError, match="no face found"):
        aligner(flat, 64, "wall.jpg")
