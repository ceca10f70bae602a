"""Motion files: motion frames as JSON Lines, so any source can drive the face.

``emote motion`` writes one, ``emote render --motion-file`` reads one (docs/api.md, "Motion
files"). One JSON object per line, blank lines allowed:

* an optional first line, the header: ``{"emote_motion": 1, "fps": 25}`` (``fps``: the
  rate of ``"frame"`` indices below, 1-240; default 25; other keys are kept as metadata);
* then one line per frame: ``{"frame": k, "motion": {"jawOpen": 0.4, "headYaw": 0.1, ...}}``
  or ``{"t": seconds, "motion": {...}}``. Fields are the motion frame's (contracts.motion_frame:
  ARKit blendshape names in [0, 1], head pose, gaze); unnamed fields are neutral (0). A line
  without ``"frame"`` or ``"t"`` is the next frame. Times must increase.

Frames are resampled to the renderer's 25 fps by linear interpolation in time (a 60 fps ARKit
capture, a 30 fps Audio2Face export), from t = 0 to the last frame's time. ARKit blendshapes
the motion frame does not carry (``cheekPuff``, ``tongueOut``, ``eyeLookInLeft``, ...) are
ignored and listed in :attr:`MotionTrack.ignored`; any other unknown name, a value out of
its range or not a finite number, a malformed line or a time going backwards is a
:class:`MotionFileError` that names the line. Nothing here needs more than numpy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from contracts import motion_frame
from contracts.clock import FPS

FORMAT_VERSION = 1
MAX_FPS = 240
MAX_FRAMES = 25 * 60 * 60 * 3  # three hours at 25 fps: a bound, not a limit anyone meets
MAX_LINE = 64 * 1024

# ARKit's 52 blendshapes (ARFaceAnchor.BlendShapeLocation) that the motion frame does not carry.
ARKIT_NOT_CARRIED: frozenset[str] = frozenset(
    {
        "cheekPuff",
        "cheekSquintLeft",
        "cheekSquintRight",
        "eyeLookDownLeft",
        "eyeLookDownRight",
        "eyeLookInLeft",
        "eyeLookInRight",
        "eyeLookOutLeft",
        "eyeLookOutRight",
        "eyeLookUpLeft",
        "eyeLookUpRight",
        "jawForward",
        "jawLeft",
        "jawRight",
        "mouthDimpleLeft",
        "mouthDimpleRight",
        "mouthFrownLeft",
        "mouthFrownRight",
        "mouthLeft",
        "mouthRight",
        "mouthShrugLower",
        "mouthShrugUpper",
        "noseSneerLeft",
        "noseSneerRight",
        "tongueOut",
    }
)


class MotionFileError(ValueError):
    """A motion file that cannot be read; the message names the file and the line."""


@dataclass
class MotionTrack:
    """A motion file's frames at 25 fps, ``(n, DIM)`` float32, and what was left out."""

    frames: np.ndarray
    ignored: tuple[str, ...] = ()
    header: dict[str, object] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return len(self.frames) / FPS


def _range(name: str) -> tuple[float, float]:
    i = motion_frame.INDEX[name]
    return float(motion_frame.LOWER[i]), float(motion_frame.UPPER[i])


def parse_fields(values: object, where: str) -> tuple[dict[str, float], set[str]]:
    """Named motion values, checked: (the carried fields and their values, the ARKit names
    ignored). Raises ``MotionFileError`` naming ``where`` for an unknown name, a value out of
    its range or not a finite number (motion files; the motion data channel)."""
    if not isinstance(values, Mapping):
        raise MotionFileError(f'{where}: "motion" must be an object of field names to numbers')
    out: dict[str, float] = {}
    ignored: set[str] = set()
    for name, value in values.items():
        if name in ARKIT_NOT_CARRIED:
            ignored.add(name)
            continue
        if name not in motion_frame.INDEX:
            raise MotionFileError(
                f"{where}: unknown motion field {str(name)[:60]!r} (the fields are the ARKit "
                "blendshapes of contracts/motion_frame.py, headYaw/Pitch/Roll/Tx/Ty/Scale, "
                "gazeX/Y)"
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MotionFileError(f"{where}: {name} must be a number, got {str(value)[:40]!r}")
        low, high = _range(name)
        if not math.isfinite(value) or not low <= value <= high:
            raise MotionFileError(f"{where}: {name} = {value} is outside [{low:g}, {high:g}]")
        out[name] = float(value)
    return out, ignored


def _frame(values: object, where: str, ignored: set[str]) -> np.ndarray:
    named, skipped = parse_fields(values, where)
    ignored |= skipped
    frame = motion_frame.neutral()
    for name, value in named.items():
        frame[motion_frame.INDEX[name]] = value
    return frame


def _time(record: Mapping[str, object], where: str, fps: float, count: int) -> float:
    if "frame" in record and "t" in record:
        raise MotionFileError(f'{where}: give "frame" or "t", not both')
    if "frame" in record:
        k = record["frame"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise MotionFileError(f'{where}: "frame" must be a whole number >= 0, got {k!r}')
        return k / fps
    if "t" in record:
        t = record["t"]
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
            raise MotionFileError(f'{where}: "t" must be seconds >= 0, got {t!r}')
        return float(t)
    return count / fps


def parse_lines(lines: Iterable[str], name: str = "motion") -> MotionTrack:
    """Read motion-file lines (see the module docstring) into 25 fps frames."""
    header: dict[str, object] = {}
    fps = float(FPS)
    times: list[float] = []
    frames: list[np.ndarray] = []
    ignored: set[str] = set()
    for number, line in enumerate(lines, start=1):
        where = f"{name}, line {number}"
        if len(line) > MAX_LINE:
            raise MotionFileError(f"{where}: longer than {MAX_LINE} characters")
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MotionFileError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise MotionFileError(f"{where}: expected a JSON object")
        if "emote_motion" in record:
            if frames or header:
                raise MotionFileError(f"{where}: the header must be the first line")
            if record["emote_motion"] != FORMAT_VERSION:
                raise MotionFileError(
                    f"{where}: format version {record['emote_motion']!r}; "
                    f"this build reads {FORMAT_VERSION}"
                )
            rate = record.get("fps", FPS)
            if isinstance(rate, bool) or not isinstance(rate, int | float):
                raise MotionFileError(f'{where}: "fps" must be a number, got {rate!r}')
            if not 1 <= rate <= MAX_FPS:
                raise MotionFileError(f'{where}: "fps" must be between 1 and {MAX_FPS}')
            header, fps = dict(record), float(rate)
            continue
        if "motion" not in record:
            raise MotionFileError(f'{where}: a frame line needs "motion" (or is the header?)')
        unknown = set(record) - {"frame", "t", "motion"}
        if unknown:
            raise MotionFileError(f"{where}: unknown key(s) {sorted(unknown)}")
        t = _time(record, where, fps, len(frames))
        if times and t <= times[-1]:
            raise MotionFileError(f"{where}: time {t:.4f} s does not come after {times[-1]:.4f} s")
        if t * FPS > MAX_FRAMES:
            raise MotionFileError(f"{where}: {t:.0f} s is longer than this renderer takes")
        times.append(t)
        frames.append(_frame(record["motion"], where, ignored))
    if not frames:
        raise MotionFileError(f"{name}: no motion frames")
    return MotionTrack(_resample(np.array(times), np.stack(frames)), tuple(sorted(ignored)), header)


def _resample(times: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Frames at ``times`` -> frames at k / 25 for k = 0 .. the last time (held before the
    first given time)."""
    count = math.floor(times[-1] * FPS + 1e-6) + 1
    grid = np.arange(count) / FPS
    out = np.empty((count, frames.shape[1]), np.float32)
    for j in range(frames.shape[1]):
        out[:, j] = np.interp(grid, times, frames[:, j])
    return out


def read_motion_file(path: str | Path) -> MotionTrack:
    """Read a motion file; :class:`MotionFileError` names the line of the first problem."""
    path = Path(path)
    if not path.is_file():
        raise MotionFileError(f"motion file not found: {path}")
    try:
        with path.open(encoding="utf-8") as handle:
            return parse_lines(handle, path.name)
    except UnicodeDecodeError:
        raise MotionFileError(f"{path.name}: not UTF-8 text") from None


def write_motion(handle: IO[str], frames: Iterable[np.ndarray], **header: object) -> int:
    """Write the header and one line per 25 fps frame; returns the number of frames."""
    handle.write(json.dumps({"emote_motion": FORMAT_VERSION, "fps": FPS, **header}) + "\n")
    count = 0
    for count, frame in enumerate(frames, start=1):
        # Generators may step a hair past a limit (the renderer clips); files stay readable.
        handle.write(motion_frame.to_json(motion_frame.clip(frame), count - 1) + "\n")
    return count
