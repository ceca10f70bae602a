"""How the mouth shuts on a barge-in: the same closing for every transport (the live server's
``stream_server.deadline_render`` and the push core ``engines.avatar_frames``)."""

from __future__ import annotations

import numpy as np

from contracts import motion_frame as mf

MOUTH_FIELDS = [i for i, n in enumerate(mf.BLENDSHAPES) if n.startswith(("jaw", "mouth"))]
MOUTH_CLOSE_RATE = 0.15  # mouth openness left after each frame of closing (dsp: 1 - 0.85)
CLOSE_FRAMES = 3  # closing frames after an interrupt (0.15^3: shut)


def closing(motion: np.ndarray, step: int) -> np.ndarray:
    """``motion`` with its mouth fields ``step`` (1, 2, ...) frames into the closing."""
    out = np.array(motion, np.float32, copy=True)
    out[MOUTH_FIELDS] *= MOUTH_CLOSE_RATE**step
    return out
