"""The renderer sweep's readings of frames: FaceMesh (plain and refined) on one frame, the
landmark sets, and the pixel readings (eye-region SSIM, the warp's folds, the iris hidden by
a blink, FaceMesh's own mouth error under an image-plane rotation), with their JSON
rounding. Every measured quantity is defined in measure/render_sweep.py's docstring."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from measure.facemesh import FaceTracker, face_measures

# FaceMesh landmarks that move with the skull only: nose bridge and tip, forehead, cheekbones,
# temples (no lips, eyes, brows, jaw line or chin).
STABLE: tuple[int, ...] = (
    *(1, 2, 4, 5, 6, 168, 197, 195, 19, 94, 98, 327, 64, 294, 129, 358),  # nose
    *(10, 151, 9, 8, 108, 337, 67, 297, 109, 338, 69, 299),  # forehead
    *(234, 454, 127, 356, 93, 323, 116, 345, 117, 346, 123, 352),  # cheekbones
    *(50, 280, 205, 425, 36, 266, 142, 371),  # cheeks
    *(21, 251, 54, 284, 103, 332, 162, 389),  # temples
)
# Both eyes' contours and both brows: the eye region of the identity SSIM.
EYE_REGION: tuple[int, ...] = (
    *(33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173),
    *(263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398),
    *(70, 63, 105, 66, 107, 55, 65, 52, 53, 46),
    *(300, 293, 334, 296, 336, 285, 295, 282, 283, 276),
)
FACE_BOX: tuple[int, ...] = (10, 152, 234, 454)  # forehead, chin, both sides: the sheets' crop


def r4(values: Sequence[float] | np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), 4) for v in values]


def nan_to_none(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 4)


@dataclass
class Reading:
    """FaceMesh on one frame: plain mesh (3D landmarks, mouth, pose) and refined eyes."""

    plain: np.ndarray | None  # (468, 3) pixels, z scaled like x
    refined: np.ndarray | None  # (478, 3)

    @property
    def found(self) -> bool:
        return self.plain is not None

    @property
    def mouth(self) -> float:
        return face_measures(self.plain)[0] if self.plain is not None else float("nan")

    @property
    def eyes(self) -> float:
        """The refined mesh's eye opening (nan where it found no face)."""
        return face_measures(self.refined)[2] if self.refined is not None else float("nan")

    @property
    def eyes_plain(self) -> float:
        return face_measures(self.plain)[2] if self.plain is not None else float("nan")


class Reader:
    """Static-mode FaceMesh, plain and refined, over single frames."""

    def __init__(self) -> None:
        self.plain = FaceTracker(static=True, refine=False)
        self.refined = FaceTracker(static=True, refine=True)

    def close(self) -> None:
        self.plain.close()
        self.refined.close()

    def read(self, rgb: np.ndarray) -> Reading:
        return Reading(self.plain.landmarks_3d(rgb), self.refined.landmarks_3d(rgb))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two grey (or RGB, converted) uint8 images of one shape (Wang et al. 2004:
    Gaussian window sigma 1.5, C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = 255)."""
    if a.shape != b.shape:
        raise ValueError(f"SSIM of images of different shapes {a.shape} and {b.shape}")
    if a.ndim == 3:
        a = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY)
        b = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    x, y = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(img: np.ndarray) -> np.ndarray:
        return np.asarray(cv2.GaussianBlur(img, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT))

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    num = (2 * mx * my + c1) * (2 * cxy + c2)
    den = (mx * mx + my * my + c1) * (vx + vy + c2)
    return float(np.mean(num / den))


def region_box(lm: np.ndarray, indices: Sequence[int], margin: float, size: int) -> tuple:
    """(x0, y0, x1, y1) around ``lm[indices]``, widened by ``margin`` of its larger side on
    every side and kept inside a ``size`` square."""
    xy = lm[list(indices), :2]
    lo, hi = xy.min(0), xy.max(0)
    pad = margin * float((hi - lo).max())
    x0, y0 = (max(0, int(v - pad)) for v in lo)
    x1, y1 = (min(size, math.ceil(v + pad)) for v in hi)
    return x0, y0, x1, y1


NOISE_ROLLS = (-0.25, -0.2, -0.15, -0.1, -0.05, 0.05, 0.1, 0.15, 0.2, 0.25)


def rotation_noise(reader: Reader, rest_frame: np.ndarray, rest: Reading) -> float:
    """The mouth instrument's own error on a shut mouth under pose: the largest rise of the
    plain mesh's mouth reading over the rest frame's when the rest frame itself is only
    rotated in the image plane (OpenCV, about the face's centre, by ``NOISE_ROLLS``): no
    renderer, no fold, the same mouth. A mouth excess below this is not the renderer's."""
    if rest.plain is None:
        return float("nan")
    cx, cy = (float(v) for v in rest.plain[list(STABLE), :2].mean(0))
    size = rest_frame.shape[1], rest_frame.shape[0]
    worst = -np.inf
    for roll in NOISE_ROLLS:
        matrix = cv2.getRotationMatrix2D((cx, cy), -math.degrees(roll), 1.0)
        turned = cv2.warpAffine(
            rest_frame, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        worst = max(worst, reader.read(turned).mouth - rest.mouth)
    return float(worst)


def fold_fraction(source_map: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """The fraction of ``box``'s pixels (x0, y0, x1, y1) where the backward map (2, S, S:
    each output pixel's source position) has a Jacobian determinant <= 0: the output there
    is sampled mirrored or torn, the warp folded over itself. 0 for a clean warp."""
    sx, sy = (np.asarray(m, np.float64) for m in source_map)
    det = np.gradient(sx, axis=1) * np.gradient(sy, axis=0) - np.gradient(sx, axis=0) * np.gradient(
        sy, axis=1
    )
    x0, y0, x1, y1 = box
    return float(np.mean(det[y0:y1, x0:x1] <= 0))


# Each eye's outline in the refined mesh (a closed polygon), and its lower lid, corner to corner.
EYE_OUTLINES: tuple[tuple[int, ...], ...] = (
    (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7),
    (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249),
)
LOWER_LIDS: tuple[tuple[int, ...], ...] = (
    (33, 7, 163, 144, 145, 153, 154, 155, 133),
    (263, 249, 390, 373, 374, 380, 381, 382, 362),
)
ERASE_MARGIN = 0.1  # of the eye's width: how far past the outline the eye is erased
LASH_WIDTH = 0.05  # of the eye's width (at least 2 px)


def erased_eyes(rest: np.ndarray, refined: np.ndarray) -> np.ndarray:
    """``rest`` with both eyes erased: the eye's outline, widened by ``ERASE_MARGIN`` of its
    width, inpainted from the skin around it (OpenCV Telea), and a lash line drawn along the
    lower lid in the eye region's darkest colour (its 5th percentile). No iris, no crease and
    no lid edge is left inside: a shut eye FaceMesh is given no reason to read as open
    (``blink_erased_fraction`` in the sweep: what FaceMesh reads on this face with no eye)."""
    outline_mask = np.zeros(rest.shape[:2], np.uint8)
    widths = []
    for outline in EYE_OUTLINES:
        pts = refined[list(outline), :2]
        widths.append(float(np.linalg.norm(pts[0] - pts[8])))
        cv2.fillPoly(outline_mask, [np.round(pts).astype(np.int32)], (255,))
    width = float(np.mean(widths))
    darkest = np.percentile(rest[outline_mask > 0], 5, axis=0)
    grow = max(1, round(ERASE_MARGIN * width))
    mask = cv2.dilate(outline_mask, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    out = cv2.inpaint(np.ascontiguousarray(rest), mask, 5, cv2.INPAINT_TELEA)
    colour = tuple(float(c) for c in darkest)
    thickness = max(2, round(LASH_WIDTH * width))
    for lid in LOWER_LIDS:
        pts = np.round(refined[list(lid), :2]).astype(np.int32)
        cv2.polylines(out, [pts], False, colour, thickness, cv2.LINE_AA)
    return np.asarray(out)


def iris_hidden(rest: np.ndarray, frame: np.ndarray, refined: np.ndarray) -> float:
    """The fraction of both irises' pixels that ``frame`` changed from ``rest`` by more than
    half the rest frame's contrast between iris and skin: the pixels' view of a blink,
    independent of FaceMesh's reading of the lids in ``frame``. Iris: the disk of the rest
    frame's refined landmarks (centres 468 and 473, radius the mean distance to 469-472 and
    474-477); skin: a disk of 0.8 that radius, two radii above the iris centre (the upper
    lid). Grey levels. 0 for the rest frame itself."""
    grey_rest = cv2.cvtColor(rest, cv2.COLOR_RGB2GRAY).astype(np.float64)
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float64)
    yy, xx = np.mgrid[: rest.shape[0], : rest.shape[1]]
    fractions = []
    for centre, ring in ((468, range(469, 473)), (473, range(474, 478))):
        cx, cy = (float(v) for v in refined[centre, :2])
        radius = float(
            np.mean([np.linalg.norm(refined[i, :2] - refined[centre, :2]) for i in ring])
        )
        iris = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2
        skin = (xx - cx) ** 2 + (yy - cy + 2 * radius) ** 2 <= (0.8 * radius) ** 2
        if not iris.any() or not skin.any():
            return float("nan")
        contrast = abs(float(grey_rest[skin].mean() - grey_rest[iris].mean()))
        fractions.append(float(np.mean(np.abs(grey[iris] - grey_rest[iris]) > 0.5 * contrast)))
    return float(np.mean(fractions))
