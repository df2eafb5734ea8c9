"""A procedural face renderer: PIL polygons on a 4x canvas, box-filtered to 128x128 and aligned like HQ-VoxCeleb's
(the VGG box of recipe §4.3). The shared traits shape the head, the face-only ones colour it; each photo adds pose,
expression, lighting and clothes, and comes `masked` (on white) and `origin` (before a blurred scene)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from sf2f.data.synthetic.traits import AGE_RANGE, Identity

__all__ = ["FACE_SIZE", "FaceShape", "face_shape", "render_face"]

FACE_SIZE = 128
_SUPERSAMPLE = 4
_CX, _CY = 64.0, 66.0  # the face centre, in design coordinates (pixels of the 128x128 image)

_SKIN = np.array([(246, 218, 196), (224, 178, 140), (176, 120, 82), (110, 72, 50), (72, 46, 34)], dtype=float)
_HAIR = {
    "black": (32, 28, 27), "brown": (98, 64, 40), "blonde": (214, 178, 110), "red": (168, 72, 34),
    "auburn": (118, 48, 36),
}
_EYES = {"brown": (92, 56, 30), "blue": (70, 122, 182), "green": (78, 128, 82), "grey": (118, 128, 140)}
_GREY_HAIR = np.array((205.0, 203.0, 200.0))
_CLOTHES = ((40, 60, 110), (150, 30, 40), (30, 90, 60), (60, 60, 65), (200, 200, 205), (120, 90, 60), (90, 40, 110),
            (20, 20, 25), (210, 160, 50), (70, 130, 160))
_FRAMES = ((20, 20, 20), (90, 55, 30), (190, 160, 80), (170, 175, 180))
# backdrop colour pairs and clutter palettes of the four scenes (face-only trait `background`)
_SCENES = {
    "studio": ((70, 80, 100), (150, 160, 175), ((230, 230, 240), (120, 140, 200), (200, 190, 160))),
    "office": ((190, 180, 160), (150, 140, 120), ((110, 80, 50), (60, 70, 90), (220, 220, 215), (160, 40, 40))),
    "outdoor": ((140, 180, 225), (80, 120, 60), ((40, 90, 40), (90, 140, 60), (120, 100, 70), (240, 240, 250))),
    "stage": ((20, 15, 35), (60, 20, 50), ((250, 200, 80), (80, 160, 250), (240, 80, 160), (250, 250, 250))),
}


def _mix(a: np.ndarray | tuple, b: np.ndarray | tuple, t: float) -> tuple[int, int, int]:
    c = (1.0 - t) * np.asarray(a, dtype=float) + t * np.asarray(b, dtype=float)
    return tuple(int(round(v)) for v in np.clip(c, 0, 255))


def _scaled(colour: tuple | np.ndarray, factor: float) -> tuple[int, int, int]:
    return tuple(int(round(v)) for v in np.clip(np.asarray(colour, dtype=float) * factor, 0, 255))


@dataclass(frozen=True)
class FaceShape:
    """Everything fixed about one person's face (design units: pixels of the 128x128 image)."""

    half_width: float
    half_height: float
    jaw_taper: float  # how much the jaw narrows towards the chin
    jaw_power: float  # high: square jaw (men), low: pointed chin
    eye_spacing: float
    eye_size: float
    brow_thickness: float
    brow_arch: float
    nose_width: float
    nose_length: float
    mouth_width: float
    lip_fullness: float
    neck_width: float
    shoulder_width: float
    skin: tuple[int, int, int]
    lips: tuple[int, int, int]
    hair: tuple[int, int, int]
    iris: tuple[int, int, int]
    frame: tuple[int, int, int]
    round_glasses: bool
    stubble: float  # alpha of the shaved-beard shadow (men)
    wrinkles: float  # 0 (young) .. 1 (old)
    recession: float  # receding hairline, 0 .. 1
    hair_volume: float


def face_shape(person: Identity, rng: np.random.Generator) -> FaceShape:
    """The identity-level face of `person`; `rng` is the person's own face stream."""
    male = person.sex == "m"
    ageing = float(np.clip((person.age - 30.0) / (AGE_RANGE[1] - 30.0), 0.0, 1.0))
    size = person.size

    def jitter(sd: float) -> float:
        return float(np.exp(rng.normal(0.0, sd)))

    tone = person.skin_tone * (len(_SKIN) - 1)
    lo = min(int(tone), len(_SKIN) - 2)
    skin = _mix(_SKIN[lo], _SKIN[lo + 1], tone - lo)
    skin = _mix(skin, (200, 185, 160), 0.12 * ageing)  # older skin is a little paler and yellower
    greying = max(person.age - 32.0, 0.0) / 40.0
    grey = float(np.clip(greying**1.2 * rng.uniform(0.7, 1.3), 0.0, 0.95))
    # larger people have fuller, rounder lower faces; age adds a little jowl
    jaw_taper = float(np.clip((0.26 if male else 0.42) - 0.05 * size + 0.04 * ageing + rng.normal(0, 0.03), 0.1, 0.6))
    return FaceShape(
        half_width=(31.5 if male else 28.5) * (1.0 + 0.06 * size) * jitter(0.025),
        half_height=(43.0 if male else 41.0) * (1.0 + 0.02 * size) * jitter(0.02),
        jaw_taper=jaw_taper,
        jaw_power=(2.6 if male else 1.5) * jitter(0.1),
        eye_spacing=0.40 * jitter(0.05),
        eye_size=(0.19 if male else 0.22) * jitter(0.07),
        brow_thickness=(2.8 if male else 1.6) * jitter(0.15),
        brow_arch=(0.25 if male else 0.6) * jitter(0.2),
        nose_width=(0.27 if male else 0.22) * (1.0 + 0.05 * size) * jitter(0.08),
        nose_length=(0.30 if male else 0.27) * jitter(0.06),
        mouth_width=(0.36 if male else 0.34) * jitter(0.07),
        lip_fullness=(1.0 if male else 1.35) * jitter(0.12),
        neck_width=(0.68 if male else 0.56) * (1.0 + 0.08 * size),
        shoulder_width=(66.0 if male else 57.0) * (1.0 + 0.07 * size),
        skin=skin,
        lips=_mix(_scaled(skin, 0.8), (185, 60, 70) if not male else (150, 80, 80), 0.45 if not male else 0.25),
        hair=_mix(_HAIR[person.hair_colour], _GREY_HAIR, grey),
        iris=_EYES[person.eye_colour],
        frame=_FRAMES[int(rng.integers(len(_FRAMES)))],
        round_glasses=bool(rng.random() < 0.5),
        stubble=float(rng.uniform(0.06, 0.2)) if male else 0.0,
        wrinkles=ageing,
        recession=float(np.clip(ageing * rng.uniform(0.3, 1.2), 0, 1)) if male else 0.0,
        hair_volume=float(rng.uniform(0.8, 1.2)),
    )


class _Canvas:
    """A supersampled RGB canvas plus a silhouette mask, drawn in design coordinates through a similarity transform."""

    def __init__(self, centre: tuple[float, float], angle_deg: float, scale: float, shift: tuple[float, float]) -> None:
        size = FACE_SIZE * _SUPERSAMPLE
        self.rgb = Image.new("RGB", (size, size), (0, 0, 0))
        self.mask = Image.new("L", (size, size), 0)
        self.draw = ImageDraw.Draw(self.rgb, "RGBA")
        self.draw_mask = ImageDraw.Draw(self.mask)
        a = math.radians(angle_deg)
        self._m = scale * _SUPERSAMPLE * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        self._c = np.asarray(centre)
        self.centre = (centre[0] + shift[0], centre[1] + shift[1])  # where the face centre lands (output pixels)
        self._t = np.asarray(self.centre) * _SUPERSAMPLE
        self.px = scale * _SUPERSAMPLE  # design pixel -> canvas pixel, for line widths

    def points(self, pts: np.ndarray) -> list[tuple[float, float]]:
        out = (np.asarray(pts, dtype=float) - self._c) @ self._m.T + self._t
        return [tuple(p) for p in out]

    def polygon(self, pts: np.ndarray, fill: tuple, silhouette: bool = False) -> None:
        p = self.points(pts)
        self.draw.polygon(p, fill=fill)
        if silhouette:
            self.draw_mask.polygon(p, fill=255)

    def line(self, pts: np.ndarray, fill: tuple, width: float) -> None:
        self.draw.line(self.points(pts), fill=fill, width=max(1, int(round(width * self.px))), joint="curve")


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 40, t0: float = 0.0, t1: float = 2 * math.pi
             ) -> np.ndarray:
    t = np.linspace(t0, t1, n)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _head_outline(shape: FaceShape, t: np.ndarray) -> np.ndarray:
    """The face contour at angles `t`: an egg whose lower half narrows to the jaw (square for a high jaw_power)."""
    s = np.sin(t)
    narrowing = np.where(s > 0, 1.0 - shape.jaw_taper * np.abs(s) ** shape.jaw_power, 1.0 - 0.07 * s**2)
    return np.stack([_CX + shape.half_width * np.cos(t) * narrowing, _CY + shape.half_height * s], axis=1)


def _arc(x0: float, x1: float, y: float, bend: float, n: int = 12) -> np.ndarray:
    """A parabola from x0 to x1 at height y whose middle moves by `bend` (positive: down)."""
    x = np.linspace(x0, x1, n)
    u = (x - x0) / (x1 - x0) * 2 - 1
    return np.stack([x, y + bend * (1 - u**2)], axis=1)


def _band(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    return np.concatenate([lower, upper[::-1]])


def _draw_back_hair(cv: _Canvas, person: Identity, shape: FaceShape) -> None:
    style = person.hair_style
    w, h = shape.half_width * 1.18 * shape.hair_volume, shape.half_height
    if style in ("long", "bob"):
        pad, flare, length = (3, 6, 1.25) if style == "long" else (2, 3, 0.62)
        pts = np.concatenate([_ellipse(_CX, _CY - 0.15 * h, w + pad, h * 0.95, 30, math.pi, 2 * math.pi),
                              [(_CX + w + flare, _CY + length * h), (_CX - w - flare, _CY + length * h)]])
    elif style == "curly":
        t = np.linspace(0, 2 * math.pi, 120)
        r = 1.0 + 0.06 * np.sin(14 * t)
        pts = np.stack([_CX + (w + 8) * r * np.cos(t), _CY - 0.05 * h + (h * 1.0 + 4) * r * np.sin(t) * 0.95], axis=1)
        pts = pts[pts[:, 1] < _CY + 0.55 * h]
    else:
        return
    cv.polygon(pts, shape.hair, silhouette=True)


def _draw_front_hair(cv: _Canvas, person: Identity, shape: FaceShape, rng: np.random.Generator) -> None:
    style = person.hair_style
    w, h = shape.half_width, shape.half_height
    dark = _scaled(shape.hair, 0.72)
    if style == "bald":  # a horseshoe of short hair above the ears
        for side in (-1, 1):
            x_out = _CX + side * w * 1.02
            pts = np.array([(x_out, _CY - 0.35 * h), (x_out - side * 0.16 * w, _CY - 0.55 * h),
                            (x_out - side * 0.22 * w, _CY - 0.35 * h), (x_out - side * 0.06 * w, _CY + 0.02 * h)])
            cv.polygon(pts, _mix(shape.hair, shape.skin, 0.35), silhouette=True)
        return
    top = _CY - h * (1.04 + 0.05 * shape.hair_volume)
    hairline = _CY - h * (0.58 + 0.22 * shape.recession)
    outer = _ellipse(_CX, _CY - 0.05 * h, w * (1.08 + 0.06 * shape.hair_volume), _CY - 0.05 * h - top, 40, math.pi,
                     2 * math.pi)
    # the hairline: temples at ear height, a fringe line over the forehead
    part = float(rng.uniform(-0.25, 0.25)) * w
    fringe_drop = {"bob": 0.25, "curly": 0.12, "long": 0.05}.get(style, 0.0) * h
    inner = np.array([
        (_CX + w * 1.0, _CY - 0.12 * h), (_CX + w * 0.9, hairline + 0.08 * h), (_CX + w * 0.55, hairline + 0.02 * h),
        (_CX + part, hairline + fringe_drop), (_CX - w * 0.55, hairline + 0.02 * h),
        (_CX - w * 0.9, hairline + 0.08 * h), (_CX - w * 1.0, _CY - 0.12 * h)])
    if style == "curly":
        t = np.linspace(math.pi, 2 * math.pi, 60)
        r = 1.0 + 0.07 * np.sin(16 * t) * shape.hair_volume
        crown = _CY - 0.05 * h - top + 4
        outer = np.stack([_CX + w * 1.2 * r * np.cos(t), _CY - 0.05 * h + crown * r * np.sin(t)], axis=1)
    cv.polygon(np.concatenate([outer, inner]), shape.hair, silhouette=True)
    # a few strands, combed back from the hairline, give the hair texture
    for _ in range(6):
        x0 = _CX + float(rng.uniform(-0.7, 0.7)) * w
        strand = np.array([(x0, hairline - 0.05 * h), (x0 * 0.9 + 0.1 * _CX, hairline - 0.3 * h)])
        cv.line(strand, (*dark, 90), 0.6)
    if style in ("long", "bob"):  # side locks framing the face
        length = 1.2 if style == "long" else 0.6
        for side in (-1, 1):
            x_out = _CX + side * w * 1.12
            pts = np.array([(x_out, _CY - 0.3 * h), (x_out - side * 0.2 * w, _CY - 0.2 * h),
                            (x_out - side * 0.08 * w, _CY + length * h), (x_out + side * 0.06 * w, _CY + length * h)])
            cv.polygon(pts, shape.hair, silhouette=True)


def _draw_eye(cv: _Canvas, shape: FaceShape, ex: float, ey: float, openness: float, gaze: tuple, female: bool) -> None:
    ew = shape.eye_size * shape.half_width
    eh = 0.48 * ew * openness
    upper, lower = _arc(ex - ew, ex + ew, ey, -eh, 14), _arc(ex - ew, ex + ew, ey, 0.75 * eh, 14)
    almond = _band(lower, upper)
    if openness > 0.3:
        cv.polygon(almond, (245, 243, 238))
        r = 0.55 * ew
        ix, iy = ex + gaze[0] * 0.35 * ew, ey + gaze[1] * 0.2 * eh
        for radius, n, colour in ((r, 24, shape.iris), (0.45 * r, 16, (15, 12, 12))):  # the iris, then the pupil
            disc = _ellipse(ix, iy, radius, radius, n)
            disc[:, 1] = np.clip(disc[:, 1], ey - eh * 0.95, ey + 0.7 * eh)  # kept inside the almond's opening
            cv.polygon(disc, colour)
        cv.polygon(_ellipse(ix - 0.3 * r, iy - 0.35 * r, 0.18 * r, 0.18 * r, 10), (255, 255, 255, 220))
    cv.line(upper, (30, 22, 20), 1.1 if female else 0.8)
    cv.line(lower, _scaled(shape.skin, 0.75), 0.4)
    if female:  # lashes at the outer corner
        cv.line(np.array([(ex + np.sign(ex - _CX) * ew, ey), (ex + np.sign(ex - _CX) * 1.2 * ew, ey - 0.6 * eh)]),
                (30, 22, 20), 0.7)


def _draw_mouth(cv: _Canvas, shape: FaceShape, my: float, smile: float, opening: float) -> None:
    w = shape.mouth_width * shape.half_width * (1.0 + 0.12 * max(smile, 0))
    lip = 1.6 * shape.lip_fullness
    corner = my - 2.2 * smile  # corners go up with a smile
    gap = opening * 5.0
    upper_top = np.concatenate([[(_CX - w, corner)], _arc(_CX - 0.9 * w, _CX - 0.05 * w, my - lip, -0.4 * lip, 6),
                                _arc(_CX + 0.05 * w, _CX + 0.9 * w, my - lip, -0.4 * lip, 6), [(_CX + w, corner)]])
    mid_upper = _arc(_CX - w, _CX + w, corner, my - corner + 0.6 * smile, 16)
    mid_lower = mid_upper + np.array([0.0, gap])
    lower_bottom = _arc(_CX - w, _CX + w, corner, my - corner + gap + 1.4 * lip + 0.5 * smile, 16)
    if gap > 0.3:
        cv.polygon(_band(mid_upper, mid_lower), (70, 25, 30))
        teeth = _band(mid_upper, mid_upper + np.array([0.0, min(gap, 2.0)]))
        cv.polygon(teeth, (235, 232, 225))
    cv.polygon(_band(mid_upper, upper_top), shape.lips)
    cv.polygon(_band(lower_bottom, mid_lower), _scaled(shape.lips, 1.06))
    cv.line(mid_upper, _scaled(shape.lips, 0.6), 0.45)


def _draw_nose(cv: _Canvas, shape: FaceShape, eye_y: float) -> None:
    nw, nl = shape.nose_width * shape.half_width, shape.nose_length * shape.half_height
    ny = _CY + nl
    shadow = _scaled(shape.skin, 0.72)
    bridge = np.array([(_CX - 0.2 * nw, eye_y + 0.05 * shape.half_height), (_CX - 0.35 * nw, ny - 0.35 * nl),
                       (_CX - 0.75 * nw, ny - 0.05 * nl)])
    cv.line(bridge, (*shadow, 170), 0.8)
    cv.polygon(_ellipse(_CX, ny - 0.02 * shape.half_height, 0.6 * nw, 0.38 * nw, 20, 0, math.pi), (*shadow, 130))
    cv.polygon(_ellipse(_CX + 0.1 * nw, ny - 0.12 * nw, 0.25 * nw, 0.18 * nw, 12), (255, 255, 255, 45))
    for side in (-1, 1):
        nostril = _ellipse(_CX + side * 0.42 * nw, ny + 0.05 * nw, 0.22 * nw, 0.13 * nw, 12)
        cv.polygon(nostril, _scaled(shape.skin, 0.45))


def _draw_person(cv: _Canvas, person: Identity, shape: FaceShape, rng: np.random.Generator) -> None:
    """The whole person in this photo's expression and clothes, back to front, in design coordinates."""
    smile = float(rng.uniform(-0.15, 1.0))  # a slight frown .. a broad smile
    opening = float(rng.uniform(0.1, 0.8)) if rng.random() < 0.35 else 0.0  # of the mouth
    brow_raise = float(rng.uniform(-0.4, 1.0))
    openness = 0.15 if rng.random() < 0.05 else float(rng.uniform(0.75, 1.1))  # of the eyes; 0.15 is a blink
    gaze = (float(rng.uniform(-1, 1)), float(rng.uniform(-0.6, 0.6)))
    w, h = shape.half_width, shape.half_height
    female = person.sex == "f"
    # shoulders in this photo's clothes, and the neck (both wider for men and larger bodies)
    clothes = _CLOTHES[int(rng.integers(len(_CLOTHES)))]
    cv.polygon(_ellipse(_CX, FACE_SIZE + 26, shape.shoulder_width, 38, 50), clothes, silhouette=True)
    nw = shape.neck_width * w
    neck = np.array([(_CX - nw, _CY + 0.45 * h), (_CX + nw, _CY + 0.45 * h), (_CX + nw * 1.12, FACE_SIZE - 6),
                     (_CX - nw * 1.12, FACE_SIZE - 6)])
    cv.polygon(neck, _scaled(shape.skin, 0.86), silhouette=True)
    cv.polygon(_ellipse(_CX, FACE_SIZE - 8, nw * 1.1, 6, 20, 0, math.pi), _scaled(shape.skin, 0.8))
    _draw_back_hair(cv, person, shape)
    for side in (-1, 1):  # the ears, with an inner fold on the outer half of each
        ex = _CX + side * w * 0.96
        cv.polygon(_ellipse(ex, _CY - 0.02 * h, 0.17 * w, 0.24 * h, 20), _scaled(shape.skin, 0.93), silhouette=True)
        t0 = -math.pi / 2 if side > 0 else math.pi / 2
        cv.line(_ellipse(ex + side * 0.03 * w, _CY, 0.08 * w, 0.14 * h, 10, t0, t0 + math.pi),
                _scaled(shape.skin, 0.75), 0.5)
    cv.polygon(_head_outline(shape, np.linspace(0, 2 * math.pi, 72, endpoint=False)), shape.skin, silhouette=True)
    if shape.stubble > 0:  # the shaved-beard shadow of men, from under the nose down to the jaw line
        jaw = _head_outline(shape, np.linspace(0.1 * math.pi, 0.9 * math.pi, 24))
        for lift, alpha in ((0.34, 0.5), (0.4, 1.0)):  # two layers soften the upper edge
            top = _arc(jaw[-1, 0], jaw[0, 0], _CY + lift * h, -0.08 * h, 12)
            cv.polygon(np.concatenate([jaw, top]), (70, 62, 72, int(255 * shape.stubble * alpha)))
    eye_y = _CY - 0.1 * h
    eyes = [(_CX - shape.eye_spacing * w, eye_y), (_CX + shape.eye_spacing * w, eye_y)]
    for ex, _ in eyes:  # cheeks catch a little colour
        cv.polygon(_ellipse(ex, _CY + 0.22 * h, 0.2 * w, 0.12 * h, 16), (220, 90, 90, 28 if female else 14))
    ew = shape.eye_size * w
    if shape.wrinkles > 0.05:
        line = (*_scaled(shape.skin, 0.62), int(255 * min(1.0, 0.25 + 0.7 * shape.wrinkles)))
        for k in range(1 + int(3 * shape.wrinkles)):  # forehead lines
            cv.line(_arc(_CX - 0.42 * w, _CX + 0.42 * w, _CY - h * (0.52 + 0.07 * k), -1.0, 10), line, 0.5)
        for ex, ey in eyes:  # eye bags and crow's feet
            cv.line(_arc(ex - 0.8 * ew, ex + 0.8 * ew, ey + 0.55 * ew, 0.25 * ew, 10), line, 0.45)
            side = 1 if ex > _CX else -1
            for dy in (-0.25, 0.0, 0.25):
                x0 = ex + side * 1.15 * ew
                cv.line(np.array([(x0, ey + dy * ew), (x0 + side * 0.35 * ew, ey + dy * 1.6 * ew)]), line, 0.4)
        for side in (-1, 1):  # nasolabial folds
            x0 = _CX + side * shape.nose_width * w * 1.1
            pts = np.array([(x0, _CY + 0.22 * h), (x0 + side * 0.12 * w, _CY + 0.42 * h),
                            (_CX + side * shape.mouth_width * w * 1.1, _CY + 0.6 * h)])
            cv.line(pts, line, 0.6)
    for ex, ey in eyes:
        _draw_eye(cv, shape, ex, ey, openness, gaze, female)
        brow = _arc(ex - 1.15 * ew, ex + 1.2 * ew, ey - 0.95 * ew - 0.9 - 1.8 * brow_raise, -shape.brow_arch * 3.0, 10)
        # thickest at the inner end (towards the nose), tapering outwards
        taper = np.linspace(1.0, 0.45, 10) if ex > _CX else np.linspace(0.45, 1.0, 10)
        brow_top = brow - np.stack([np.zeros(10), shape.brow_thickness * taper], axis=1)
        cv.polygon(_band(brow, brow_top), _scaled(shape.hair, 0.55 if person.hair_colour != "black" else 1.0))
    _draw_nose(cv, shape, eye_y)
    _draw_mouth(cv, shape, _CY + 0.58 * h, smile, opening)
    _draw_front_hair(cv, person, shape, rng)
    if person.glasses:
        lens = ew * 1.45
        centres = [(ex, ey + 0.5) for ex, ey in eyes]
        for gx, gy in centres:
            if shape.round_glasses:
                rim = _ellipse(gx, gy, lens, lens * 0.9, 36)
            else:
                top, bottom = gy - 0.75 * lens, gy + 0.7 * lens
                x0, x1 = gx - lens, gx + lens
                rim = np.array([(x0, top), (x1, top), (x1, bottom), (x0, bottom), (x0, top)])
            cv.polygon(rim, (200, 220, 235, 40))
            cv.line(rim, shape.frame, 1.1)
            side = 1 if gx > _CX else -1  # the temple arm runs to the ear
            arm = np.array([(gx + side * lens, gy - 0.2 * lens), (_CX + side * w * 0.98, gy - 0.3 * lens)])
            cv.line(arm, shape.frame, 1.0)
        cv.line(_arc(centres[0][0] + lens, centres[1][0] - lens, centres[0][1] - 0.8, -1.0, 6), shape.frame, 1.0)


def _scene(person: Identity, rng: np.random.Generator) -> np.ndarray:
    """The cluttered, out-of-focus background of an `origin` face (float RGB, 128x128x3)."""
    top, bottom, palette = _SCENES[person.background]
    img = Image.new("RGB", (FACE_SIZE, FACE_SIZE))
    ramp = np.linspace(0, 1, FACE_SIZE)[:, None, None]
    img.paste(Image.fromarray(((1 - ramp) * np.array(top) + ramp * np.array(bottom)).repeat(FACE_SIZE, 1)
                              .astype(np.uint8)))
    draw = ImageDraw.Draw(img, "RGBA")
    for _ in range(int(rng.integers(8, 16))):
        colour = (*palette[int(rng.integers(len(palette)))], int(rng.integers(120, 255)))
        x, y = rng.uniform(-10, 138, 2)
        a, b = rng.uniform(6, 40, 2)
        kind = rng.integers(3)
        if kind == 0:
            draw.ellipse((x - a, y - a, x + a, y + a), fill=colour)
        elif kind == 1:
            draw.rectangle((x - a, y - b, x + a, y + b), fill=colour)
        else:
            draw.line((x - a, y - b, x + a, y + b), fill=colour, width=int(rng.integers(2, 6)))
    img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.8, 2.0))))
    return np.asarray(img, dtype=float)


def render_face(person: Identity, shape: FaceShape, rng: np.random.Generator) -> tuple[Image.Image, Image.Image]:
    """One photo of `person`: (masked, origin) 128x128 RGB images; `rng` is this image's own stream."""
    cv = _Canvas((_CX, _CY), angle_deg=float(rng.uniform(-6, 6)), scale=float(rng.uniform(0.95, 1.05)),
                 shift=(float(rng.uniform(-3, 3)), float(rng.uniform(-2.5, 2.5))))
    _draw_person(cv, person, shape, rng)
    # box-filter the supersampled person (premultiplied by its silhouette) down to the output size
    alpha = np.asarray(cv.mask.reduce(_SUPERSAMPLE), dtype=float)[..., None] / 255.0
    premultiplied = Image.composite(cv.rgb, Image.new("RGB", cv.rgb.size), cv.mask)
    person_rgb = np.asarray(premultiplied.reduce(_SUPERSAMPLE), dtype=float)
    # a directional light on a rounded head, and a colour temperature
    y, x = np.mgrid[0:FACE_SIZE, 0:FACE_SIZE].astype(float)
    nx, ny = (x - cv.centre[0]) / 40.0, (y - cv.centre[1]) / 50.0
    angle = float(rng.uniform(0, 2 * math.pi))
    strength = float(rng.uniform(0.08, 0.3))
    light = float(rng.uniform(0.85, 1.1)) * (1.0 + strength * (math.cos(angle) * nx + math.sin(angle) * ny))
    light = (light * (1.0 - 0.12 * np.clip(nx**2 + ny**2, 0.0, 1.5)))[..., None]
    tint = float(rng.uniform(-1.0, 1.0))
    warmth = np.array([1.0 + 0.05 * tint, 1.0, 1.0 - 0.05 * tint])
    person_rgb = person_rgb * light * warmth
    scene = _scene(person, rng) * (0.6 + 0.4 * light) * warmth
    masked = person_rgb + (1.0 - alpha) * 255.0  # on plain white
    origin = person_rgb + (1.0 - alpha) * scene
    return tuple(Image.fromarray(np.clip(np.round(x), 0, 255).astype(np.uint8)) for x in (masked, origin))
