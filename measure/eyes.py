"""How much of an eye a rendered lid covers, read from pixels (a second instrument beside
FaceMesh's lid gap).

FaceMesh's eye opening (``measure.facemesh``: lid gap 159-145 over the eye width) is what a
viewer's face tracker would read, but it is a learned regressor with a strong prior: on
painted faces it keeps a large gap on lids that are visibly shut (docs/benchmarks.md,
"Blinks"), so it cannot be the only reading. This one asks the pixels directly.

``lid_cover(rest, frame, landmarks)``: ``landmarks`` are the rest frame's 478 FaceMesh points
(or the avatar's). For each eye, the pixels of its open eye (inside the polygon of its upper
and lower lid contours, shrunk by a pixel) in the rest frame are compared with the same
pixels in ``frame``: a pixel counts as covered when its colour is now nearer the lid skin
than the eye it showed (the skin: the median colour of the band from one to two eye
openings above the upper lid, in the rest frame; distances in RGB). The result is the
fraction covered, per eye (0: the eye as it was, 1: all skin). A dark lash line over a dark
iris counts as not covered, so a shut eye reads somewhat below 1; a render that breaks the
eye into anything not skin-coloured reads low, not high.
"""

from __future__ import annotations

import cv2
import numpy as np

from engines import facemesh_topology as topo

EYES = (
    ("right", topo.RIGHT_EYE_UPPER, topo.RIGHT_EYE_LOWER),
    ("left", topo.LEFT_EYE_UPPER, topo.LEFT_EYE_LOWER),
)


def eye_region(
    landmarks: np.ndarray, upper: tuple[int, ...], lower: tuple[int, ...], size: tuple[int, int]
) -> np.ndarray:
    """Boolean mask of the open eye between the lid contours, eroded by one pixel."""
    outline = np.concatenate([landmarks[list(upper), :2], landmarks[list(lower[::-1]), :2]])
    mask = np.zeros(size, np.uint8)
    cv2.fillPoly(mask, [np.round(outline * 16).astype(np.int32)], (1,), cv2.LINE_8, shift=4)
    return cv2.erode(mask, np.ones((3, 3), np.uint8)).astype(bool)


def skin_above(
    rest: np.ndarray, landmarks: np.ndarray, upper: tuple[int, ...], lower: tuple[int, ...]
) -> np.ndarray:
    """Median RGB of the band one to two eye openings above the upper lid."""
    top = landmarks[list(upper), :2]
    opening = float(np.median(landmarks[list(lower), 1] - top[:, 1])) or 1.0
    band = np.concatenate([top - [0.0, opening], (top - [0.0, 2.0 * opening])[::-1]])
    mask = np.zeros(rest.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(band * 16).astype(np.int32)], (1,), cv2.LINE_8, shift=4)
    pixels = rest[mask.astype(bool)]
    if not len(pixels):
        raise ValueError("no skin band above the eye (landmarks outside the frame?)")
    return np.median(pixels.astype(np.float32), axis=0)


def lid_cover(rest: np.ndarray, frame: np.ndarray, landmarks: np.ndarray) -> dict[str, float]:
    """Fraction of each open eye's pixels that ``frame`` shows as lid skin (see the module
    docstring); keys "right" and "left" (the subject's sides)."""
    if rest.shape != frame.shape or rest.ndim != 3:
        raise ValueError(f"frames must be the same (H, W, 3) shape: {rest.shape}, {frame.shape}")
    out = {}
    for side, upper, lower in EYES:
        height, width = rest.shape[:2]
        region = eye_region(landmarks, upper, lower, (height, width))
        if not region.any():
            raise ValueError(f"the {side} eye has no pixels between its lids")
        skin = skin_above(rest, landmarks, upper, lower)
        before = rest[region].astype(np.float32)
        after = frame[region].astype(np.float32)
        to_eye = np.linalg.norm(after - before, axis=1)
        to_skin = np.linalg.norm(after - skin, axis=1)
        out[side] = float(np.mean(to_skin < to_eye))
    return out
