"""The ``motion`` data channel's messages (docs/api.md, "Motion channel"): JSON text, one
message per video frame from the server, puppeteering messages from the client.

Server -> client, one per video frame, sent when that frame is handed to the video track::

    {"type": "motion", "frame": k, "rtp_timestamp": k * 3600, "t": k / 25,
     "arkit": {<the 52 ARKit blendshape names>: 0..1},
     "head": {"yaw", "pitch", "roll" (rad), "tx", "ty" (face sizes), "scale" (relative)},
     "gaze": {"x", "y"} (-1..1, positive = the viewer's right / down)}

``rtp_timestamp`` is the frame's 90 kHz media timestamp before the sender's random RTP
offset, so ``frame`` and ``rtp_timestamp`` both name the video frame the message describes.
Of ARKit's 52 names the motion frame carries 27 (``contracts.motion_frame.BLENDSHAPES``). The
8 ``eyeLook*`` are derived from the gaze (``arkit_values``). The other 17 (``cheekPuff``,
``jawForward``, ``mouthDimple*``, ``tongueOut``, ...) are always 0: this face never moves
them.

Client -> server, to drive the face (puppeteering)::

    {"type": "motion", "motion": {<motion-frame field>: value, ...}, "hold_ms": 500}

The fields are the motion frame's (the same names and ranges as motion files:
``contracts.motion_file``). The fields given replace the generator's values in every frame
made in the next ``hold_ms`` (1..5000, default 500), and the others stay the generator's, so
a client can turn the head while the audio moves the mouth. Anything else is a
``MotionMessageError`` naming the problem, and the session goes on unchanged.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

from contracts import motion_frame
from contracts.clock import FPS
from contracts.motion_file import ARKIT_NOT_CARRIED, MotionFileError, parse_fields

LABEL = "motion"  # the data channel's label
PTS_PER_FRAME = 90_000 // FPS  # the video's 90 kHz RTP clock
MAX_MESSAGE = 16 * 1024  # bytes of one client message
DEFAULT_HOLD_S = 0.5
MAX_HOLD_S = 5.0
ARKIT_52: tuple[str, ...] = tuple(sorted(set(motion_frame.BLENDSHAPES) | ARKIT_NOT_CARRIED))
EYE_LOOK: tuple[str, ...] = tuple(sorted(n for n in ARKIT_NOT_CARRIED if n.startswith("eyeLook")))
ALWAYS_ZERO: tuple[str, ...] = tuple(sorted(ARKIT_NOT_CARRIED - set(EYE_LOOK)))
_HEAD_KEYS = {
    "headYaw": "yaw",
    "headPitch": "pitch",
    "headRoll": "roll",
    "headTx": "tx",
    "headTy": "ty",
    "headScale": "scale",
}


class MotionMessageError(ValueError):
    """A client message that cannot be used; the message says why, in one line."""


def arkit_values(frame: np.ndarray) -> dict[str, float]:
    """The 52 ARKit blendshapes of one motion frame. The gaze becomes ``eyeLook*``: the iris
    shifted to the viewer's right (gazeX > 0) is the subject's left eye looking out and the
    right eye looking in, by the shift's fraction of the eye opening; down / up likewise."""
    values = dict.fromkeys(ARKIT_52, 0.0)
    for name in motion_frame.BLENDSHAPES:
        values[name] = round(float(frame[motion_frame.INDEX[name]]), 4)
    gx = float(frame[motion_frame.INDEX["gazeX"]])
    gy = float(frame[motion_frame.INDEX["gazeY"]])
    right, left, down, up = max(gx, 0.0), max(-gx, 0.0), max(gy, 0.0), max(-gy, 0.0)
    values["eyeLookOutLeft"] = values["eyeLookInRight"] = round(min(right, 1.0), 4)
    values["eyeLookInLeft"] = values["eyeLookOutRight"] = round(min(left, 1.0), 4)
    values["eyeLookDownLeft"] = values["eyeLookDownRight"] = round(min(down, 1.0), 4)
    values["eyeLookUpLeft"] = values["eyeLookUpRight"] = round(min(up, 1.0), 4)
    return values


def frame_message(k: int, frame: np.ndarray) -> str:
    """The server's message for video frame ``k`` showing motion ``frame``."""
    index = motion_frame.INDEX
    return json.dumps(
        {
            "type": "motion",
            "frame": k,
            "rtp_timestamp": k * PTS_PER_FRAME,
            "t": round(k / FPS, 3),
            "arkit": arkit_values(frame),
            "head": {key: round(float(frame[index[f]]), 5) for f, key in _HEAD_KEYS.items()},
            "gaze": {
                "x": round(float(frame[index["gazeX"]]), 4),
                "y": round(float(frame[index["gazeY"]]), 4),
            },
        },
        separators=(",", ":"),
    )


@dataclass(frozen=True)
class Puppet:
    """Fields a client set (``mask``) to ``values``, for ``hold_s`` seconds."""

    mask: np.ndarray  # (DIM,) bool
    values: np.ndarray  # (DIM,) float32
    hold_s: float

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """``frames`` (..., DIM) with the set fields replaced."""
        return np.where(self.mask, self.values, frames).astype(np.float32)


def parse_message(text: str | bytes) -> Puppet:
    """A client's puppeteering message, checked; ``MotionMessageError`` names the problem."""
    if isinstance(text, bytes):
        raise MotionMessageError("messages are JSON text, not binary")
    if len(text.encode("utf-8", "replace")) > MAX_MESSAGE:
        raise MotionMessageError(f"message longer than {MAX_MESSAGE} bytes")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise MotionMessageError(f"not JSON: {e.msg} at character {e.pos}") from None
    if not isinstance(data, dict):
        raise MotionMessageError("a message is a JSON object")
    if data.get("type") != "motion":
        raise MotionMessageError(f"unknown message type {str(data.get('type'))[:40]!r}")
    unknown = set(data) - {"type", "motion", "hold_ms"}
    if unknown:
        raise MotionMessageError(f"unknown keys: {', '.join(sorted(unknown))[:200]}")
    hold_ms = data.get("hold_ms", DEFAULT_HOLD_S * 1000)
    if (
        isinstance(hold_ms, bool)
        or not isinstance(hold_ms, int | float)
        or not math.isfinite(hold_ms)
        or not 1 <= hold_ms <= MAX_HOLD_S * 1000
    ):
        raise MotionMessageError(f"hold_ms must be 1..{MAX_HOLD_S * 1000:g}, got {hold_ms!r}")
    try:
        values, _ignored = parse_fields(data.get("motion"), "motion message")
    except MotionFileError as e:
        raise MotionMessageError(str(e)) from None
    if not values:
        raise MotionMessageError("the message sets no field the face carries")
    mask = np.zeros(motion_frame.DIM, bool)
    frame = motion_frame.neutral()
    for name, value in values.items():
        mask[motion_frame.INDEX[name]] = True
        frame[motion_frame.INDEX[name]] = value
    return Puppet(mask, frame, float(hold_ms) / 1000.0)
