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

EYE_MAP_PIXELS = 64.0  # eye_scale and the gaze flows are stored in units of 64 source pixels
# The lid on a blink, in units of the eye's largest opening (``eye_scale``); ``eye_height`` is
# a pixel's height below the upper lid margin and ``eye_travel`` how far the lid travels at
# that column to meet the lower lid. The margin band (lashes, liner: LID_MARGIN) slides down
# whole; the skin from LID_TOP above the margin down to the band unfolds (stretches) behind
# it, as the skin folded under the crease does; nothing above LID_TOP moves.
LID_TOP = 1.3
LID_MARGIN = 0.3
LID_SHADE = 0.25
# A shut lid's lash line: the lid darkens toward its edge over LASH_WIDTH openings (at least a
# pixel), by up to LASH_DARK as the eye shuts (blink squared: a lid half down barely). Painted
# lids and thin real lashes otherwise close on a pale edge that FaceMesh (and a viewer) reads
# as an eye still open (the Mona Lisa's shut eye read 0.59 of open, 0.44 with the line).
LASH_WIDTH = 0.3
LASH_DARK = 0.8
# A downward look lowers the upper lid with the eye (lid-eye coordination): at gazeY 1 the lid
# is LID_FOLLOW of the way down, as a blink of that size. The gaze flows slide the iris down
# by up to 0.3 of the opening; an iris that fills the opening from lid to lid does not
# visibly move between the lids without it (FaceMesh read no gazeY on any portrait).
LID_FOLLOW = 0.3


def gaze_source(
    x: Array,
    y: Array,
    flow: tuple[Array, Array, Array, Array],  # x then y gaze flow (dx, dy), pixels at gaze 1
    gaze_x: Any,
    gaze_y: Any,
) -> tuple[Array, Array]:
    """Where the eye's content comes from at (gaze_x, gaze_y): the gaze flows scaled; they
    are zero outside the eyes' openings."""
    return (
        x + gaze_x * flow[0] + gaze_y * flow[2],
        y + gaze_x * flow[1] + gaze_y * flow[3],
    )


def lid_closure(
    blink: Any,  # eyeBlinkLeft or eyeBlinkRight, broadcastable
    gaze_y: Any,  # gazeY (> 0: down)
    clip: Callable[[Any, float | None, float | None], Any],
) -> Any:
    """How far an eye's upper lid is down, in a blink's units: the blink, and on a downward
    look the lid following the eye down (``LID_FOLLOW`` of the way at gazeY 1)."""
    return blink + (1.0 - blink) * LID_FOLLOW * clip(gaze_y, 0.0, None)


def eye_blink(
    eye_mask: Array,  # signed eye mask: > 0 left eye, < 0 right eye
    blink_left: Any,  # eyeBlinkLeft, broadcastable
    blink_right: Any,
    clip: Callable[[Array, float | None, float | None], Array],
) -> Array:
    """Each pixel's blink: its eye's, faded with the mask beyond the eye's corners."""
    return clip(eye_mask, 0.0, None) * blink_left + clip(-eye_mask, 0.0, None) * blink_right


def lid_shift(
    height: Array,  # below the upper lid margin, in eye_scale units (negative above it)
    travel: Array,  # the lid's travel to the lower lid at this column, eye_scale units
    scale: Array,  # pixels
    blink: Array,  # eye_blink
    clip: Callable[[Array, float | None, float | None], Array],
) -> Array:
    """How far above, in source pixels, the lid's colour for each pixel lies: the margin band
    moved down by ``blink * travel``, the skin above it stretched from LID_TOP (nothing moves
    there); below the lid's edge the eye shows (``eyes`` leaves it uncovered)."""
    moved = blink * travel
    stretched = (height + LID_TOP) * moved / (LID_TOP - LID_MARGIN + moved)
    return (clip(stretched, 0.0, None) - clip(stretched - moved, 0.0, None)) * scale


def eyes(
    base: Array,  # the portrait at the skull layer's source coordinates (gaze_source's)
    lid_rgb: Array,  # the portrait there, ``lid_shift`` pixels above (no gaze)
    height: Array,
    travel: Array,
    scale: Array,
    blink: Array,
    clip: Callable[[Array, float | None, float | None], Array],
) -> Array:
    """The lid above its edge (``blink * travel`` below the upper lid margin), the eye below
    it; the edge anti-aliased over a pixel, and a lash line along it."""
    moved = blink * travel
    above = (moved - height) * scale  # pixels above the lid's edge
    covered = clip(above + 0.5, 0.0, 1.0)
    # The unfolded lid curves over the eyeball, away from the light toward its edge.
    down = clip((height + LID_TOP) / (LID_TOP + moved), 0.0, 1.0)
    lash = clip(1.0 - above / clip(scale * LASH_WIDTH, 1.0, None), 0.0, 1.0)
    lid_rgb = lid_rgb * (
        (1.0 - LID_SHADE * blink * down * down) * (1.0 - LASH_DARK * blink * blink * lash)
    )
    return base + (lid_rgb - base) * covered


THROAT_DARKENING = 0.7  # the cavity's colour at the back of the throat, as a fraction lost
LOWER_TEETH_SHADE = 0.35  # the lower teeth in the lips' and the jaw's shadow: faint
# The moist pink between the lips and the teeth, in the tongue's colour (matched to the
# portrait's lighting) made lighter: the gum line under the upper lip, in its shadow, and the
# lower lip's wet inner edge, which faces up into the light.
GUM_LIFT = 1.15
LIP_INNER_LIFT = 1.35
# Both show only on a real opening, fading in from a jaw open by OPEN_FROM to OPEN_FULL (less
# mouthClose, which seals the lips over an open jaw): a closure left slightly parted keeps a
# dark line between the lips, which viewers (and FaceMesh: it read the learned model's shallow
# p/b/m closures as open with the bands always on) take for shut lips.
OPEN_FROM = 0.12
OPEN_FULL = 0.3


def opening(
    jaw_open: Any,  # jawOpen, broadcastable
    mouth_close: Any,  # mouthClose
    clip: Callable[[Array, float | None, float | None], Array],
) -> Any:
    """How far the gum and the wet lip edge show, 0-1: the jaw's opening less the lips' seal
    (mouthClose, capped at jawOpen as the warp caps it), from OPEN_FROM to OPEN_FULL."""
    parted = jaw_open - mouth_close + clip(mouth_close - jaw_open, 0.0, None)  # less min(c, j)
    return clip((parted - OPEN_FROM) / (OPEN_FULL - OPEN_FROM), 0.0, 1.0)


def mouth_back(
    throat: Array,  # jaw-layer masks
    tongue: Array,
    lower_teeth: Array,
    cavity_color: Any,  # RGB, broadcastable against the masks
    teeth_color: Any,
    tongue_color: Any,
) -> Array:
    """The mouth interior behind the bands and the upper teeth: the cavity, darkening
    toward the throat; the tongue; the lower teeth (in the lower lip's shadow)."""
    interior = cavity_color * (1.0 - THROAT_DARKENING * throat)
    interior = interior + (tongue_color - interior) * (0.75 * tongue)
    return interior + (teeth_color * LOWER_TEETH_SHADE - interior) * lower_teeth


def wet_band(interior: Array, mask: Array, lift: float, shown: Any, tongue_color: Any) -> Array:
    """One moist band (``mask``) over the interior, in the tongue's colour times ``lift``."""
    return interior + (tongue_color * lift - interior) * (mask * shown)


def mouth_bands(
    interior: Array,
    gum: Array,  # skull layer
    lip_inner: Array,  # jaw layer
    shown: Any,  # ``opening``: how far they show (broadcastable)
    tongue_color: Any,
) -> Array:
    """The lower lip's wet inner edge, then the gum line, over the interior (a no-op at
    ``shown`` 0: the CPU compositor skips it then, and blends each band inside its box)."""
    interior = wet_band(interior, lip_inner, LIP_INNER_LIFT, shown, tongue_color)
    return wet_band(interior, gum, GUM_LIFT, shown, tongue_color)


def mouth_front(
    interior: Array,
    skull_rgb: Array,  # the portrait at the skull layer's source coordinates
    jaw_rgb: Array,  # the portrait at the jaw layer's source coordinates
    skull: Array,  # skull-layer masks
    not_base: Array,
    teeth: Array,
    jaw: Array,  # jaw-layer mask
    teeth_color: Any,
) -> Array:
    """The upper teeth over the interior, then skull layer over jaw layer over (the
    interior or the neck and background). The teeth mask carries its own shading (gaps
    between teeth, the gum's shadow, the arch turning away)."""
    interior = interior + (teeth_color - interior) * (0.9 * teeth)
    behind = interior + (skull_rgb - interior) * (1.0 - not_base)
    out = behind + (jaw_rgb - behind) * jaw
    return out + (skull_rgb - out) * skull


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
    gum: Array,  # skull layer
    lip_inner: Array,  # jaw layer
    shown: Any,  # ``opening``: how far the gum and the lip edge show (broadcastable)
    cavity_color: Any,  # RGB, broadcastable against the RGB layers
    teeth_color: Any,
    tongue_color: Any,
) -> Array:
    """Skull layer over jaw layer over (the mouth interior or the neck and background).

    The interior, back to front: the cavity, darkening toward the throat; the tongue; the
    lower teeth; the lower lip's wet inner edge and the gum line; the upper teeth
    (``mouth_back``, ``mouth_bands``, ``mouth_front``)."""
    interior = mouth_back(throat, tongue, lower_teeth, cavity_color, teeth_color, tongue_color)
    interior = mouth_bands(interior, gum, lip_inner, shown, tongue_color)
    return mouth_front(interior, skull_rgb, jaw_rgb, skull, not_base, teeth, jaw, teeth_color)
