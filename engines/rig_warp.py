"""The rig's warp: control points beyond the landmarks, layer membership, spline weights.

The landmarks alone would drag the whole image with the face, so extra controls ring the head
(hair moves with it), extend the mouth line to the border (the seam between the skull and jaw
layers outside the face) and pin the border. Each layer's thin-plate spline maps control
displacements to a dense displacement grid; the skull layer ignores the lower lip and the jaw
layer the upper lip, so the lips can part without tearing the smooth warp.
"""

from __future__ import annotations

import numpy as np

from engines import facemesh_topology as topo
from engines.rig_basis import FaceFrame, lip_sets

TPS_REGULARIZATION = 2e-5
DEPTH_DETAIL = 0.5  # how much of the depth's detail beyond a smooth surface the head turn keeps


def head_depth(lm: np.ndarray, detail: float = DEPTH_DETAIL) -> np.ndarray:
    """The landmarks' depth for head rotation: a smooth quartic surface fitted to FaceMesh's
    depth plus ``detail`` of what the surface misses (the nose, the eye sockets).

    Rotating the raw depth makes every bump pass over its neighbours: the thin-plate field
    through crossing controls folds in ripples that the depth test can only cut into a
    jagged contour. The smooth surface turns away from the camera only at the face's sides,
    where the contour it folds along is as smooth as the surface."""
    x, y, z = lm[:, 0], lm[:, 1], lm[:, 2]
    scale = float(np.ptp(x)) or 1.0
    u, v = (x - x.mean()) / scale, (y - y.mean()) / scale
    terms = [u**i * v**j for i in range(5) for j in range(5 - i)]
    design = np.stack(terms, 1)
    coef, *_ = np.linalg.lstsq(design, z, rcond=None)
    smooth = design @ coef
    return smooth + detail * (z - smooth)


def extra_controls(lm: np.ndarray, frame: FaceFrame, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Head ring (hair, neck), the mouth line extended to the image border, and border pins:
    positions (M, 3) in pixels and their head weights."""
    oval = lm[list(topo.FACE_OVAL)]
    center = oval[:, :2].mean(0)
    ring = center + 1.35 * (oval[:, :2] - center)
    _, ring_b = frame.local(ring)
    chin_b = float(frame.local(lm[topo.CHIN][None])[1][0])
    # The ring below the jaw is neck: it follows the head only partly.
    ring_weight = np.where(ring_b > 0.5 * chin_b, 0.35, 1.0)
    # The mouth line, extended sideways: the seam between the two layers outside the face,
    # where both layers must move alike.
    half = 0.5 * float(np.ptp(frame.local(oval)[0]))
    reach = np.arange(1.15 * half, 1.5 * size, 0.08 * size)
    seam = np.concatenate(
        [frame.mouth_center + np.outer(sign * reach, frame.u) for sign in (-1.0, 1.0)]
    )
    seam_weight = np.tile(np.clip(1.0 - (reach - half) / (0.6 * size), 0.0, 0.8), 2)
    edge = np.linspace(0, size, 9)
    border = np.concatenate(
        [
            np.stack([edge, np.zeros(9)], 1),
            np.stack([edge, np.full(9, size)], 1),
            np.stack([np.zeros(7), edge[1:-1]], 1),
            np.stack([np.full(7, size), edge[1:-1]], 1),
        ]
    )
    inside = lambda p: (p >= 0).all(1) & (p <= size).all(1)  # noqa: E731
    points = np.concatenate([ring[inside(ring)], seam[inside(seam)], border])
    weights = np.concatenate(
        [ring_weight[inside(ring)], seam_weight[inside(seam)], np.zeros(len(border))]
    )
    # Depth: the ring and the seam lie as deep as the face's edge nearest them, so a head
    # turn moves them with the silhouette (not ahead of it, as a ring in the plane of the
    # nose would); the border pins do not move, their depth is never used.
    near = ((points[:, None] - oval[None, :, :2]) ** 2).sum(-1).argmin(1)
    depth = oval[near, 2]
    depth[len(points) - len(border) :] = 0.0
    return np.concatenate([points, depth[:, None]], 1), weights


def layer_membership(
    controls_px: np.ndarray, lm: np.ndarray, frame: FaceFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which controls drive the skull (upper) and jaw (lower) layers, and how much of the
    expression each layer applies to them.

    Coincident upper and lower lip points cannot both drive one smooth field, so the skull
    layer ignores the lower lip and the jaw layer the upper lip. The skull layer keeps the
    jaw and chin at rest (head pose only): below the upper lip it then moves with the skull,
    which carries the upper teeth and, outside the face, the neck and background.
    """
    upper_lip, lower_lip = lip_sets(lm)
    n = len(controls_px)
    active_upper = np.ones(n, bool)
    active_upper[lower_lip] = False
    active_lower = np.ones(n, bool)
    active_lower[upper_lip] = False
    _, b = frame.local(controls_px)
    skull_expression = np.where(b > 0.12 * frame.mouth_width, 0.0, 1.0)
    skull_expression[upper_lip] = 1.0
    weights = np.stack([skull_expression, np.ones(n)])
    return active_upper, active_lower, weights


def tps_weights(ctrl: np.ndarray, active: np.ndarray, grid: int) -> np.ndarray:
    """(grid*grid, N) matrix mapping control displacements to grid displacements with a
    regularized thin-plate spline through the ``active`` controls (others get weight 0)."""
    pts = ctrl[active]
    n = len(pts)

    def kernel(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        r2 = ((p[:, None] - q[None]) ** 2).sum(-1)
        return 0.5 * r2 * np.log(r2 + 1e-12)

    system = np.zeros((n + 3, n + 3))
    system[:n, :n] = kernel(pts, pts) + TPS_REGULARIZATION * np.eye(n)
    system[:n, n] = 1.0
    system[:n, n + 1 :] = pts
    system[n, :n] = 1.0
    system[n + 1 :, :n] = pts.T
    inverse = np.linalg.inv(system)[:, :n]  # (n+3, n): displacement -> spline coefficients
    lin = np.linspace(-1.0, 1.0, grid)
    gy, gx = np.meshgrid(lin, lin, indexing="ij")
    gpts = np.stack([gx.ravel(), gy.ravel()], 1)
    design = np.concatenate([kernel(gpts, pts), np.ones((len(gpts), 1)), gpts], 1)
    weights = np.zeros((len(gpts), len(ctrl)))
    weights[:, active] = design @ inverse
    return weights.astype(np.float32)
