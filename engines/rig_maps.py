"""The rig's source-space maps and colours.

Per-pixel maps of the framed portrait (layer masks, teeth and tongue placement, eye openings)
in the channel orders of ``contracts.render_spec``, the mouth-interior and eyelid colours
matched to the portrait, and the quad tables (each pixel with its 2x2 block) the renderer
samples them through.
"""

from __future__ import annotations

import cv2
import numpy as np

from contracts import composite
from contracts.render_spec import (
    EYE_CHANNELS,
    JAW_MOUTH_CHANNELS,
    MOUTH_WINDOW,
    SKULL_MOUTH_CHANNELS,
)
from engines import facemesh_topology as topo
from engines.rig_basis import FaceFrame, interp_curve, smoothstep


def _polygon_mask(size: int, polygon: np.ndarray) -> np.ndarray:
    mask = np.zeros((size, size), np.float32)
    pts = (
        np.round(np.clip(polygon[:, :2], -8 * size, 8 * size) * 16)
        .astype(np.int32)
        .reshape(-1, 1, 2)
    )
    cv2.fillPoly(mask, [pts], (1.0,), lineType=cv2.LINE_AA, shift=4)
    return mask


def _below_curve(size: int, curve: np.ndarray, frame: FaceFrame) -> np.ndarray:
    """A soft mask of what lies below a lip line (corner to corner along the face's u axis),
    the line extended sideways and down to far past the image border."""
    far = 4.0 * size
    right_corner, left_corner = curve[0], curve[-1]
    polygon = np.concatenate(
        [
            curve,
            [left_corner + far * frame.u, left_corner + far * (frame.u + frame.v)],
            [right_corner + far * (frame.v - frame.u), right_corner - far * frame.u],
        ]
    )
    return _polygon_mask(size, polygon)


# Where the lid's margin lands on a full blink, as a fraction of the way to the lower lid's
# margin: a little past it, as FaceMesh's lower lid line runs on the lid's inner edge and a
# thread of white would show otherwise.
LID_TRAVEL = 1.08


# How far the irises travel at gaze 1: sideways as a fraction of the eye's width, up and down
# as a fraction of the opening (the lids stay; the iris slides under them).
GAZE_TRAVEL_X = 0.22
GAZE_TRAVEL_Y = 0.3


def _gaze_flow(
    frame: FaceFrame,
    ua: np.ndarray,
    ub: np.ndarray,
    la: np.ndarray,
    lb: np.ndarray,
    pa: np.ndarray,
    pb: np.ndarray,
    top_b: np.ndarray,  # the upper and lower lid's b at each pixel's a
    bottom_b: np.ndarray,
) -> np.ndarray:
    """Inside one eye's opening, where each pixel's colour comes from at gazeX 1 and at gazeY
    1 (S, S, 4: x then y flow, image pixels from the pixel; 0 outside). Sideways the eye's
    content slides along the eye line by GAZE_TRAVEL_X of its width in the middle, less
    toward the corners, at the same height between the lids (a pixel a third of the way down
    stays a third of the way down, so the lids' own pixels stay on the lids); up and down it
    slides between the lids by up to GAZE_TRAVEL_Y of the opening, less toward the lids and
    the corners. Both are sines, so a slide never folds (its slope stays below 1). Gaze -1 is
    the same flow reversed (the renderer scales the flows by the gaze)."""
    lo, hi = float(ua.min()), float(ua.max())
    width = hi - lo
    span = np.maximum(bottom_b - top_b, 1e-3)
    height = np.clip((pb - top_b) / span, 0.0, 1.0)
    t = np.clip((pa - lo) / width, 0.0, 1.0)
    inside = (pb >= top_b) & (pb <= bottom_b) & (pa > lo) & (pa < hi)
    # Sideways.
    source_a = pa - GAZE_TRAVEL_X * width * np.sin(np.pi * t)
    top_s, bottom_s = interp_curve(ua, ub, source_a), interp_curve(la, lb, source_a)
    source_b = top_s + height * (bottom_s - top_s)
    x_a = np.where(inside, source_a - pa, 0.0)
    x_b = np.where(inside, source_b - pb, 0.0)
    # Up and down (+: the iris down, as the warp's basis moved it).
    source_h = height - GAZE_TRAVEL_Y * np.sin(np.pi * height) * np.sin(np.pi * t)
    y_b = np.where(inside, (source_h - height) * span, 0.0)
    flow = [x_a[..., None] * frame.u + x_b[..., None] * frame.v, y_b[..., None] * frame.v]
    return np.concatenate(flow, -1).astype(np.float32)


def aux_maps(
    lm: np.ndarray, frame: FaceFrame, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The source-space maps in EYE_CHANNELS, SKULL_MOUTH_CHANNELS and JAW_MOUTH_CHANNELS
    order, (S, S, channels) each."""
    wm = frame.mouth_width
    inner_upper = lm[list(topo.LIPS_INNER_UPPER)]
    inner_lower = lm[list(topo.LIPS_INNER_LOWER)]
    # Below the mouth line: the upper inner lip extended to the image border. Inside the face
    # oval that is the jaw (lower lip, chin); outside it the neck and background ("base").
    below = _below_curve(size, inner_upper[:, :2], frame)
    # The jaw layer starts at the lower inner lip. A portrait painted with parted lips (the
    # rest pose closes them: rig_basis.rest_offset) leaves its own gap, teeth and all, out of
    # both layers: the jaw layer took it along and stretched it into a pale streak as the
    # lower lip dropped (a yellowish blob on the Vermeer at jawOpen 0.9); the renderer's own
    # interior shows there instead. On a shut mouth the two lines coincide.
    below_lower = _below_curve(size, inner_lower[:, :2], frame)
    # FaceMesh's face oval only approximates the painted jaw line: the jaw layer takes a margin
    # of neck and background with it (stretched smoothly by the warp) rather than tearing the
    # chin where the oval misses it.
    margin = max(3, round(0.03 * size)) | 1
    oval = cv2.dilate(
        _polygon_mask(size, lm[list(topo.FACE_OVAL)]),
        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (margin, margin)),
    )
    jaw_region = below * below_lower * oval
    base_region = below * (1.0 - oval)
    # Layers composite skull over jaw over base: the lower layers reach a few pixels under the
    # ones above so their soft edges never let the mouth interior show through.
    grow = np.ones((7, 7), np.uint8)
    skull = cv2.GaussianBlur(1.0 - below, (0, 0), 1.2)
    not_base = 1.0 - cv2.GaussianBlur(cv2.dilate(base_region, grow), (0, 0), 2.5)
    jaw = cv2.GaussianBlur(cv2.dilate(jaw_region, grow), (0, 0), 2.5) * _window_fade(size)

    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    pix = np.stack([xs, ys], -1)
    pa, pb = frame.local(pix)
    ua, ub = frame.local(inner_upper)
    la, lb = frame.local(inner_lower)
    below_upper = pb - interp_curve(ua, ub, pa)
    above_lower = interp_curve(la, lb, pa) - pb
    half = 0.5 * wm
    # Upper incisors: a short band under the upper lip (a shadow line first), then the dark
    # cavity; a wide band would read as closed pale lips (to viewers and to FaceMesh). The
    # mask carries the teeth's shading (it scales their colour over the cavity).
    across = np.abs(pa) / half  # 0 at the mouth's centre line, 1 at a corner
    teeth_h = 0.085 * wm * (1.0 - 0.35 * across**2)  # the centrals are the longest
    teeth = (
        smoothstep(0.012 * wm, 0.03 * wm, below_upper)
        * (1.0 - smoothstep(0.65 * teeth_h, teeth_h, below_upper))
        * (1.0 - smoothstep(0.55, 0.8, across))
        * _teeth_shading(below_upper / teeth_h, across, 0.006 * wm / half)
    )
    # Lower incisors: a lower, narrower band just above the lower lip, seen when the mouth
    # opens wide (shaded in the composite: the lips' and the jaw's shadow). It starts above
    # the jaw layer's mask, which reaches a few pixels past the lip's inner edge.
    lower_h = 0.09 * wm * (1.0 - 0.3 * across**2)
    lower_teeth = (
        smoothstep(0.03 * wm, 0.045 * wm, above_lower)
        * (1.0 - smoothstep(0.75 * lower_h, lower_h, above_lower))
        * (1.0 - smoothstep(0.4, 0.62, across))
        * _teeth_shading((lower_h - above_lower) / lower_h, across * 1.25, 0.005 * wm / half)
    )
    # The gum line: a moist pink strip between the upper lip and the teeth, in the lip's
    # shadow; the teeth cover its lower part. It shows as the upper lip lifts (the skull
    # layer stretches the strip under it) and as a thin line under the lip otherwise. Both
    # bands show only on a real opening (``composite.opening``).
    gum = (
        0.8
        * smoothstep(0.0, 0.006 * wm, below_upper)
        * (1.0 - smoothstep(0.018 * wm, 0.032 * wm, below_upper))
        * (1.0 - smoothstep(0.6, 0.85, across))
    )
    # The lower lip's wet inner edge: the lip turning in toward the teeth, lit from above,
    # brightest along a thin line just inside the lip.
    lip_inner = (
        smoothstep(0.0, 0.004 * wm, above_lower)
        * (1.0 - smoothstep(0.014 * wm, 0.03 * wm, above_lower))
        * (1.0 - smoothstep(0.55, 0.85, across))
        * (0.55 + 0.25 * np.exp(-(((above_lower - 0.008 * wm) / (0.004 * wm)) ** 2)))
    )
    tongue_h = 0.3 * wm
    tongue = (
        smoothstep(0.0, 0.05 * wm, above_lower)
        * (1.0 - smoothstep(0.4 * tongue_h, tongue_h, above_lower))
        * (1.0 - smoothstep(0.3, 0.7, across))
        * (1.0 - 0.35 * smoothstep(0.05 * wm, 0.2 * wm, above_lower))  # falling away
    )
    # The throat: what only a wide opening shows, far above the lower lip in the jaw layer's
    # source, toward the middle; the cavity darkens there.
    throat = smoothstep(0.08 * wm, 0.3 * wm, above_lower) * (1.0 - smoothstep(0.3, 0.9, across))
    # Eyes: a soft mask of each eye and the lid above it (signed: subject's left +, right -),
    # each pixel's height below the upper lid margin and the lid's travel to the lower lid at
    # its column (both in units of the eye's largest opening, eye_scale), so the renderer can
    # slide the lid down over the eye and unfold the skin above it (a coarse warp cannot
    # squeeze a 10-pixel opening shut).
    eye_sign = np.zeros((size, size), np.float32)
    eye_height = np.zeros((size, size), np.float32)
    eye_travel = np.zeros((size, size), np.float32)
    eye_scale = np.zeros((size, size), np.float32)
    gaze = np.zeros((size, size, 4), np.float32)
    for sign, upper_idx, lower_idx in (
        (1.0, topo.LEFT_EYE_UPPER, topo.LEFT_EYE_LOWER),
        (-1.0, topo.RIGHT_EYE_UPPER, topo.RIGHT_EYE_LOWER),
    ):
        ua, ub = frame.local(lm[list(upper_idx)])
        la, lb = frame.local(lm[list(lower_idx)])
        top_b, bottom_b = interp_curve(ua, ub, pa), interp_curve(la, lb, pa)
        opening = max(float(np.max(interp_curve(la, lb, ua) - ub)), 1.0)
        height = (pb - top_b) / opening
        travel = LID_TRAVEL * np.clip(bottom_b - top_b, 0.0, None) / opening
        # From corner to corner (the travel falls to nothing there), from above the skin that
        # unfolds (LID_TOP over the margin) to below the lower lid.
        width = ua.max() - ua.min()
        across = smoothstep(ua.min() - 0.12 * width, ua.min() - 0.02 * width, pa) * (
            1.0 - smoothstep(ua.max() + 0.02 * width, ua.max() + 0.12 * width, pa)
        )
        top = -composite.LID_TOP
        below = (pb - bottom_b) / opening
        mask = across * smoothstep(top - 0.4, top - 0.1, height)
        mask = (mask * (1.0 - smoothstep(0.2, 0.35, below))).astype(np.float32)
        eye_sign += sign * mask
        inside = mask > 0.01
        eye_height = np.where(inside, np.clip(height, top - 0.5, 2.0), eye_height)
        eye_travel = np.where(inside, travel, eye_travel)
        gaze += _gaze_flow(frame, ua, ub, la, lb, pa, pb, top_b, bottom_b)
        eye_scale = np.where(inside, opening, eye_scale)
    maps = {
        "eyes": eye_sign,
        "eye_height": eye_height,
        "eye_travel": eye_travel,
        "eye_scale": eye_scale / composite.EYE_MAP_PIXELS,  # float16-friendly, < 1
        "gaze_x_dx": gaze[..., 0] / composite.EYE_MAP_PIXELS,
        "gaze_x_dy": gaze[..., 1] / composite.EYE_MAP_PIXELS,
        "gaze_y_dx": gaze[..., 2] / composite.EYE_MAP_PIXELS,
        "gaze_y_dy": gaze[..., 3] / composite.EYE_MAP_PIXELS,
        "skull": skull,
        "not_base": not_base,
        "teeth": teeth,
        "jaw": jaw,
        "tongue": tongue,
        "lower_teeth": lower_teeth,
        "throat": throat,
        "gum": gum,
        "lip_inner": lip_inner,
    }
    return (
        np.stack([maps[name] for name in EYE_CHANNELS], -1).astype(np.float32),
        np.stack([maps[name] for name in SKULL_MOUTH_CHANNELS], -1).astype(np.float32),
        np.stack([maps[name] for name in JAW_MOUTH_CHANNELS], -1).astype(np.float32),
    )


# Where neighbouring teeth meet, on screen, as fractions of the half-mouth from its centre: the
# central incisors, the laterals, the canines (the arch turns away, so they narrow).
TOOTH_EDGES = (0.0, 0.3, 0.52, 0.7)


def _teeth_shading(along: np.ndarray, across: np.ndarray, gap: float) -> np.ndarray:
    """Brightness of a row of teeth in [0, 1]: ``along`` 0 at the gum line to 1 at the biting
    edge, ``across`` 0 at the centre to 1 at a corner, ``gap`` the dark seam's half-width
    (in units of ``across``). Darker by the gum (the lip's shadow), toward the corners (the
    arch turns away from the light) and in the seams between teeth."""
    seams = np.ones_like(across)
    for edge in TOOTH_EDGES:
        seams = seams * (1.0 - 0.45 * np.exp(-(((across - edge) / gap) ** 2)))
    by_gum = 0.72 + 0.28 * smoothstep(0.0, 0.7, along)
    return seams * by_gum * (1.0 - 0.3 * np.clip(across, 0.0, 1.0) ** 2)


def _window_fade(size: int) -> np.ndarray:
    """1 well inside the mouth window, fading to 0 before its edge (in source space: the jaw
    drops by up to ~0.1 of the frame, so the bottom margin is the widest)."""
    top, bottom, left, right = (f * size for f in MOUTH_WINDOW)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    margin = 0.02 * size
    fade_y = smoothstep(top, top + margin, ys) * (
        1.0 - smoothstep(bottom - 6 * margin, bottom - 4 * margin, ys)
    )
    fade_x = smoothstep(left, left + 2 * margin, xs) * (
        1.0 - smoothstep(right - 2 * margin, right, xs)
    )
    return (fade_x * fade_y).astype(np.float32)


def palette(image: np.ndarray, lm: np.ndarray, frame: FaceFrame) -> np.ndarray:
    """Mouth-interior and eyelid colours matched to the portrait's skin and lighting."""
    img = image.astype(np.float32) / 255.0

    def patch_median(center: np.ndarray, radius: float) -> np.ndarray:
        x0, y0 = np.round(center[:2] - radius).astype(int)
        x1, y1 = np.round(center[:2] + radius).astype(int) + 1
        h, w = img.shape[:2]
        region = img[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)].reshape(-1, 3)
        return np.median(region, 0) if len(region) else np.full(3, 0.6, np.float32)

    r = 0.05 * frame.face_height
    cheeks = [lm[205], lm[425]]  # mid-cheek points
    skin = np.mean([patch_median(c, r) for c in cheeks], 0)
    lum = float(np.clip(skin.mean(), 0.15, 0.9))
    # Dark: a lighter cavity made FaceMesh read slightly parted p/b/m lips as open (the
    # learned model's p/b/m closed 0.93 -> 0.72 on real speech, `emote eval`); it still
    # darkens toward the throat.
    cavity = 0.08 * skin + np.array([0.03, 0.0, 0.0])
    teeth = np.clip(0.45 * np.array([0.92, 0.88, 0.80]) * (lum / 0.55) + 0.2 * skin, 0.0, 0.85)
    tongue = np.clip(np.array([0.55, 0.24, 0.24]) * (lum / 0.6) * 0.8, 0.0, 1.0)
    lids = [lm[27] * 0.5 + lm[159] * 0.5, lm[257] * 0.5 + lm[386] * 0.5]  # just above the lids
    lid = 0.92 * np.mean([patch_median(c, 0.4 * r) for c in lids], 0)
    return np.stack([cavity, teeth, tongue, lid]).astype(np.float32)


def quads(maps: np.ndarray, dtype: type = np.float16) -> np.ndarray:
    """(S, S, C) -> (S, S, 4C) float16: each pixel with its right, lower and lower-right
    neighbours (the border repeats), the renderer's table for one-Gather bilinear sampling."""
    right = np.concatenate([maps[:, 1:], maps[:, -1:]], 1)
    below = np.concatenate([maps[1:], maps[-1:]], 0)
    below_right = np.concatenate([right[1:], right[-1:]], 0)
    return np.ascontiguousarray(np.concatenate([maps, right, below, below_right], 2), dtype=dtype)
