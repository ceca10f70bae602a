"""The renderer's I/O contract, importable without torch (engines build inputs to it)."""

from __future__ import annotations

INPUT_NAMES: tuple[str, ...] = (
    "atlas",
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

# Source-space maps stored after RGB in the atlas (see engines.rig): the skull (upper) layer
# reads skull, not_base, teeth and eyes over the whole frame; the jaw (lower) layer reads jaw
# and tongue inside MOUTH_WINDOW.
AUX_CHANNELS: tuple[str, ...] = ("skull", "not_base", "teeth", "eyes", "jaw", "tongue")
ATLAS_CHANNELS = 3 + len(AUX_CHANNELS)

GRID = 64  # coarse warp grid (GRID x GRID)
NUM_CONTROLS = 640  # control points, padded: static shapes for every avatar

# The jaw layer is computed only inside this window of the output frame (fractions of the
# size: top, bottom, left, right). The avatar framing puts the mouth and jaw inside it; the
# rig fades the jaw mask out before the window's edge (see engines.rig).
MOUTH_WINDOW: tuple[float, float, float, float] = (0.45, 0.95, 0.16, 0.84)


def window_pixels(size: int) -> tuple[int, int, int, int]:
    top, bottom, left, right = MOUTH_WINDOW
    return round(top * size), round(bottom * size), round(left * size), round(right * size)
