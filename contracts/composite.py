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

LID_LIFT_PIXELS = 64.0  # eye_lift is stored in units of 64 source pixels


def eyes(
    base: Array,  # the portrait at the skull layer's source coordinates
    lid_rgb: Array,  # the portrait at those coordinates lifted by eye_lift
    eye_mask: Array,  # signed eye mask: > 0 left eye, < 0 right eye
    height: Array,  # height within the eye opening
    blink_left: Any,  # eyeBlinkLeft, broadcastable
    blink_right: Any,
    clip: Callable[[Array, float | None, float | None], Array],
    exp: Callable[[Array], Array],
) -> Array:
    """On a blink the upper lid (the skin just above it, slid down) descends over the eye
    opening, its lash line leading."""
    blink = clip(eye_mask, 0.0, None) * blink_left + clip(-eye_mask, 0.0, None) * blink_right
    inside = clip(abs(eye_mask), None, 1.0)
    # The lid edge runs from the upper lash line (height -0.3) to past the lower lid.
    lid_edge = blink * 1.4 - 0.3
    covered = clip((lid_edge - height) / 0.12, 0.0, 1.0) * inside
    covered = covered * clip(blink * 8.0, None, 1.0)
    lash = exp(-(((height - lid_edge) / 0.1) ** 2)) * clip(blink * 4.0, None, 1.0)
    out = base + (lid_rgb - base) * covered
    return out * (1.0 - 0.55 * lash * inside)


THROAT_DARKENING = 0.7  # the cavity's colour at the back of the throat, as a fraction lost
LOWER_TEETH_SHADE = 0.35  # the lower teeth in the lips' and the jaw's shadow: faint


def mouth(
    skull_rgb: Array,  # the portrait at the skull layer's source coordinates
    jaw_rgb: Array,  # the portrait at the jaw layer's source coordinates
    skull: Array,  # skull-layer masks (at the skull layer's coordinates)
    not_base: Array,
    teeth: Array,
    jaw: Array,  # jaw-layer masks (at the jaw layer's coordinates)
    tongue: Array,
    lower_teeth: Array,
    throat: Array,
    cavity_color: Any,  # RGB, broadcastable against the RGB layers
    teeth_color: Any,
    tongue_color: Any,
) -> Array:
    """Skull layer over jaw layer over (the mouth interior or the neck and background).

    The interior, back to front: the cavity, darkening toward the throat; the tongue; the
    lower teeth (in the lower lip's shadow); the upper teeth. The teeth masks carry their
    own shading (gaps between teeth, the gum's shadow, the arch turning away)."""
    interior = cavity_color * (1.0 - THROAT_DARKENING * throat)
    interior = interior + (tongue_color - interior) * (0.75 * tongue)
    interior = interior + (teeth_color * LOWER_TEETH_SHADE - interior) * lower_teeth
    interior = interior + (teeth_color - interior) * (0.9 * teeth)
    behind = interior + (skull_rgb - interior) * (1.0 - not_base)
    out = behind + (jaw_rgb - behind) * jaw
    return out + (skull_rgb - out) * skull
