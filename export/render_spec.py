"""The renderer's I/O contract, importable without torch (engines build inputs to it)."""

from __future__ import annotations

INPUT_NAMES: tuple[str, ...] = (
    "image_quads",
    "detail_quads",
    "controls",
    "rest",
    "layer_weight",
    "basis",
    "head_weight",
    "pivot",
    "face_size",
    "warp",
    "colors",
    "motion",
)
OUTPUT_NAMES: tuple[str, ...] = ("frame",)

# Source-space maps (see engines.rig), stored as quad tables (each pixel with its 2x2
# neighbourhood, for one-Gather bilinear sampling). ``image_quads`` holds RGB, sampled by the
# skull (upper) layer over the whole frame; ``detail_quads`` holds maps read only in windows:
# the signed eye mask, the height within the eye opening and where the lid skin comes from
# (skull layer, EYE_WINDOW); skull, not_base and teeth (skull layer) and jaw and tongue (jaw
# layer) in MOUTH_WINDOW.
ATLAS_CHANNELS: tuple[str, ...] = ("red", "green", "blue")
DETAIL_CHANNELS: tuple[str, ...] = (
    "eyes",
    "eye_height",
    "eye_lift",
    "skull",
    "not_base",
    "teeth",
    "jaw",
    "tongue",
)

GRID = 64  # coarse warp grid (GRID x GRID)
NUM_CONTROLS = 640  # control points, padded: static shapes for every avatar

# Per-pixel work beyond copying the warped portrait happens only inside two static windows of
# the output frame (fractions of the size: top, bottom, left, right). The avatar framing
# (engines.avatar) puts the eyes and the mouth and jaw inside them; the rig fades the jaw mask
# out before the mouth window's edge.
EYE_WINDOW: tuple[float, float, float, float] = (0.30, 0.54, 0.18, 0.82)
MOUTH_WINDOW: tuple[float, float, float, float] = (0.54, 0.94, 0.22, 0.78)


def window_pixels(
    window: tuple[float, float, float, float], size: int
) -> tuple[int, int, int, int]:
    top, bottom, left, right = window
    return round(top * size), round(bottom * size), round(left * size), round(right * size)
