"""How far a portrait's head may turn: its own yaw, and a soft limit on the turn it is drawn at.

A warp can only show what the portrait shows. A face painted or photographed in three-quarter
view that is turned further away becomes a near profile whose far side the picture never had:
the cheek's edge stretches over the background into streaks, and the face stops reading as a
face (docs/benchmarks.md, "Renderer v2, head range": the Girl with a Pearl Earring, turned
-0.45 rad on top of her own ~-0.6, is lost by FaceMesh). So the renderer limits the *total*
yaw, the portrait's own plus the commanded, softly to ``TOTAL_YAW_LIMIT``: a frontal portrait
is never limited inside the motion frame's range, a turned one turns less only in the direction
it already faces.

Turned back toward the camera, the same portrait shows the side it hides: the far cheek and
eye, which the picture has only foreshortened, are stretched out of a few pixels (the Vermeer,
own yaw ~-0.57, turned back by 0.45: a wide, blurred far eye and a jagged cheek edge; a seam
on the far cheek shows from 0.25, and 0.15 is clean). So a portrait turned by more than
``REVEAL_LIMIT`` is turned back softly: drawn as commanded up to ``REVEAL_KNEE``, then
bending toward ``REVEAL_LIMIT``, never past it (it stays on its own side). One turned less
(the Mona Lisa, -0.31) hides no more than that, and is drawn as commanded past frontal and on
to the side it shows.

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
REVEAL_KNEE = 0.2  # rad of turn back drawn as commanded (the Vermeer: clean to ~0.2)
REVEAL_LIMIT = 0.35  # rad: never turned back further (the Vermeer at 0.45: a stretched far eye)


def own_yaw(landmarks: np.ndarray) -> float:
    """The portrait's own head yaw (rad) from FaceMesh's (478, 3) pixel landmarks: the median
    over symmetric pairs of atan2(depth difference, horizontal distance)."""
    lm = np.asarray(landmarks, np.float64)
    right = lm[[a for a, _ in _PAIRS]]
    left = lm[[b for _, b in _PAIRS]]
    angles = np.arctan2(left[:, 2] - right[:, 2], left[:, 0] - right[:, 0])
    return float(np.median(angles))


def _soft(value: np.ndarray, knee: float, limit: float) -> np.ndarray:
    """``value`` (>= 0) unchanged up to ``knee``, then bending (C1, tanh) toward ``limit``."""
    room = limit - knee
    return np.where(value > knee, knee + room * np.tanh((value - knee) / room), value)


def limit_total_yaw(yaw: np.ndarray, own: float) -> np.ndarray:
    """Commanded ``yaw`` (any shape) with own + yaw softly limited to +-TOTAL_YAW_LIMIT:
    unchanged while |own + yaw| <= _KNEE, then bending smoothly (C1, tanh) toward the limit,
    never past it. A portrait already turned past the knee is not turned further away, and
    turning back is never limited."""
    yaw = np.asarray(yaw, np.float32)
    total = own + yaw
    start = max(_KNEE, abs(own))
    limit = start + max(TOTAL_YAW_LIMIT - start, 1e-6)
    return (np.sign(total) * _soft(np.abs(total), start, limit) - own).astype(np.float32)


def limit_reveal(yaw: np.ndarray, own: float) -> np.ndarray:
    """Commanded ``yaw`` with the hidden side a turn back toward the camera reveals softly
    limited. A portrait turned by more than REVEAL_LIMIT hides more than may be revealed:
    its turn back is drawn as commanded up to REVEAL_KNEE and never past REVEAL_LIMIT (so
    it stays on its own side). One turned less hides at most REVEAL_LIMIT and is drawn as
    commanded. Turns away are untouched here. Monotonic, continuous, slope <= 1."""
    yaw = np.asarray(yaw, np.float32)
    if abs(own) <= REVEAL_LIMIT:
        return yaw
    toward = -np.sign(own)
    back = yaw * toward  # > 0: toward the camera
    return np.where(back > 0, _soft(back, REVEAL_KNEE, REVEAL_LIMIT) * toward, yaw).astype(
        np.float32
    )


def limit_yaw(yaw: np.ndarray, own: float) -> np.ndarray:
    """Both limits: the hidden side revealed (turning back), the total turn (turning away)."""
    return limit_total_yaw(limit_reveal(yaw, own), own)


def _limited(column: np.ndarray, own: float) -> bool:
    """Whether any commanded yaw of ``column`` reaches either limit's knee."""
    if np.any(np.abs(own + column) > _KNEE):
        return True
    return abs(own) > REVEAL_LIMIT and bool(np.any(-np.sign(own) * column > REVEAL_KNEE))


def limit_motion(motion: np.ndarray, own: float) -> np.ndarray:
    """(n, DIM) motion frames with their head yaw limited (``limit_yaw``) for a portrait of
    yaw ``own``; the same array when no frame needs it."""
    column = motion[..., INDEX["headYaw"]]
    if not _limited(column, own):
        return motion
    out = motion.copy()
    out[..., INDEX["headYaw"]] = limit_yaw(column, own)
    return out
