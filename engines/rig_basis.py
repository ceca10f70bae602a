"""The rig's face geometry and blendshape basis.

* the face frame: axes along the eye line and down the face, centred on the mouth, with the
  face's mouth width and height as units;
* which landmarks belong to the upper and to the lower lip, and the eye openings;
* the blendshape basis: each blendshape (and gaze) as a pixel displacement of the 478
  landmarks, scaled to this face, spread smoothly to the skin around the moving features;
* the rest offset that closes a portrait's open mouth (the motion frame's neutral).

Positions here are in pixels of the framed image; ``engines.rig`` normalizes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from contracts import motion_frame as mf
from engines import facemesh_topology as topo

# Basis rows: the blendshapes in motion-frame order, then gaze x and y.
BASIS_FIELDS = mf.BLENDSHAPES + mf.GAZE


def smoothstep(edge0: float | np.ndarray, edge1: float | np.ndarray, x: np.ndarray) -> np.ndarray:
    """0 below ``edge0``, 1 above ``edge1``, a smooth cubic between."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True)
class FaceFrame:
    """Face-aligned axes: u along the eye line (towards the subject's left), v down."""

    u: np.ndarray
    v: np.ndarray
    mouth_center: np.ndarray
    mouth_width: float
    face_height: float

    def local(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rel = points[..., :2] - self.mouth_center
        return rel @ self.u, rel @ self.v

    def vector(self, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
        """Displacement (..., 3) from face-frame components a (along u) and b (along v)."""
        a = np.asarray(a, np.float64)
        b = np.asarray(b, np.float64)
        xy = a[..., None] * self.u + b[..., None] * self.v
        return np.concatenate([xy, np.zeros((*xy.shape[:-1], 1))], axis=-1)


def face_frame(lm: np.ndarray) -> FaceFrame:
    right_eye = lm[list(topo.RIGHT_EYE_UPPER + topo.RIGHT_EYE_LOWER), :2].mean(0)
    left_eye = lm[list(topo.LEFT_EYE_UPPER + topo.LEFT_EYE_LOWER), :2].mean(0)
    u = left_eye - right_eye
    u /= np.linalg.norm(u)
    v = np.array([-u[1], u[0]])
    mouth_center = lm[[topo.INNER_LIP_TOP, topo.INNER_LIP_BOTTOM], :2].mean(0)
    mouth_width = float(np.linalg.norm(lm[61, :2] - lm[291, :2]))
    face_height = float(np.linalg.norm(lm[topo.FOREHEAD_TOP, :2] - lm[topo.CHIN, :2]))
    return FaceFrame(u, v, mouth_center, mouth_width, face_height)


def _signed_distance(polygon: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance of each point to the polygon's edge: positive inside, negative outside."""
    contour = polygon[:, :2].astype(np.float32).reshape(-1, 1, 2)
    return np.array(
        [cv2.pointPolygonTest(contour, (float(x), float(y)), True) for x, y in points[:, :2]]
    )


LID_FOLLOWS_BROW = 0.3  # how far the upper lid's skin follows its brow
# ... but by at most this fraction of the eye's opening per brow shape: the warp stretches the
# eye's content with the lid (the iris stays put), and inner and outer brows raised together
# (the surprised style) lifted the lid by about its whole opening, an iris drawn twice as tall.
LID_FOLLOW_MAX = 0.12


def _spread(
    points: np.ndarray,
    core: list[int],
    core_disp: np.ndarray,
    radius: float,
    protect: set[int] = frozenset(),  # type: ignore[assignment]
) -> np.ndarray:
    """Displacements for all points: ``core_disp`` on ``core``, fading smoothly with distance
    (Gaussian, ``radius``) on the others, zero on ``protect``. Neighbours follow so the warp
    has no steep gradients (which would fold the inverse map)."""
    disp = np.zeros((len(points), 3))
    core_xy = points[core, :2]
    dist = np.linalg.norm(points[:, None, :2] - core_xy[None], axis=-1)  # (N, C)
    weights = np.exp(-((dist / (0.5 * radius)) ** 2)) + 1e-12
    blended = (weights @ core_disp) / weights.sum(1, keepdims=True)
    fade = np.exp(-((dist.min(1) / radius) ** 2))
    disp = blended * fade[:, None]
    disp[core] = core_disp
    for i in protect:
        if i not in core:
            disp[i] = 0.0
    return disp


def lip_sets(lm: np.ndarray) -> tuple[list[int], list[int]]:
    """Landmarks of the upper lip and of the lower lip (corners in neither).

    The contour points belong to their lip by definition (for a closed mouth the inner
    contours coincide); other landmarks belong to the lip whose polygon holds them.
    """
    upper_poly = lm[list(topo.LIPS_OUTER_UPPER) + list(topo.LIPS_INNER_UPPER[::-1])]
    lower_poly = lm[list(topo.LIPS_OUTER_LOWER) + list(topo.LIPS_INNER_LOWER[::-1])]
    d_upper = _signed_distance(upper_poly, lm)
    d_lower = _signed_distance(lower_poly, lm)
    corners = set(topo.MOUTH_CORNERS)
    upper = set(topo.LIPS_OUTER_UPPER + topo.LIPS_INNER_UPPER) - corners
    lower = set(topo.LIPS_OUTER_LOWER + topo.LIPS_INNER_LOWER) - corners
    for i in range(len(lm)):
        if i in upper or i in lower or i in corners or max(d_upper[i], d_lower[i]) < -1.0:
            continue
        (upper if d_upper[i] >= d_lower[i] else lower).add(i)
    return sorted(upper), sorted(lower)


def interp_curve(contour_a: np.ndarray, contour_b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """The contour's b (across the face) at positions ``a`` along it, linearly interpolated."""
    order = np.argsort(contour_a)
    return np.interp(a, contour_a[order], contour_b[order])


def _eye_geometry(
    lm: np.ndarray, frame: FaceFrame, upper: tuple[int, ...], lower: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, float]:
    ua, ub = frame.local(lm[list(upper)])
    la, lb = frame.local(lm[list(lower)])
    width = float(ua.max() - ua.min())
    height = float(np.max(interp_curve(la, lb, ua) - ub))
    return ua, ub, la, lb, width, max(height, 1e-3 * frame.face_height)


def blendshape_basis(lm: np.ndarray, frame: FaceFrame) -> dict[str, np.ndarray]:
    """Pixel-space displacement (478, 3) of every landmark for each basis field at weight 1."""
    n = len(lm)
    a, b = frame.local(lm)
    wm, fh = frame.mouth_width, frame.face_height
    upper_lip, lower_lip = lip_sets(lm)
    lips = upper_lip + lower_lip
    corners = [61, 291, 78, 308]
    left_side = np.clip(0.5 + a / (0.5 * wm), 0.0, 1.0)  # subject's left (towards +u)
    right_side = 1.0 - left_side
    center_profile = np.clip(1.0 - 0.55 * (a / (0.5 * wm)) ** 2, 0.35, 1.0)
    eyes = set(
        topo.RIGHT_EYE_UPPER + topo.RIGHT_EYE_LOWER + topo.LEFT_EYE_UPPER + topo.LEFT_EYE_LOWER
    )
    eyes |= set(topo.RIGHT_IRIS + topo.LEFT_IRIS)
    chin_b = float(frame.local(lm[topo.CHIN][None])[1][0])
    face_half_width = 0.5 * float(np.ptp(frame.local(lm[list(topo.FACE_OVAL)])[0]))
    basis: dict[str, np.ndarray] = {}

    # jawOpen: the lower lip and the jaw drop (chin most, jaw angles least); corners follow
    # part way and pull in a little. The upper lip stays with the skull.
    drop = 0.6 * wm
    jaw = np.zeros(n)
    below = (b > 0) & ~np.isin(np.arange(n), upper_lip + corners)
    depth = smoothstep(0.0, 0.35 * chin_b, b)
    lateral = np.clip(1.0 - (a / face_half_width) ** 2, 0.2, 1.0)
    jaw[below] = (depth * lateral)[below]
    jaw[lower_lip] = center_profile[lower_lip]
    # The corners drop a little: the skull layer moves them too (they end the upper lip), and
    # a larger drop stretched the skin above a corner down over a wide-open mouth (a pale
    # patch at jawOpen 1 on a photo).
    jaw[corners] = 0.15
    disp = frame.vector(
        np.where(np.isin(np.arange(n), corners), -np.sign(a) * 0.04 * wm, 0.0), jaw * drop
    )
    basis["jawOpen"] = disp

    # mouthClose: lips pressed together against an open jaw (cancels jawOpen on the lips).
    close = np.zeros(n)
    close[lower_lip] = -0.95 * center_profile[lower_lip] * drop
    close[upper_lip] = 0.04 * drop
    basis["mouthClose"] = frame.vector(0.0, close)

    # Lip shapes: displacements on the lips, spread smoothly to the surrounding skin.
    lip_ring = lips + corners
    radius = 0.35 * wm
    protect = eyes

    def lip_shape(da: np.ndarray, db: np.ndarray, dz: np.ndarray | float = 0.0) -> np.ndarray:
        core_disp = frame.vector(da[lip_ring], db[lip_ring])
        core_disp[:, 2] = np.broadcast_to(dz, (n,))[lip_ring]
        return _spread(lm, lip_ring, core_disp, radius, protect)

    is_upper = np.isin(np.arange(n), upper_lip)
    is_lower = np.isin(np.arange(n), lower_lip)
    lip_sign = np.where(is_upper, -1.0, np.where(is_lower, 1.0, 0.0))  # away from the mouth line
    inward = -np.clip(a / (0.5 * wm), -1.0, 1.0)  # towards the midline, 1 at the corners
    basis["mouthFunnel"] = lip_shape(
        0.14 * wm * inward, lip_sign * 0.09 * wm * center_profile, -0.06 * wm
    )
    basis["mouthPucker"] = lip_shape(0.24 * wm * inward, -lip_sign * 0.02 * wm, -0.08 * wm)
    for side, weight in (("Left", left_side), ("Right", right_side)):
        out_dir = 1.0 if side == "Left" else -1.0
        corner_w = smoothstep(0.0, 1.0, weight * 2.0 - 1.0) * (np.abs(a) / (0.5 * wm)).clip(0, 1)
        # A smile: the corner up and out, pulling the cheek above it along (a wider spread
        # than the other lip shapes). At 0.11 mouth widths up (was) a smile at 0.8 hardly
        # read on a photo (docs/render_sweep/, "smile"); a real one lifts the corners about
        # a fifth of the mouth's width.
        basis[f"mouthSmile{side}"] = _spread(
            lm,
            lip_ring,
            frame.vector(out_dir * 0.14 * wm * corner_w, -0.2 * wm * corner_w)[lip_ring],
            0.6 * wm,
            protect,
        )
        outer_upper = np.isin(np.arange(n), topo.LIPS_OUTER_UPPER)
        outer_lower = np.isin(np.arange(n), topo.LIPS_OUTER_LOWER)
        # A spread vowel (ee): the corners pulled out and the lips stretched thin against
        # the teeth (their outer edges toward the mouth line, most on this side).
        thin = np.where(outer_upper, 0.03, np.where(outer_lower, -0.03, 0.0)) * wm * weight
        basis[f"mouthStretch{side}"] = _spread(
            lm,
            lip_ring,
            frame.vector(
                out_dir * 0.17 * wm * corner_w, 0.03 * wm * corner_w + thin * center_profile
            )[lip_ring],
            0.5 * wm,
            protect,
        )
        # Pressed lips (p, b, m): both lips' outer edges toward the mouth line, rolled in and
        # thinned (ARKit's mouthPress; no longer pushed up through the upper lip by mouthClose,
        # which the renderer caps at jawOpen).
        press = np.where(outer_upper, 0.065, np.where(outer_lower, -0.065, 0.0)) * wm * weight
        basis[f"mouthPress{side}"] = lip_shape(np.zeros(n), press)
        basis[f"mouthUpperUp{side}"] = lip_shape(
            np.zeros(n), -0.13 * wm * weight * is_upper * center_profile
        )
        basis[f"mouthLowerDown{side}"] = lip_shape(
            np.zeros(n), 0.16 * wm * weight * is_lower * center_profile
        )
    roll_lower = np.where(np.isin(np.arange(n), topo.LIPS_OUTER_LOWER), -0.07, 0.0) * wm
    roll_upper = np.where(np.isin(np.arange(n), topo.LIPS_OUTER_UPPER), 0.06, 0.0) * wm
    basis["mouthRollLower"] = lip_shape(np.zeros(n), roll_lower * center_profile)
    basis["mouthRollUpper"] = lip_shape(np.zeros(n), roll_upper * center_profile)

    # Eyes. A blink is drawn by the renderer (contracts.composite.lid_shift: the lid slides down
    # and the skin above it unfolds); the warp does not move the lids for it (a coarse warp
    # drags the skin around the eye along), so the blinks' basis rows are zero.
    openings: dict[str, float] = {}  # each eye's opening, px (the brows' lid cap below)
    for side, upper, lower, iris in (
        ("Right", topo.RIGHT_EYE_UPPER, topo.RIGHT_EYE_LOWER, topo.RIGHT_IRIS),
        ("Left", topo.LEFT_EYE_UPPER, topo.LEFT_EYE_LOWER, topo.LEFT_IRIS),
    ):
        width, height = _eye_geometry(lm, frame, upper, lower)[4:]
        openings[side] = height
        inner_upper = list(upper[1:-1])
        lid_protect = eyes - set(inner_upper + list(lower) + list(iris))
        basis[f"eyeBlink{side}"] = np.zeros((n, 3))
        wide_core = inner_upper + list(lower)
        wide_disp = np.zeros((len(wide_core), 3))
        wide_disp[: len(inner_upper)] = frame.vector(0.0, -0.3 * height * np.ones(len(inner_upper)))
        basis[f"eyeWide{side}"] = _spread(lm, wide_core, wide_disp, 0.45 * width, lid_protect)
        squint_core = list(lower[1:-1]) + list(upper)
        squint_disp = np.zeros((len(squint_core), 3))
        squint_disp[: len(lower) - 2] = frame.vector(0.0, -0.42 * height * np.ones(len(lower) - 2))
        squint_disp[len(lower) - 2 :] = frame.vector(0.0, 0.11 * height * np.ones(len(upper)))
        basis[f"eyeSquint{side}"] = _spread(
            lm, squint_core, squint_disp, 0.45 * width, eyes - set(squint_core)
        )

    # Brows: inner/outer halves by distance from the midline. The upper lid's skin follows the
    # brow part way (a raised brow opens the eye a little, a frown narrows it); with the lids
    # pinned the warp realized a fifth to four fifths of the brows' motion.
    lids = {"Right": list(topo.RIGHT_EYE_UPPER[1:-1]), "Left": list(topo.LEFT_EYE_UPPER[1:-1])}

    def brow_shape(core: dict[str, tuple[list[int], np.ndarray]]) -> np.ndarray:
        """The brows' core points and displacements per side, the upper lids following (at
        most ``LID_FOLLOW_MAX`` of the eye's opening)."""
        ids: list[int] = []
        disp: list[np.ndarray] = []
        for side, (points, moves) in core.items():
            follow = LID_FOLLOWS_BROW * moves.mean(0)
            lift = float(np.linalg.norm(follow[:2]))
            cap = LID_FOLLOW_MAX * openings[side]
            if lift > cap:
                follow = follow * (cap / lift)
            ids += points + lids[side]
            disp += [moves, np.repeat(follow[None], len(lids[side]), 0)]
        followers = {i for side in core for i in lids[side]}
        return _spread(lm, ids, np.concatenate(disp), 0.2 * fh, eyes - followers)

    inner_of: dict[str, list[int]] = {}
    for side, brow_ids in (("Right", topo.RIGHT_BROW), ("Left", topo.LEFT_BROW)):
        brow = list(brow_ids)
        ba, _ = frame.local(lm[brow])
        dist_mid = np.abs(ba - a[topo.NOSE_TIP])
        inner = [i for i, d in zip(brow, dist_mid, strict=True) if d <= np.median(dist_mid)]
        outer = [i for i in brow if i not in inner]
        inner_of[side] = inner
        toward_mid = 1.0 if side == "Right" else -1.0
        down = frame.vector(toward_mid * 0.02 * fh * np.ones(len(brow)), 0.06 * fh)
        basis[f"browDown{side}"] = brow_shape({side: (brow, down)})
        up = frame.vector(np.zeros(len(outer)), -0.075 * fh)
        basis[f"browOuterUp{side}"] = brow_shape({side: (outer, up)})
    basis["browInnerUp"] = brow_shape(
        {
            side: (inner, frame.vector(np.zeros(len(inner)), -0.08 * fh))
            for side, inner in inner_of.items()
        }
    )

    # Gaze: the renderer slides the eye's content between the lids (rig_maps' gaze flows: the
    # warp moved the irises a tenth to a half of the way), so the gaze rows are zero.
    basis["gazeX"] = np.zeros((n, 3))
    basis["gazeY"] = np.zeros((n, 3))
    return basis


def rest_offset(lm: np.ndarray, frame: FaceFrame) -> np.ndarray:
    """Landmark displacement (478, 3) px that closes a portrait's open mouth.

    The motion frame's neutral is a closed, relaxed mouth, so jawOpen means the same on every
    avatar. Lips closer than a few percent of the mouth width count as closed already.
    """
    upper = list(topo.LIPS_INNER_UPPER[1:-1])
    lower = list(topo.LIPS_INNER_LOWER[1:-1])
    _, ub = frame.local(lm[upper])
    _, lb = frame.local(lm[lower])
    gap = np.clip(lb - ub, 0.0, None)
    if gap.max() < 0.04 * frame.mouth_width:
        return np.zeros((len(lm), 3))
    core_disp = frame.vector(np.zeros(2 * len(gap)), np.concatenate([0.5 * gap, -0.5 * gap]))
    eyes = set(
        topo.RIGHT_EYE_UPPER + topo.RIGHT_EYE_LOWER + topo.LEFT_EYE_UPPER + topo.LEFT_EYE_LOWER
    )
    return _spread(lm, upper + lower, core_disp, 0.45 * frame.mouth_width, eyes)
