"""The renderer's I/O contract, importable without torch (engines build inputs to it)."""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T", bound=Any)  # a numpy array or a torch tensor

INPUT_NAMES: tuple[str, ...] = (
    "image_quads",
    "eye_quads",
    "skull_mouth_quads",
    "jaw_mouth_quads",
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
# The split graph (CPU engines): the skull layer's source map over the frame and the jaw
# layer's inside MOUTH_WINDOW; engines.compose samples and composites.
SPLIT_OUTPUT_NAMES: tuple[str, ...] = ("source_map", "jaw_map")

# Source-space maps (see engines.rig), stored as quad tables (each pixel with its 2x2
# neighbourhood, for one-Gather bilinear sampling). ``image_quads`` holds RGB, sampled by the
# skull (upper) layer over the whole frame. ``eye_quads`` hold the signed eye mask, the height
# within the eye opening and how far above lies the lid's skin (skull layer, EYE_WINDOW).
# ``skull_mouth_quads`` hold skull, not_base and teeth (read by the skull layer) and
# ``jaw_mouth_quads`` jaw, tongue, lower teeth and the throat's depth (read by the jaw layer) in
# MOUTH_WINDOW.
IMAGE_CHANNELS: tuple[str, ...] = ("red", "green", "blue")
EYE_CHANNELS: tuple[str, ...] = (
    "eyes",
    "eye_height",
    "eye_travel",
    "eye_scale",
    "gaze_x_dx",
    "gaze_x_dy",
    "gaze_y_dx",
    "gaze_y_dy",
)
SKULL_MOUTH_CHANNELS: tuple[str, ...] = ("skull", "not_base", "teeth", "gum")
JAW_MOUTH_CHANNELS: tuple[str, ...] = ("jaw", "tongue", "lower_teeth", "throat", "lip_inner")

GRID = 48  # coarse warp grid (GRID x GRID)
NUM_CONTROLS = 640  # control points, padded: static shapes for every avatar

# Per-pixel work beyond copying the warped portrait happens only inside two static windows of
# the output frame (fractions of the size: top, bottom, left, right). The avatar framing
# (engines.avatar) puts the eyes and the mouth and jaw inside them; the rig fades the jaw mask
# out before the mouth window's edge.
# The eye window overlaps the mouth window's top: a head pitched down 0.3 carries the eyes
# below 0.54 (a shut eye was cut there); the mouth is composited over the eyes.
EYE_WINDOW: tuple[float, float, float, float] = (0.32, 0.62, 0.2, 0.8)
MOUTH_WINDOW: tuple[float, float, float, float] = (0.54, 0.92, 0.24, 0.76)


def window_pixels(
    window: tuple[float, float, float, float], size: int
) -> tuple[int, int, int, int]:
    top, bottom, left, right = window
    return round(top * size), round(bottom * size), round(left * size), round(right * size)


def crop(maps: T, window: tuple[int, int, int, int]) -> T:
    """The window (top, bottom, left, right) of (..., H, W) maps: a numpy array or a torch
    tensor (the renderer and engines.compose cut the same windows)."""
    top, bottom, left, right = window
    return maps[..., top:bottom, left:right]
