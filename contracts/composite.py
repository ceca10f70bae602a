"""The renderer's per-pixel compositing inside its two windows, written once for both
implementations: the torch module (the exported graph, GPUs) and the CPU compositor
(engines.compose, numpy). Elementwise arithmetic only, on any array type with operators and
broadcasting; ``clip`` and ``exp`` come from the caller's array library.

Layers are sampled by the caller at the layer's source coordinates: masks broadcast against
RGB (torch: (B, 1, h, w) against (B, 3, h, w); numpy: (h, w, 1) against (h, w, 3)).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

Array = TypeVar("Array", bound=Any)
Clip = Callable[[Any, float | None, float | None], Any]

LID_LIFT_PIXELS = 64.0  # eye_lift (the opening's height) is stored in units of 64 pixels
# A blink, as a lid closes: the lid's margin band (the lash line and, on made-up eyes, the
# liner: LID_MARGIN eye openings above the lid margin at height 0) slides down whole until
# the margin lies at blink * LID_EDGE (1 = on the lower lid); the lid skin it uncovers above
# it is the closed-lid plate (the eye region inpainted from the skin around it when the rig
# is built, engines.rig_maps.lid_plate); everything above the band's top stays where it is.
LID_MARGIN = 0.45
LID_EDGE = 1.12
LID_TOP = -LID_MARGIN - 0.15  # the eye maps reach this high above the lid margin
_SOFT = 0.06  # zone edges, in eye openings


def eye_blink(eye_mask: Array, blink_left: Any, blink_right: Any, clip: Clip) -> Array:
    """Each eye's blink value over its whole window (the signed mask picks the side)."""
    left = clip(eye_mask * 1000.0, 0.0, 1.0)
    right = clip(eye_mask * -1000.0, 0.0, 1.0)
    return left * blink_left + right * blink_right


def lid_shift(opening: Array, blink: Array) -> Array:
    """How far (pixels) the margin band has slid down: ``opening`` (the eye opening's height
    there, pixels) times the lid edge. The caller samples the portrait this far above."""
    return opening * (blink * LID_EDGE)


def eyes(
    base: Array,  # the portrait at the skull layer's source coordinates
    band_rgb: Array,  # the portrait there, lid_shift(...) pixels higher
    plate_rgb: Array,  # the closed-lid plate there
    eye_mask: Array,  # signed eye mask: > 0 left eye, < 0 right eye
    height: Array,  # height within the eye opening (0 upper lid margin, 1 lower lid)
    blink: Array,  # eye_blink(...)
    clip: Clip,
    exp: Callable[[Array], Array],
) -> Array:
    """Above the lid edge (blink * LID_EDGE) the slid margin band, above the band the plate,
    above the band's first place the portrait unchanged; a soft shadow under the lashes."""
    inside = clip(abs(eye_mask), None, 1.0) * clip(blink * 20.0, None, 1.0)
    edge = blink * LID_EDGE
    lid = clip((edge - height) / _SOFT + 0.5, 0.0, 1.0)  # above the lid edge
    moved = clip((height + LID_MARGIN) / _SOFT, 0.0, 1.0)  # below the band's first top
    plate = clip((edge - LID_MARGIN - height) / _SOFT, 0.0, 1.0)  # above the slid band
    lid_rgb = band_rgb + (plate_rgb - band_rgb) * plate
    out = base + (lid_rgb - base) * (lid * moved * inside)
    lash = exp(-(((height - edge) / 0.08) ** 2)) * clip(blink * 3.0, None, 1.0)
    return out * (1.0 - 0.3 * lash * inside)


def mouth(
    skull_rgb: Array,  # the portrait at the skull layer's source coordinates
    jaw_rgb: Array,  # the portrait at the jaw layer's source coordinates
    skull: Array,  # skull-layer masks (at the skull layer's coordinates)
    not_base: Array,
    teeth: Array,
    jaw: Array,  # jaw-layer masks (at the jaw layer's coordinates)
    tongue: Array,
    cavity_color: Any,  # RGB, broadcastable against the RGB layers
    teeth_color: Any,
    tongue_color: Any,
) -> Array:
    """Skull layer over jaw layer over (the mouth interior or the neck and background)."""
    interior = cavity_color + (tongue_color - cavity_color) * (0.75 * tongue)
    interior = interior + (teeth_color - interior) * (0.9 * teeth)
    behind = interior + (skull_rgb - interior) * (1.0 - not_base)
    out = behind + (jaw_rgb - behind) * jaw
    return out + (skull_rgb - out) * skull
