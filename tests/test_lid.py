"""The blink's lid (contracts.composite.lid_shift and eyes): a column of an eye, in the
formulas' own units, checked against what the lid must do."""

from __future__ import annotations

import numpy as np
import pytest

from contracts import composite as c

SCALE = 12.0  # pixels in one opening


def column(travel: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    height = np.linspace(-2.5, 1.5, 801)  # above the upper lid margin (< 0) to below the eye
    return height, np.full_like(height, travel), np.full_like(height, SCALE)


@pytest.mark.parametrize("blink", [0.0, 0.3, 0.7, 1.0])
def test_the_margin_band_moves_whole_and_the_skin_above_unfolds(blink: float) -> None:
    height, travel, scale = column()
    b = np.full_like(height, blink)
    shift = c.lid_shift(height, travel, scale, b, np.clip)
    edge = blink * 1.0  # the lid's edge, in openings below the upper margin
    # Nothing moves above the unfolding skin's top.
    assert np.all(shift[height <= -c.LID_TOP] == 0.0)
    # The margin band (lashes, liner) lands whole at the edge: its pixels come from exactly
    # ``edge`` openings above.
    band = (height > edge - c.LID_MARGIN + 1e-6) & (height <= edge)
    assert np.allclose(shift[band], edge * SCALE)
    # Between, the skin stretches: the source rows advance monotonically and continuously.
    source = height * SCALE - shift
    skin = (height > -c.LID_TOP) & (height <= edge)
    assert np.all(np.diff(source[skin]) >= -1e-9)
    # No jumps anywhere: the shift's slope is at most the stretch's.
    step = float(height[1] - height[0])
    slope = edge / (c.LID_TOP - c.LID_MARGIN + edge)
    assert np.max(np.abs(np.diff(shift))) <= slope * SCALE * step + 1e-9


def test_below_the_edge_the_eye_shows_and_an_open_eye_is_untouched() -> None:
    height, travel, scale = column()
    base, lid = np.zeros_like(height), np.full_like(height, 100.0)
    for blink in (0.4, 1.0):
        b = np.full_like(height, blink)
        out = c.eyes(base, lid, height, travel, scale, b, np.clip)
        below = height > blink * 1.0 + 1.0 / SCALE
        above = height < blink * 1.0 - 1.0 / SCALE
        assert np.all(out[below] == 0.0)
        assert np.all(out[above] > 0.0)  # the lid, darkened toward its edge by <= LID_SHADE
        assert np.all(out[above] >= 100.0 * (1.0 - c.LID_SHADE * blink) - 1e-6)
    b = np.zeros_like(height)
    assert np.all(c.lid_shift(height, travel, scale, b, np.clip) == 0.0)
    same = np.full_like(height, 50.0)
    assert np.array_equal(c.eyes(same, same, height, travel, scale, b, np.clip), same)


def test_at_the_corners_nothing_moves() -> None:
    height, travel, scale = column(travel=0.0)
    b = np.ones_like(height)
    assert np.all(c.lid_shift(height, travel, scale, b, np.clip) == 0.0)


def test_each_eye_blinks_on_its_own_and_fades_with_its_mask() -> None:
    mask = np.array([1.0, 0.5, 0.0, -0.5, -1.0])  # left eye > 0, right eye < 0
    assert np.allclose(c.eye_blink(mask, 0.8, 0.2, np.clip), [0.8, 0.4, 0.0, 0.1, 0.2])
