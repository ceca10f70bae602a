"""How far a portrait's head may turn: its own yaw, and a soft limit on the turn it is drawn at.

A warp can only show what the portrait shows. A face painted or photographed in three-quarter
view that is turned further away becomes a near profile whose far side the picture never had:
the cheek's edge stretches over the background into streaks, and the face stops reading as a
face (docs/benchmarks.md, "Renderer v2, head range": the Girl with a Pearl Earring, turned
-0.45 rad on top of her own ~-0.6, is lost by FaceMesh). So the renderer limits the *total*
yaw, the portrait's own plus the commanded, softly to ``TOTAL_YAW_LIMIT``: a frontal portrait
is never limited inside the motion frame's range, a turned one turns less only in the direction
it already faces.

Yaw follows the motion frame's convention (``measure.sweep_pose.rotation``: image axes, x
right, z away from the camera; a positive yaw brings the subject's left cheek, image right,
toward the back).
"""

from __future__ import annotations

import numpy as np

from contracts.motion_frame import INDEX

# Symmetric landmark pairs across the face (subject's right, subject's left): cheeks, jaw,
# eye corners, temples. Their depth difference over their width is the face's own yaw.
_PAIRS = ((234, 454), (93, 323), (132, 361), (58, 288), (33, 263), (133, 362), (127, 356))

TOTAL_YAW_LIMIT = 0.85  # rad, own + commanded: past this the far cheek has no pixels to show
_KNEE = 0.6  # total yaw below this is drawn as commanded


def own_yaw(landmarks: np.ndarray) -> float:
    """The portrait's own head yaw (rad) from FaceMesh's (478, 3) pixel landmarks: the median
    over symmetric pairs of atan2(depth difference, horizontal distance)."""
    lm = np.asarray(landmarks, np.float64)
    right = lm[[a for a, _ in _PAIRS]]
    left = lm[[b for _, b in _PAIRS]]
    angles = np.arctan2(left[:, 2] - right[:, 2], left[:, 0] - right[:, 0])
    return float(np.median(angles))


def limit_total_yaw(yaw: np.ndarray, own: float) -> np.ndarray:
    """Commanded ``yaw`` (any shape) with own + yaw softly limited to +-TOTAL_YAW_LIMIT:
    unchanged while |own + yaw| <= _KNEE, then bending smoothly (C1, tanh) toward the limit,
    never past it. A portrait already turned past the knee is not turned further away, and
    turning back is never limited."""
    yaw = np.asarray(yaw, np.float32)
    total = own + yaw
    start = max(_KNEE, abs(own))
    room = max(TOTAL_YAW_LIMIT - start, 1e-6)
    excess = np.maximum(np.abs(total) - start, 0.0)
    bent = start + room * np.tanh(excess / room)
    limited = np.where(np.abs(total) > start, np.sign(total) * bent, total) - own
    return limited.astype(np.float32)


def limit_motion(motion: np.ndarray, own: float) -> np.ndarray:
    """(n, DIM) motion frames with their head yaw limited for a portrait of yaw ``own``; the
    same array when no frame needs it."""
    column = motion[..., INDEX["headYaw"]]
    if np.all(np.abs(own + column) <= _KNEE):
        return motion
    out = motion.copy()
    out[..., INDEX["headYaw"]] = limit_total_yaw(column, own)
    return out
