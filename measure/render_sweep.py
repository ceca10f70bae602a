"""The renderer sweep (issue 14, item 6): known motion programs rendered on a portrait and read
back with FaceMesh, the instrument the renderer's head, mouth and eyes are judged by
(``python -m bench.render_sweep``; docs/benchmarks.md, docs/render_sweep.json).

Programs (``head_sweep``, ``expression_sweep``, ``blink``; 25 fps motion frames, smooth
raised-cosine ramps between keyframes, at most ``STEP`` radians a frame):

* head sweep: yaw 0 -> -0.45 -> +0.45 -> 0, pitch to -0.3 / +0.3, roll to -0.25 / +0.25,
  then yaw and pitch together on both diagonals and with roll; every blendshape at 0
  (jawOpen 0 throughout);
* expression sweep: one frame per named expression (``EXPRESSIONS``: jawOpen 0 / 0.3 / 0.6
  / 0.9, rounded, spread, pressed, squint, brows up, brows down, smile, wide eyes) at each
  pose of ``EXPRESSION_POSES`` (head straight, and turned by yaw 0.3), each after the
  neutral face at the same pose;
* blink: eyeBlinkLeft and eyeBlinkRight together 0 -> 1 (held ``BLINK_HOLD`` frames) -> 0.

Every frame is read by FaceMesh in static mode (each frame on its own: no tracking carries a
face over a broken frame), twice: the plain mesh (``refine_landmarks=False``, the mouth
instrument of measure.mouth, and the pose) and the refined one (the eyes: its eye model
follows the lids; the plain mesh's reading is kept beside it). Definitions:

* **face found**: the fraction of the head sweep's frames in which the plain mesh finds a
  face (target >= 0.98). Every other reading is over the frames with a face, so it has to be
  read with this one.
* **measured pose**: the rotation that best carries the rest frame's 3D landmarks onto the
  frame's (Kabsch / Umeyama: a least-squares rotation after removing the centroids; scale
  does not change it), on ``STABLE`` landmarks only (nose, forehead, cheekbones, temples:
  no lips, eyes, brows, jaw or chin), split into yaw, pitch and roll in the renderer's own
  convention (``rotation``: R = R_roll R_yaw R_pitch, image axes x right, y down, z away
  from the camera; positive yaw turns the face to the viewer's right, positive pitch nods
  down, positive roll tilts clockwise). x, y are FaceMesh's pixels; z is MediaPipe's depth
  times the image width (``FaceTracker.landmarks_3d``: its z "uses roughly the same scale
  as x", normalized by the width). The rest frame is the renderer's neutral frame (not the
  photo: the rig's rest offset moves landmarks by a pixel or two).
  Two more readings sit beside it in the JSON: ``pose_2d``, the rotation whose orthographic
  projection of the rest frame's 3D landmarks best fits the frame's 2D landmarks (the
  frame's own FaceMesh depth unused; OpenCV's solvePnP with a focal length 50 image widths
  long, i.e. nearly orthographic, like the renderer), and ``pose_content``, the same 2D fit
  to where the renderer itself moved the rest landmarks' pixels (read off the CPU graph's
  source map: no FaceMesh on the frame at all; ambiguous where the warp folds, since a
  folded map sends one source point to several places).
* **yaw r / slope, pitch r / slope**: Pearson's r of commanded vs measured over every head
  sweep frame with a face (the pitch- and roll-only ramps included, so cross-talk counts),
  and the least-squares slope of measured on commanded (target: yaw r >= 0.95).
* **mouth at jawOpen 0**: the plain mesh's inner-lip gap (13-14) over the face height
  (10-152), as measure.mouth reads it, over the head sweep (jawOpen 0 in every frame)
  minus the rest frame's; the maximum is the **mouth excess**: a fold across the lips
  reads as an open mouth. Target: within ``MOUTH_TOLERANCE`` of the face height (the plain
  mesh's noise on a shut mouth reaches ~0.009, measure.mouth). Beside it: the maximum over
  the frames whose every angle is within ``SMALL`` (``mouth_excess_small``), the smallest
  largest-angle of a frame over the tolerance (``mouth_over_tolerance_from``: where the
  folds start) and the fraction of frames over it. FaceMesh's own error on a shut mouth
  grows with pose, so the JSON keeps ``mouth_noise_rotated``: the largest rise when the rest
  frame is only rotated in the image plane (no renderer at all; ``rotation_noise``); an
  excess below it is the instrument's, not a fold. For scale, the JSON keeps the expression
  sweep's opening at jawOpen 0.3 - 0.9.
* **fold** (the CPU graph only; no target, a diagnostic of today's warp): per head sweep
  frame, the fraction of the face box's pixels where the warp's backward map (the split
  graph's source map) has a Jacobian determinant <= 0, i.e. where the warp folded over
  itself (``fold_fraction``); ``fold_max`` its maximum, ``fold_from`` the smallest
  largest-angle of a frame with more than ``FOLD_MIN`` folded. Renderer-internal, so a
  renderer without a source map has none; it is here because face found and yaw r can pass
  on frames that are visibly torn (FaceMesh finds and fits a face through the tears).
* **blink peak fraction**: the refined mesh's eye opening (lid gap over eye width, both
  eyes' mean) at the blink's commanded peak (the median over the held frames, not the
  minimum over the blink: a minimum would pick FaceMesh's luckiest frame) over the rest
  frame's (target <= 0.25). FaceMesh reads the lids' outline: the renderer's shut lid keeps
  a dark outline of the open eye, which FaceMesh takes for a half-open eye even where the
  iris is hidden, so the JSON keeps a pixel reading beside it, ``iris_hidden`` (the
  fraction of the rest frame's iris disks that the peak frame changed by more than half the
  iris-to-lid contrast: ``iris_hidden``'s docstring). It says whether the iris is covered,
  not whether the eye looks shut; the target stays FaceMesh's.
* **eye SSIM**: SSIM (Gaussian window, sigma 1.5, the usual constants; grey levels) of the
  eye region (both eyes and brows, from the rest frame's landmarks, with a margin) between
  an expression frame and the neutral frame at the same pose. An expression that moves the
  eyes or brows (squint, brows, smile, wide) is meant to change it; the summary
  ``eye_ssim_mouth`` is the minimum over the mouth-only expressions, where the eye region
  should not change at all (identity kept), and ``eye_ssim_min`` the minimum over all; the
  blink's ``eye_ssim_after`` compares the reopened eye (its last frame) with the rest
  frame's. Today's warp leaves the eye region's pixels all but untouched by the mouth
  shapes (docs/benchmarks.md), so these read ~1.0 there; they are for a renderer that
  redraws the whole face.

Sanity checks of the pose reading (``head_sweep.checks``): r and slope of all three pose
readings over the yaw ramp and the pitch ramp alone and over their small angles (|angle| <=
``SMALL``, where the warp does not fold). On today's renderer (numbers in
docs/benchmarks.md) the three agree in sign and r at small angles but not in slope: the
source map says the warp moves the landmarks' pixels by less than the commanded rotation
(the warp's smoothing; on the bundled portrait the rig's own control points, rotated
exactly, fit to 1.0), and FaceMesh's 3D and 2D fits read other fractions again, the 2D fit
the most for yaw and the least for pitch. They differ because FaceMesh's landmarks are not
points of the image's content: the face-oval and cheek points sit on the silhouette and
slide along it (at yaw 0.1 on the bundled portrait the contour point 234 moves 3 px where
the pixels under it moved 9), and FaceMesh's depth on the frame is its own estimate of the
pose. Correlation, the target, does not depend on that much; slopes should be compared
within one reading only.

Contact sheets (``contact_sheet``): the head sweep's keyframes, the mouth (jawOpen 0 / 0.3 /
0.6 / 0.9, rounded, spread, pressed), the other expressions and the blink, as labelled face
crops.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from contracts import motion_frame as mf
from measure.facemesh import FaceTracker, face_measures

if TYPE_CHECKING:
    from engines.frame_renderer import FrameRenderer

STEP = 0.025  # radians per frame at most, on the ramps' mean (a raised cosine peaks at pi/2 of it)
BLINK_RAMP = 4  # frames from open to shut and back
BLINK_HOLD = 3  # frames held shut
MOUTH_TOLERANCE = 0.01  # of the face height: the plain mesh's noise on a shut mouth is ~0.009

TARGETS = {  # what renderer v2 is held to (issue 14)
    "face_found": 0.98,  # >=
    "yaw_r": 0.95,  # >=
    "mouth_excess": MOUTH_TOLERANCE,  # <=
    "blink_peak_fraction": 0.25,  # <=
}

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

# Head sweep keyframes (yaw, pitch, roll), each ramp starting where the last one ended.
HEAD_KEYS: tuple[tuple[str, tuple[tuple[float, float, float], ...]], ...] = (
    ("yaw", ((-0.45, 0.0, 0.0), (0.45, 0.0, 0.0), (0.0, 0.0, 0.0))),
    ("pitch", ((0.0, -0.3, 0.0), (0.0, 0.3, 0.0), (0.0, 0.0, 0.0))),
    ("roll", ((0.0, 0.0, -0.25), (0.0, 0.0, 0.25), (0.0, 0.0, 0.0))),
    (
        "yaw+pitch",
        (
            (0.45, 0.3, 0.0),
            (-0.45, -0.3, 0.0),
            (-0.45, 0.3, 0.0),
            (0.45, -0.3, 0.0),
            (0.0, 0.0, 0.0),
        ),
    ),
    ("yaw+pitch+roll", ((0.3, 0.2, 0.15), (-0.3, -0.2, -0.15), (0.0, 0.0, 0.0))),
)
# The head sweep's frames shown on the contact sheet: (label, yaw, pitch, roll).
SHEET_POSES: tuple[tuple[str, float, float, float], ...] = (
    ("yaw -0.45", -0.45, 0.0, 0.0),
    ("yaw -0.3", -0.3, 0.0, 0.0),
    ("yaw -0.15", -0.15, 0.0, 0.0),
    ("rest", 0.0, 0.0, 0.0),
    ("yaw +0.15", 0.15, 0.0, 0.0),
    ("yaw +0.3", 0.3, 0.0, 0.0),
    ("yaw +0.45", 0.45, 0.0, 0.0),
    ("pitch -0.3", 0.0, -0.3, 0.0),
    ("pitch +0.3", 0.0, 0.3, 0.0),
    ("roll -0.25", 0.0, 0.0, -0.25),
    ("roll +0.25", 0.0, 0.0, 0.25),
    ("y+.45 p+.3", 0.45, 0.3, 0.0),
    ("y-.45 p-.3", -0.45, -0.3, 0.0),
    ("y-.45 p+.3", -0.45, 0.3, 0.0),
)

EXPRESSIONS: dict[str, dict[str, float]] = {
    "neutral": {},
    "jaw 0.3": {"jawOpen": 0.3},
    "jaw 0.6": {"jawOpen": 0.6},
    "jaw 0.9": {"jawOpen": 0.9},
    "rounded": {"mouthFunnel": 0.7, "mouthPucker": 0.7, "jawOpen": 0.15},
    "spread": {
        "mouthStretchLeft": 0.7,
        "mouthStretchRight": 0.7,
        "mouthSmileLeft": 0.3,
        "mouthSmileRight": 0.3,
    },
    "pressed": {"mouthPressLeft": 0.8, "mouthPressRight": 0.8, "mouthClose": 0.4},
    "squint": {"eyeSquintLeft": 0.8, "eyeSquintRight": 0.8},
    "brows up": {"browInnerUp": 0.8, "browOuterUpLeft": 0.4, "browOuterUpRight": 0.4},
    "brows down": {"browDownLeft": 0.8, "browDownRight": 0.8},
    "smile": {
        "mouthSmileLeft": 0.8,
        "mouthSmileRight": 0.8,
        "eyeSquintLeft": 0.4,  # the cheeks' raise (the motion frame has no cheekSquint)
        "eyeSquintRight": 0.4,
    },
    "wide": {"eyeWideLeft": 0.8, "eyeWideRight": 0.8},
}
MOUTH_ONLY = ("jaw 0.3", "jaw 0.6", "jaw 0.9", "rounded", "spread", "pressed")
MOUTH_SHEET = ("neutral", "jaw 0.3", "jaw 0.6", "jaw 0.9", "rounded", "spread", "pressed")
EXPRESSION_POSES: dict[str, tuple[float, float, float]] = {
    "straight": (0.0, 0.0, 0.0),
    "turned": (0.3, 0.0, 0.0),
}


# --- programs ------------------------------------------------------------------------------


def head_pose_frame(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """A neutral motion frame with the head at (yaw, pitch, roll)."""
    return mf.from_dict({"headYaw": yaw, "headPitch": pitch, "headRoll": roll})


def _ramp(start: np.ndarray, end: np.ndarray, step: float) -> Iterator[np.ndarray]:
    """Raised-cosine frames from ``start`` (excluded) to ``end`` (included)."""
    n = max(1, math.ceil(float(np.abs(end - start).max()) / step))
    for k in range(1, n + 1):
        w = 0.5 - 0.5 * math.cos(math.pi * k / n)
        yield start + w * (end - start)


def head_sweep(step: float = STEP) -> tuple[np.ndarray, list[str]]:
    """The head sweep: (n, DIM) motion frames, rest first, and each frame's segment name."""
    frames, segments = [mf.neutral()], ["rest"]
    pose = np.zeros(3)
    for name, keys in HEAD_KEYS:
        for key in keys:
            target = np.array(key)
            for p in _ramp(pose, target, step):
                frames.append(head_pose_frame(*map(float, p)))
                segments.append(name)
            pose = target
    return mf.clip(np.stack(frames)), segments


def expression_sweep() -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Every expression at every pose of ``EXPRESSION_POSES`` (the neutral face first at each):
    (n, DIM) motion frames and each frame's (pose, expression)."""
    frames, labels = [], []
    for pose_name, pose in EXPRESSION_POSES.items():
        for name, values in EXPRESSIONS.items():
            frame = mf.from_dict(values)
            frame[mf.HEAD_SLICE][:3] = pose
            frames.append(frame)
            labels.append((pose_name, name))
    return mf.clip(np.stack(frames)), labels


def blink() -> tuple[np.ndarray, np.ndarray]:
    """Both eyes 0 -> 1 (held) -> 0 with open frames either side: (n, DIM) motion frames and
    the commanded blink per frame."""
    up = [0.5 - 0.5 * math.cos(math.pi * k / BLINK_RAMP) for k in range(1, BLINK_RAMP + 1)]
    values = [0.0, 0.0, *up, *[1.0] * (BLINK_HOLD - 1), *up[::-1][1:], 0.0, 0.0]
    frames = np.stack([mf.from_dict({"eyeBlinkLeft": v, "eyeBlinkRight": v}) for v in values])
    return frames, np.array(values)


# --- geometry ------------------------------------------------------------------------------


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The renderer's head rotation (export/renderer.py ``_rotation``) in numpy: image axes
    (x right, y down, z away from the camera), R = R_roll @ R_yaw @ R_pitch."""
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    r_yaw = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    r_roll = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return r_roll @ r_yaw @ r_pitch


def euler(rot: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) of a rotation made by ``rotation`` (the inverse for |yaw| < pi/2)."""
    yaw = math.asin(float(np.clip(rot[2, 0], -1.0, 1.0)))
    pitch = math.atan2(float(rot[2, 1]), float(rot[2, 2]))
    roll = math.atan2(float(rot[1, 0]), float(rot[0, 0]))
    return yaw, pitch, roll


def rigid_rotation(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The rotation R minimizing sum |R (s_i - s) - (t_i - t)|^2 over (n, 3) point sets
    (Kabsch; Umeyama's similarity has the same rotation), s and t their centroids."""
    a = source - source.mean(0)
    b = target - target.mean(0)
    u, _, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    return np.asarray(u @ np.diag([1.0, 1.0, d]) @ vt)


def projected_rotation(source: np.ndarray, target_xy: np.ndarray) -> np.ndarray:
    """The rotation whose (nearly orthographic) projection of the (n, 3) points ``source``
    best fits the (n, 2) image points ``target_xy`` (OpenCV's solvePnP, focal length 50x the
    points' spread, started from no rotation)."""
    obj = (source - source.mean(0)).astype(np.float64)
    span = float(np.ptp(obj[:, :2], axis=0).max())
    focal = 50.0 * max(span, 1.0)
    centre = target_xy.mean(0).astype(np.float64)
    camera = np.array([[focal, 0, centre[0]], [0, focal, centre[1]], [0, 0, 1]], np.float64)
    ok, rvec, _ = cv2.solvePnP(
        obj,
        target_xy.astype(np.float64),
        camera,
        np.zeros(4),
        rvec=np.zeros((3, 1)),
        tvec=np.array([[0.0], [0.0], [focal]]),
        useExtrinsicGuess=True,
        flags=cv2.SOLVEPNP_ITERATIVE,
    )
    if not ok:
        return np.full((3, 3), np.nan)
    rot, _ = cv2.Rodrigues(rvec)
    return np.asarray(rot)


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


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r (nan for fewer than 3 points or no spread)."""
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of y on x."""
    if len(x) < 2 or np.var(x) == 0:
        return float("nan")
    return float(np.cov(x, y, bias=True)[0, 1] / np.var(x))


# --- reading frames ------------------------------------------------------------------------


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


def content_points(source_map: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Where the warp put source pixels ``points`` (n, 2): for each, the output pixel whose
    source-map entry (2, S, S) is nearest, refined to sub-pixel by the map's local Jacobian.
    Where the map folds, a point has several images and this returns one of them."""
    sx, sy = source_map[0].astype(np.float32), source_map[1].astype(np.float32)
    size = sx.shape[0]
    out = np.empty((len(points), 2))
    for i, (px, py) in enumerate(points):
        d = (sx - px) ** 2 + (sy - py) ** 2
        y, x = divmod(int(np.argmin(d)), size)
        xc, yc = min(max(x, 1), size - 2), min(max(y, 1), size - 2)
        jac = 0.5 * np.array(
            [
                [sx[yc, xc + 1] - sx[yc, xc - 1], sx[yc + 1, xc] - sx[yc - 1, xc]],
                [sy[yc, xc + 1] - sy[yc, xc - 1], sy[yc + 1, xc] - sy[yc - 1, xc]],
            ],
            np.float64,
        )
        residual = np.array([px - sx[y, x], py - sy[y, x]], np.float64)
        delta = np.zeros(2)
        if abs(np.linalg.det(jac)) > 1e-6:
            delta = np.clip(np.linalg.solve(jac, residual), -1.0, 1.0)
        out[i] = (x + delta[0], y + delta[1])
    return out


# --- the sweep -----------------------------------------------------------------------------


@dataclass
class SweepResult:
    """One portrait's sweep: the JSON-ready record and the frames for its contact sheet."""

    record: dict[str, Any]
    sheet_frames: dict[str, list[tuple[str, np.ndarray]]] = field(default_factory=dict)
    face_box: tuple[int, int, int, int] = (0, 0, 0, 0)


def _render(renderer: FrameRenderer, motion: np.ndarray, batch: int = 8) -> Iterator[np.ndarray]:
    for start in range(0, len(motion), batch):
        yield from renderer.render(motion[start : start + batch])


def _r4(values: Sequence[float] | np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), 4) for v in values]


def _nan_to_none(value: float) -> float | None:
    return None if not np.isfinite(value) else round(float(value), 4)


def run_sweep(renderer: FrameRenderer, step: float = STEP) -> SweepResult:
    """Render the three programs through ``renderer`` and measure them (see the module
    docstring for every definition)."""
    reader = Reader()
    try:
        return _run(renderer, reader, step)
    finally:
        reader.close()


def _run(renderer: FrameRenderer, reader: Reader, step: float) -> SweepResult:
    motion, segments = head_sweep(step)
    sheet_at = sheet_frames_of(motion)
    sheet_head: dict[int, np.ndarray] = {}
    readings: list[Reading] = []
    for k, frame in enumerate(_render(renderer, motion)):
        readings.append(reader.read(frame))
        if k in sheet_at.values():
            sheet_head[k] = frame
    rest_frame = sheet_head[0]
    rest = readings[0]
    if rest.plain is None:
        raise RuntimeError("FaceMesh found no face in the rest frame: nothing to measure against")
    size = rest_frame.shape[0]
    commanded = motion[:, mf.HEAD_SLICE][:, :3].astype(np.float64)
    found = np.array([r.found for r in readings])

    pose_3d = np.full((len(motion), 3), np.nan)
    pose_2d = np.full((len(motion), 3), np.nan)
    stable = list(STABLE)
    for k, r in enumerate(readings):
        if r.plain is None:
            continue
        pose_3d[k] = euler(rigid_rotation(rest.plain[stable], r.plain[stable]))
        pose_2d[k] = euler(projected_rotation(rest.plain[stable], r.plain[stable, :2]))
    face_box = region_box(rest.plain, FACE_BOX, 0.18, size)
    pose_content, fold = _from_source_maps(renderer, motion, rest.plain[stable], face_box)

    mouth = np.array([r.mouth for r in readings])
    excess = mouth - rest.mouth
    ok = found
    head: dict[str, Any] = {
        "frames": len(motion),
        "face_found": float(found.mean()),
    }
    for name, measured in (("3d", pose_3d), ("2d", pose_2d), ("content", pose_content)):
        have = np.isfinite(measured[:, 0])
        for axis, i in (("yaw", 0), ("pitch", 1), ("roll", 2)):
            head[f"{axis}_r_{name}"] = _nan_to_none(pearson(commanded[have, i], measured[have, i]))
            head[f"{axis}_slope_{name}"] = _nan_to_none(
                slope(commanded[have, i], measured[have, i])
            )
    head["checks"] = pose_checks(commanded, segments, pose_3d, pose_2d, pose_content)
    head["mouth_rest"] = round(float(rest.mouth), 4)
    head["mouth_excess"] = _nan_to_none(float(np.nanmax(excess[ok])) if ok.any() else np.nan)
    worst = int(np.nanargmax(np.where(ok, excess, -np.inf))) if ok.any() else 0
    head["mouth_excess_at"] = [round(float(v), 3) for v in commanded[worst]]
    largest = np.abs(commanded).max(1)
    small = ok & (largest <= SMALL)
    head["mouth_excess_small"] = _nan_to_none(
        float(np.nanmax(excess[small])) if small.any() else np.nan
    )
    over = ok & (excess > MOUTH_TOLERANCE)
    head["mouth_over_tolerance_from"] = round(float(largest[over].min()), 3) if over.any() else None
    head["mouth_noise_rotated"] = _nan_to_none(rotation_noise(reader, rest_frame, rest))
    head["mouth_over_tolerance"] = float(np.mean(excess[ok] > MOUTH_TOLERANCE)) if ok.any() else 1.0
    folded = np.nan_to_num(fold) > FOLD_MIN
    head["fold_max"] = _nan_to_none(float(np.max(fold)))
    head["fold_from"] = round(float(largest[folded].min()), 3) if folded.any() else None
    head["fold_frames"] = round(float(np.mean(folded)), 4)
    head["per_frame"] = {
        "segment": segments,
        "commanded": [[round(float(v), 4) for v in c] for c in commanded],
        "face": [bool(f) for f in found],
        "pose_3d": [_r4(p) for p in pose_3d],
        "pose_2d": [_r4(p) for p in pose_2d],
        "pose_content": [_r4(p) for p in pose_content],
        "mouth": _r4(mouth),
        "fold": _r4(fold),
    }

    eye_box = region_box(rest.plain, EYE_REGION, 0.12, size)
    expressions, sheet_expr = _expressions(renderer, reader, eye_box, size)
    blink_record, sheet_blink = _blink(renderer, reader, rest, rest_frame, eye_box)

    summary = {
        "face_found": head["face_found"],
        "yaw_r": head["yaw_r_3d"],
        "yaw_slope": head["yaw_slope_3d"],
        "pitch_r": head["pitch_r_3d"],
        "pitch_slope": head["pitch_slope_3d"],
        "roll_r": head["roll_r_3d"],
        "mouth_excess": head["mouth_excess"],
        "mouth_noise_rotated": head["mouth_noise_rotated"],
        "fold_max": head["fold_max"],
        "fold_from": head["fold_from"],
        "blink_peak_fraction": blink_record["peak_fraction"],
        "iris_hidden": blink_record["iris_hidden"],
        "eye_ssim_mouth": expressions["eye_ssim_mouth"],
        "eye_ssim_min": expressions["eye_ssim_min"],
    }
    record = {
        "summary": summary,
        "targets": verdicts(summary),
        "head_sweep": head,
        "expressions": expressions,
        "blink": blink_record,
    }
    sheet = {
        "head": [(label, sheet_head[k]) for label, k in sheet_at.items()],
        **sheet_expr,
        "blink": sheet_blink,
    }
    return SweepResult(record, sheet, face_box)


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


FOLD_MIN = 0.001  # of the face box's pixels: a frame with more folded pixels counts as folded
SMALL = 0.15  # radians: the head sweep's "clean" range, where the warp does not fold


def pose_checks(
    commanded: np.ndarray,
    segments: Sequence[str],
    *readings: np.ndarray,
) -> dict[str, dict[str, float | None]]:
    """The pose readings (3d, 2d, content) checked against each other: r and slope of yaw
    over the yaw ramp alone and over its small angles (|yaw| <= ``SMALL``), of pitch over the
    pitch ramp alone and over its small angles."""
    seg = np.array(segments)
    out: dict[str, dict[str, float | None]] = {}
    for axis, i in (("yaw", 0), ("pitch", 1)):
        ramp = (seg == axis) | (seg == "rest")
        for name, mask in (
            (axis, ramp),
            (f"{axis}_small", ramp & (np.abs(commanded[:, i]) <= SMALL)),
        ):
            row: dict[str, float | None] = {}
            for label, measured in zip(("3d", "2d", "content"), readings, strict=True):
                have = mask & np.isfinite(measured[:, i])
                row[f"r_{label}"] = _nan_to_none(pearson(commanded[have, i], measured[have, i]))
                row[f"slope_{label}"] = _nan_to_none(slope(commanded[have, i], measured[have, i]))
            out[name] = row
    return out


def sheet_frames_of(motion: np.ndarray) -> dict[str, int]:
    """The head sweep's frame nearest each pose of ``SHEET_POSES``, labelled with what that
    frame commands (the rest frame is frame 0)."""
    pose = motion[:, mf.HEAD_SLICE][:, :3]
    out: dict[str, int] = {}
    for label, *target in SHEET_POSES:
        k = 0 if label == "rest" else int(np.argmin(np.abs(pose - np.array(target)).sum(1)))
        y, p, r = (float(v) for v in pose[k])
        if label != "rest":
            parts = [f"{n} {v:+.2f}" for n, v in (("y", y), ("p", p), ("r", r)) if abs(v) > 1e-3]
            label = " ".join(parts)
        out[label] = k
    return out


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


def _from_source_maps(
    renderer: FrameRenderer, motion: np.ndarray, rest_3d: np.ndarray, box: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """``pose_content`` and ``fold`` per frame (nan throughout for a whole-frame graph, which
    has no source map): where the warp put the rest frame's stable landmarks, relative to
    where it puts them at rest, fitted like ``pose_2d``; and ``fold_fraction`` in ``box``."""
    pose = np.full((len(motion), 3), np.nan)
    fold = np.full(len(motion), np.nan)
    if "source_map" not in renderer.engine.output_names:
        return pose, fold
    source = _source_points(renderer, rest_3d[:, :2])
    base: np.ndarray | None = None
    for start in range(0, len(motion), 8):
        chunk = motion[start : start + 8].astype(np.float32)
        inputs = {k: np.repeat(v, len(chunk), 0) for k, v in renderer.inputs.items()}
        maps = renderer.engine.run({**inputs, "motion": chunk})["source_map"]
        for j in range(len(chunk)):
            points = content_points(maps[j], source)
            rot = projected_rotation(rest_3d, points)
            if base is None:  # the rest frame (the program's first) is the reference
                base = rot
            pose[start + j] = euler(rot @ base.T)
            fold[start + j] = fold_fraction(maps[j], box)
    return pose, fold


def _source_points(renderer: FrameRenderer, rest_xy: np.ndarray) -> np.ndarray:
    """The source pixels that the rest frame shows at ``rest_xy`` (the rest frame's FaceMesh
    positions mapped back through the rest frame's own source map)."""
    rest = mf.neutral()[None]
    maps = renderer.engine.run({**renderer.inputs, "motion": rest})["source_map"][0]
    size = maps.shape[1]
    out = np.empty_like(rest_xy, dtype=np.float64)
    for i, (x, y) in enumerate(rest_xy):
        xi = int(np.clip(round(float(x)), 0, size - 1))
        yi = int(np.clip(round(float(y)), 0, size - 1))
        out[i] = (maps[0, yi, xi], maps[1, yi, xi])
    return out


def _expressions(
    renderer: FrameRenderer, reader: Reader, eye_box: tuple[int, int, int, int], size: int
) -> tuple[dict[str, Any], dict[str, list[tuple[str, np.ndarray]]]]:
    """The expression sweep's readings; each pose's eye region is boxed on its own neutral
    frame's landmarks (the straight rest frame's box where FaceMesh finds no face there)."""
    motion, labels = expression_sweep()
    per_pose: dict[str, dict[str, dict[str, Any]]] = {}
    neutral: dict[str, np.ndarray] = {}
    boxes: dict[str, tuple[int, int, int, int]] = {}
    mouth_sheet: list[tuple[str, np.ndarray]] = []
    other_sheet: list[tuple[str, np.ndarray]] = []
    for (pose, name), frame in zip(labels, _render(renderer, motion), strict=True):
        r = reader.read(frame)
        if name == "neutral":
            neutral[pose] = frame
            boxes[pose] = (
                region_box(r.plain, EYE_REGION, 0.12, size) if r.plain is not None else eye_box
            )
        x0, y0, x1, y1 = boxes[pose]
        eye_ssim = ssim(frame[y0:y1, x0:x1], neutral[pose][y0:y1, x0:x1])
        per_pose.setdefault(pose, {})[name] = {
            "face": r.found,
            "mouth": _nan_to_none(r.mouth),
            "eyes": _nan_to_none(r.eyes),
            "eye_ssim": round(eye_ssim, 4),
        }
        if pose == "straight":
            if name in MOUTH_SHEET:
                mouth_sheet.append((name, frame))
            else:
                other_sheet.append((name, frame))
    ssims = [float(v["eye_ssim"]) for p in per_pose.values() for v in p.values()]
    mouth_ssims = [float(p[n]["eye_ssim"]) for p in per_pose.values() for n in MOUTH_ONLY]
    record: dict[str, Any] = {
        "eye_box": {k: list(v) for k, v in boxes.items()},
        "eye_ssim_mouth": round(min(mouth_ssims), 4),
        "eye_ssim_min": round(min(ssims), 4),
        "poses": {k: list(v) for k, v in EXPRESSION_POSES.items()},
        "by_pose": per_pose,
    }
    return record, {"mouth": mouth_sheet, "expressions": other_sheet}


def _blink(
    renderer: FrameRenderer,
    reader: Reader,
    rest: Reading,
    rest_frame: np.ndarray,
    eye_box: tuple[int, int, int, int],
) -> tuple[dict[str, Any], list[tuple[str, np.ndarray]]]:
    """The blink's readings; ``eye_ssim_after``: the eye region of the reopened eye (the
    program's last frame) against the rest frame's."""
    motion, values = blink()
    x0, y0, x1, y1 = eye_box
    last = rest_frame
    peak_frame: np.ndarray | None = None
    eyes, eyes_plain, sheet = [], [], []
    shown = {0.5: False, 1.0: False}
    for k, frame in enumerate(_render(renderer, motion)):
        r = reader.read(frame)
        eyes.append(r.eyes)
        eyes_plain.append(r.eyes_plain)
        v = round(float(values[k]), 3)
        if k == 0:
            sheet.append(("blink 0", frame))
        elif v in shown and not shown[v]:
            shown[v] = True
            sheet.append((f"blink {v:g}", frame))
        if k == len(motion) - 1:
            last = frame
        if values[k] >= 1.0 and peak_frame is None:
            peak_frame = frame
    eyes_a, plain_a = np.array(eyes), np.array(eyes_plain)
    held = values >= 1.0
    open_eye, open_plain = rest.eyes, rest.eyes_plain
    peak = float(np.nanmedian(eyes_a[held])) if np.isfinite(eyes_a[held]).any() else np.nan
    peak_plain = float(np.nanmedian(plain_a[held])) if np.isfinite(plain_a[held]).any() else np.nan
    record = {
        "commanded": _r4(values),
        "eyes": _r4(eyes_a),
        "eyes_plain": _r4(plain_a),
        "open": _nan_to_none(open_eye),
        "peak_fraction": _nan_to_none(peak / open_eye),
        "peak_fraction_plain": _nan_to_none(peak_plain / open_plain),
        "min_fraction": _nan_to_none(float(np.nanmin(eyes_a)) / open_eye),
        "face_found": float(np.isfinite(eyes_a).mean()),
        "eye_ssim_after": round(ssim(last[y0:y1, x0:x1], rest_frame[y0:y1, x0:x1]), 4),
        "iris_hidden": (
            _nan_to_none(iris_hidden(rest_frame, peak_frame, rest.refined))
            if peak_frame is not None and rest.refined is not None
            else None
        ),
    }
    return record, sheet


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


def verdicts(summary: dict[str, Any]) -> dict[str, bool]:
    """Pass (True) or fail per target of ``TARGETS``; a missing reading fails."""

    def at_least(key: str) -> bool:
        v = summary.get(key)
        return v is not None and v >= TARGETS[key]

    def at_most(key: str) -> bool:
        v = summary.get(key)
        return v is not None and v <= TARGETS[key]

    return {
        "face_found": at_least("face_found"),
        "yaw_r": at_least("yaw_r"),
        "mouth_excess": at_most("mouth_excess"),
        "blink_peak_fraction": at_most("blink_peak_fraction"),
    }


# --- contact sheets ------------------------------------------------------------------------


def contact_sheet(
    result: SweepResult, title: str, path: Path, thumb: int = 136, columns: int = 7
) -> None:
    """A labelled PNG of the sweep's frames (face crops): the head sweep's keyframes, the
    mouth, the other expressions, the blink; palette PNG (256 colours) to keep it small."""
    from PIL import Image, ImageDraw

    x0, y0, x1, y1 = result.face_box
    side = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    label_h, pad = 14, 2
    rows: list[tuple[str, list[tuple[str, np.ndarray]]]] = []
    for name in ("head", "mouth", "expressions", "blink"):
        items = result.sheet_frames.get(name, [])
        for start in range(0, len(items), columns):
            rows.append((name, items[start : start + columns]))
    width = columns * (thumb + pad) + pad
    height = 18 + len(rows) * (thumb + label_h + pad) + pad
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 3), title, fill=(0, 0, 0))
    y = 18
    for _, items in rows:
        for i, (label, frame) in enumerate(items):
            size = frame.shape[0]
            half = side // 2
            left = int(np.clip(cx - half, 0, max(0, size - side)))
            top = int(np.clip(cy - half, 0, max(0, size - side)))
            crop = Image.fromarray(frame[top : top + side, left : left + side])
            x = pad + i * (thumb + pad)
            sheet.paste(crop.resize((thumb, thumb), Image.Resampling.LANCZOS), (x, y))
            draw.text((x + 2, y + thumb), label, fill=(0, 0, 0))
        y += thumb + label_h + pad
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
