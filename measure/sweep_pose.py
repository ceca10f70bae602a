"""The renderer sweep's pose readings: the renderer's rotation convention, the rigid 3D fit
(Kabsch), the 2D fit (solvePnP), the pose read off the CPU graph's source map
(``pose_content``, with the warp's folds), and the checks of the three against each other.
Every measured quantity is defined in measure/render_sweep.py's docstring."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from contracts import motion_frame as mf
from measure.sweep_frames import fold_fraction, nan_to_none

if TYPE_CHECKING:
    from engines.frame_renderer import FrameRenderer

SMALL = 0.15  # radians: the head sweep's "clean" range, where the warp does not fold


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
                row[f"r_{label}"] = nan_to_none(pearson(commanded[have, i], measured[have, i]))
                row[f"slope_{label}"] = nan_to_none(slope(commanded[have, i], measured[have, i]))
            out[name] = row
    return out


def from_source_maps(
    renderer: FrameRenderer, motion: np.ndarray, rest_3d: np.ndarray, box: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """``pose_content`` and ``fold`` per frame (nan throughout for a whole-frame graph, which
    has no source map): where the warp put the rest frame's stable landmarks, relative to
    where it puts them at rest, fitted like ``pose_2d``; and ``fold_fraction`` in ``box``."""
    pose = np.full((len(motion), 3), np.nan)
    fold = np.full(len(motion), np.nan)
    if "source_map" not in renderer.engine.output_names:
        return pose, fold
    source = source_points(renderer, rest_3d[:, :2])
    base: np.ndarray | None = None
    for k, source_map in enumerate(source_maps(renderer, motion)):
        points = content_points(source_map, source)
        rot = projected_rotation(rest_3d, points)
        if base is None:  # the rest frame (the program's first) is the reference
            base = rot
        pose[k] = euler(rot @ base.T)
        fold[k] = fold_fraction(source_map, box)
    return pose, fold


def source_maps(
    renderer: FrameRenderer, motion: np.ndarray, batch: int = 8
) -> Iterator[np.ndarray]:
    """The split graph's skull-layer source map (2, S, S) of each motion frame, in order."""
    for start in range(0, len(motion), batch):
        chunk = motion[start : start + batch].astype(np.float32)
        inputs = {k: np.repeat(v, len(chunk), 0) for k, v in renderer.inputs.items()}
        yield from renderer.engine.run({**inputs, "motion": chunk})["source_map"]


def source_points(renderer: FrameRenderer, rest_xy: np.ndarray) -> np.ndarray:
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
