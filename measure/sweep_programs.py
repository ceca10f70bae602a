"""The renderer sweep's motion programs: the head sweep, the expression sweep and the blink
(25 fps motion frames), the head sweep's contact-sheet frames, and rendering a program in
batches. Every measured quantity is defined in measure/render_sweep.py's docstring."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from contracts import motion_frame as mf

if TYPE_CHECKING:
    from engines.frame_renderer import FrameRenderer

STEP = 0.025  # radians per frame at most, on the ramps' mean (a raised cosine peaks at pi/2 of it)
BLINK_RAMP = 4  # frames from open to shut and back
BLINK_HOLD = 3  # frames held shut

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

# Shut eyes at the head sweep's extremes (label, yaw, pitch, roll): a lid drawn only inside a
# static window of the frame, or one that does not follow the turned eye, shows here (the
# blink above is at rest).
BLINK_POSES: tuple[tuple[str, float, float, float], ...] = (
    ("yaw -0.45", -0.45, 0.0, 0.0),
    ("yaw +0.45", 0.45, 0.0, 0.0),
    ("pitch -0.3", 0.0, -0.3, 0.0),
    ("pitch +0.3", 0.0, 0.3, 0.0),
    ("roll -0.25", 0.0, 0.0, -0.25),
    ("roll +0.25", 0.0, 0.0, 0.25),
    ("p+.3 r-.25", 0.0, 0.3, -0.25),
    ("p+.3 r+.25", 0.0, 0.3, 0.25),
    ("y-.45 p+.3", -0.45, 0.3, 0.0),
    ("y+.45 p+.3", 0.45, 0.3, 0.0),
)
NEAR_EYE_YAW = 0.3  # at |yaw| >= this the far eye nears the silhouette: read the near one

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


def posed_blink() -> np.ndarray:
    """Each pose of ``BLINK_POSES`` with the eyes open, then shut (eyeBlink 1 on both):
    (2 n, DIM) motion frames, open and shut alternating, in ``BLINK_POSES``' order."""
    frames = []
    for _, *pose in BLINK_POSES:
        for blink_value in (0.0, 1.0):
            frame = mf.from_dict({"eyeBlinkLeft": blink_value, "eyeBlinkRight": blink_value})
            frame[mf.HEAD_SLICE][:3] = pose
            frames.append(frame)
    return mf.clip(np.stack(frames))


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


def render_frames(
    renderer: FrameRenderer, motion: np.ndarray, batch: int = 8
) -> Iterator[np.ndarray]:
    for start in range(0, len(motion), batch):
        yield from renderer.render(motion[start : start + batch])
