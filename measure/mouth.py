"""The live bench's mouth instrument: FaceMesh's plain mesh (static mode) on kept frames, the
session's closed and open levels and the open threshold between them; and rendered frames of
known opening to check it against (``dsp_mouth`` through ``portrait_renderer``: bench
mouth_instrument, tests/test_bench_instrument.py).

Why the plain mesh: on rendered frames of known opening FaceMesh's refined lip model reads
every jawOpen up to ~0.35 as shut and, at 0.45-0.55, anywhere from shut to open with the
head's pose; the plain mesh rises steadily with the opening at every pose
(docs/mouth_instrument.json, docs/benchmarks.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np

from measure.facemesh import FaceTracker

if TYPE_CHECKING:
    from engines.frame_renderer import FrameRenderer

OPEN_FRACTION = 0.2
MIN_MOUTH_RANGE = 0.005  # of the face height; FaceMesh's noise on a shut mouth is ~0.001


def as_rgb(frame: np.ndarray) -> np.ndarray:
    """A kept frame (yuv420p planes, as decoded: 1.5 bytes a pixel) as RGB."""
    if frame.ndim == 3:
        return frame
    return av.VideoFrame.from_ndarray(frame, format="yuv420p").to_ndarray(format="rgb24")


def mouth_openings(frames: dict[int, np.ndarray]) -> dict[int, float]:
    """Inner-lip gap / face height per kept frame (frames without a face are left out).

    FaceMesh without its refined lip model (``refine_landmarks=False``): on rendered frames
    of known opening the refined lips read every jawOpen up to ~0.35 as shut and, at 0.45-0.55
    (a moderate vowel), anywhere from shut to open with the head's pose, so a visibly open
    mouth could go unseen; the plain mesh rises steadily with the opening at every pose
    (docs/benchmarks.md, tests/test_bench_instrument.py). Its reading of a shut mouth is
    noisier (up to ~0.009 of the face height), well under the open threshold."""

    tracker = FaceTracker(static=True, refine=False)
    try:
        keys = sorted(frames)
        mouth = [tracker.track([as_rgb(frames[k])]).mouth[0] for k in keys]
    finally:
        tracker.close()
    return {k: float(m) for k, m in zip(keys, mouth, strict=True) if np.isfinite(m)}


def mouth_levels(values: np.ndarray) -> tuple[float, float, float]:
    """(closed, open, threshold) of a session's mouth openings: the 5th percentile, the 99.5th
    (speech opens the mouth in few frames; a FaceMesh outlier or two does not count; a
    percentile rather than the n-th widest, so that a longer run is not judged against a
    wider opening), and ``OPEN_FRACTION`` of the way between them."""
    if len(values) < 3:
        return 0.0, 0.0, np.inf
    closed, opened = float(np.percentile(values, 5)), float(np.percentile(values, 99.5))
    return closed, opened, closed + OPEN_FRACTION * (opened - closed)


def portrait_renderer(image: Path, cache: Path) -> FrameRenderer:
    """A one-thread CPU ``FrameRenderer`` for the portrait in ``image``, prepared into
    ``cache`` (an ``engines.frame_renderer.FrameRenderer``)."""
    from engines.avatar import prepare_avatar
    from engines.frame_renderer import FrameRenderer
    from engines.renderer_models import create_renderer
    from engines.rig import rig_for_avatar

    avatar = prepare_avatar(image, cache_dir=cache)
    rig = rig_for_avatar(avatar.avatar_id, avatar.image, avatar.landmarks, cache)
    return FrameRenderer(create_renderer("onnxruntime", "cpu", 1), rig)


def dsp_mouth(jaw: float, yaw: float, pitch: float, roll: float) -> np.ndarray:
    """A motion frame with the dsp generator's mouth at ``jaw`` and the head turned."""
    from contracts import motion_frame as mf

    motion = mf.neutral().copy()
    lips = jaw / 0.8
    motion[mf.INDEX["jawOpen"]] = jaw
    for side in ("Left", "Right"):
        motion[mf.INDEX[f"mouthLowerDown{side}"]] = 0.5 * lips
        motion[mf.INDEX[f"mouthUpperUp{side}"]] = 0.3 * lips
    motion[mf.INDEX["headYaw"]], motion[mf.INDEX["headPitch"]] = yaw, pitch
    motion[mf.INDEX["headRoll"]] = roll
    return motion
