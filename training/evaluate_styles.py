"""Do the speaking styles show? Read from rendered frames with FaceMesh (`emote eval`).

One real speech clip is generated in every style (contracts/style.py) at intensity 1 with
the same seed, rendered and tracked; each style's readings are compared with neutral's.
Readings, per clip, from the FaceMesh landmarks of every frame with a face (x, y in pixels
of the 512x512 render; "face height" is landmark 10 to 152):

* ``brow_height``: mean over both sides of (upper lid - brow middle) / face height, the lid
  at landmarks 159 / 386 and the brow middle at 105 / 334 (image y grows downward, so a
  raised brow reads larger);
* ``inner_brow``: the same from the inner brow ends, 107 / 336 (sadness lifts them);
* ``eye_opening``: FaceTrack.eyes (lid gap over eye width), median over frames;
* ``mouth_width``: FaceTrack.width (corner distance over face height), median;
* ``mouth_range``: p95 - p5 of FaceTrack.mouth (how big the speech movements are);
* ``head_px_std``: the nose tip's spread (training/evaluate_songs.head_px_std);
* ``nose_y``: the nose tip's mean y over the face height (a lowered head reads larger).

``EXPECTED`` names, per style, the readings that must move and which way; a style "reads"
when every one of them moves that way by more than ``MARGIN`` of its neutral value (the
readings are noisy: FaceMesh moves landmarks by about a pixel between frames).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from contracts.style import STYLES, Style
from measure.facemesh import FaceTrack
from measure.lipsync import fill_nan
from training.evaluate_songs import head_px_std

EXPECTED: dict[str, dict[str, int]] = {
    "happy": {"mouth_width": +1, "eye_opening": -1},
    "sad": {"inner_brow": +1, "nose_y": +1, "head_px_std": -1},
    "angry": {"brow_height": -1, "eye_opening": -1},
    "surprised": {"brow_height": +1, "eye_opening": +1},
}
MARGIN = 0.03  # 3 % of the neutral reading


def _landmark_readings(landmarks: list[np.ndarray | None]) -> dict[str, float]:
    brow, inner, nose = [], [], []
    for lm in landmarks:
        if lm is None:
            continue
        face = float(np.linalg.norm(lm[10, :2] - lm[152, :2]))
        lids = (lm[159, 1] + lm[386, 1]) / 2
        brow.append((lids - (lm[105, 1] + lm[334, 1]) / 2) / face)
        inner.append((lids - (lm[107, 1] + lm[336, 1]) / 2) / face)
        nose.append((lm[1, 1] - lm[10, 1]) / face)
    if not brow:
        return {"brow_height": float("nan"), "inner_brow": float("nan"), "nose_y": float("nan")}
    return {
        "brow_height": float(np.median(brow)),
        "inner_brow": float(np.median(inner)),
        "nose_y": float(np.mean(nose)),
    }


def style_readings(track: FaceTrack) -> dict[str, float]:
    """The readings of one rendered clip (module docstring)."""
    mouth = fill_nan(track.mouth)
    return _landmark_readings(track.landmarks) | {
        "eye_opening": float(np.nanmedian(track.eyes)),
        "mouth_width": float(np.nanmedian(track.width)),
        "mouth_range": float(np.percentile(mouth, 95) - np.percentile(mouth, 5)),
        "head_px_std": head_px_std(track.landmarks),
    }


def judge(readings: dict[str, dict[str, float]]) -> dict[str, dict]:
    """Per style: each expected reading's change from neutral (relative) and whether the
    style reads (every expected change beyond MARGIN, the right way)."""
    neutral = readings["neutral"]
    out: dict[str, dict] = {}
    for name, wanted in EXPECTED.items():
        if name not in readings:
            continue
        changes = {
            key: (readings[name][key] - neutral[key]) / max(abs(neutral[key]), 1e-9)
            for key in wanted
        }
        reads = all(sign * changes[key] > MARGIN for key, sign in wanted.items())
        out[name] = {"changes": changes, "reads": bool(reads)}
    return out


def evaluate_styles(
    generate: Callable[[Style], np.ndarray], track: Callable[[np.ndarray], FaceTrack]
) -> dict:
    """``generate(style)`` -> motion frames of the clip in that style; ``track`` renders and
    tracks them. Returns {"readings": {style: readings}, "judged": judge(...), "reads": the
    fraction of non-neutral styles that read}."""
    readings = {name: style_readings(track(generate(Style(name)))) for name in STYLES}
    judged = judge(readings)
    reads = float(np.mean([j["reads"] for j in judged.values()])) if judged else float("nan")
    return {"readings": readings, "judged": judged, "reads": reads}
