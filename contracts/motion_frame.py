"""The motion frame: one float32 vector with named fields, defined here and nowhere else.

A motion frame describes the face at one video frame (frame k covers audio samples
[640k, 640(k+1)) at 16 kHz / 25 fps):

* a subset of the ARKit blendshapes, under their ARKit names, each in [0, 1];
* head pose: yaw, pitch, roll in radians (positive yaw turns the face to the viewer's
  right, positive pitch nods down, positive roll tilts clockwise on screen); translation
  (x right, y down) as a fraction of the face size (the distance from the brow line to the
  chin); scale as a relative change (0 = unchanged, 0.05 = 5 % larger);
* gaze: horizontal and vertical iris shift as a fraction of the eye opening, in [-1, 1]
  (positive = the viewer's right / down).

Everything that reads or writes motion (generators, the renderer, the data channel, the
training corpus) uses these names and this order. Changing the layout changes the ONNX
graphs' input width: re-export and retrain.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

import numpy as np

BLENDSHAPES: tuple[str, ...] = (
    "jawOpen",
    "mouthClose",
    "mouthFunnel",
    "mouthPucker",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "eyeBlinkLeft",
    "eyeBlinkRight",
    "eyeWideLeft",
    "eyeWideRight",
    "eyeSquintLeft",
    "eyeSquintRight",
    "browInnerUp",
    "browDownLeft",
    "browDownRight",
    "browOuterUpLeft",
    "browOuterUpRight",
)
HEAD_POSE: tuple[str, ...] = ("headYaw", "headPitch", "headRoll", "headTx", "headTy", "headScale")
GAZE: tuple[str, ...] = ("gazeX", "gazeY")

FIELDS: tuple[str, ...] = BLENDSHAPES + HEAD_POSE + GAZE
DIM: int = len(FIELDS)
NUM_BLENDSHAPES: int = len(BLENDSHAPES)
INDEX: dict[str, int] = {name: i for i, name in enumerate(FIELDS)}

# The mouth's fields (jawOpen and every mouth* blendshape): what lip sync drives.
MOUTH_INDICES = np.array(
    [i for i, name in enumerate(BLENDSHAPES) if name.startswith(("jaw", "mouth"))]
)
HEAD_SLICE = slice(NUM_BLENDSHAPES, NUM_BLENDSHAPES + len(HEAD_POSE))
GAZE_SLICE = slice(HEAD_SLICE.stop, HEAD_SLICE.stop + len(GAZE))

# Physical limits: anything outside is clipped before rendering.
_LOWER = np.array(
    [0.0] * NUM_BLENDSHAPES + [-0.6, -0.5, -0.5, -0.3, -0.3, -0.3] + [-1.0, -1.0], np.float32
)
_UPPER = np.array([1.0] * NUM_BLENDSHAPES + [0.6, 0.5, 0.5, 0.3, 0.3, 0.3] + [1.0, 1.0], np.float32)
LOWER: np.ndarray = _LOWER  # per field, in FIELDS order (read-only by convention)
UPPER: np.ndarray = _UPPER

# ARKit "Left"/"Right" are the subject's own sides, as in ARKit.


# The head turns the renderer draws as a head (issue 14's head range, docs/benchmarks.md
# "Renderer v2, head range"): generators keep their frames inside it (``keep_head_in_range``).
CLEAN_HEAD_RANGE: dict[str, float] = {"headYaw": 0.45, "headPitch": 0.3, "headRoll": 0.25}
_KNEE = 0.7  # the soft limit leaves values below this share of the range untouched


def keep_head_in_range(frames: np.ndarray) -> np.ndarray:
    """``frames`` (..., DIM) with head yaw, pitch and roll softly limited to
    CLEAN_HEAD_RANGE: unchanged up to 70% of the range, then bending smoothly (C1, tanh)
    toward its edge, never past it."""
    out = np.array(frames, np.float32, copy=True)
    for name, limit in CLEAN_HEAD_RANGE.items():
        v = out[..., INDEX[name]]
        knee = _KNEE * limit
        excess = np.maximum(np.abs(v) - knee, 0.0)
        bent = knee + (limit - knee) * np.tanh(excess / (limit - knee))
        out[..., INDEX[name]] = np.where(np.abs(v) > knee, np.sign(v) * bent, v)
    return out


def neutral(batch: int | None = None) -> np.ndarray:
    """The rest pose: all zeros (no expression, head as in the portrait)."""
    shape = (DIM,) if batch is None else (batch, DIM)
    return np.zeros(shape, np.float32)


def clip(frames: np.ndarray) -> np.ndarray:
    """Clip one frame ``(DIM,)`` or many ``(..., DIM)`` to the physical limits."""
    return np.clip(frames, _LOWER, _UPPER).astype(np.float32, copy=False)


def from_dict(values: Mapping[str, float]) -> np.ndarray:
    """Build a frame from named values; unnamed fields are neutral. Unknown names raise."""
    frame = neutral()
    for name, value in values.items():
        if name not in INDEX:
            raise KeyError(f"unknown motion field {name!r}")
        frame[INDEX[name]] = float(value)
    return frame


def to_dict(frame: np.ndarray) -> dict[str, float]:
    """Named values of one frame (JSON-ready floats)."""
    if frame.shape != (DIM,):
        raise ValueError(f"expected a motion frame of shape ({DIM},), got {frame.shape}")
    return {name: round(float(v), 5) for name, v in zip(FIELDS, frame, strict=True)}


def to_json(frame: np.ndarray, frame_index: int) -> str:
    """Serialize one frame with its session-clock frame index (e.g. for a data channel)."""
    return json.dumps({"frame": int(frame_index), "motion": to_dict(frame)})


def from_json(text: str) -> tuple[int, np.ndarray]:
    """Inverse of :func:`to_json`."""
    payload = json.loads(text)
    return int(payload["frame"]), from_dict(payload["motion"])


def indices(names: Iterable[str]) -> list[int]:
    """Positions of the named fields."""
    return [INDEX[name] for name in names]
