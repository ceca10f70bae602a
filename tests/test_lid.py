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
        shaded = 100.0 * (1.0 - c.LID_SHADE * blink)
        assert np.all(out[above] >= shaded * (1.0 - c.LASH_DARK * blink**2) - 1e-6)
        clear = height < blink * 1.0 - c.LASH_WIDTH - 1.0 / SCALE  # above the lash line
        assert np.all(out[clear] >= shaded - 1e-6)
    b = np.zeros_like(height)
    assert np.all(c.lid_shift(height, travel, scale, b, np.clip) == 0.0)
    same = np.full_like(height, 50.0)
    assert np.array_equal(c.eyes(same, same, height, travel, scale, b, np.clip), same)


def test_a_shut_lid_has_a_lash_line_along_its_edge() -> None:
    height, travel, scale = column()
    base, lid = np.zeros_like(height), np.full_like(height, 100.0)
    shut = c.eyes(base, lid, height, travel, scale, np.ones_like(height), np.clip)
    edge = 1.0
    line = (height > edge - c.LASH_WIDTH + 1.0 / SCALE) & (height < edge - 1.0 / SCALE)
    skin = (height > -c.LID_TOP) & (height < edge - c.LASH_WIDTH - 1.0 / SCALE)
    # Darkest at the edge, fading up to the unfolded skin: a line, not a shaded lid.
    assert shut[line].max() < shut[skin].min()
    assert shut[line].min() <= 0.5 * shut[skin].min()
    assert np.all(np.diff(shut[line]) <= 1e-9)
    # A lid a third of the way down barely shows it: blink squared.
    third = c.eyes(base, lid, height, travel, scale, np.full_like(height, 1 / 3), np.clip)
    near = (height > 1 / 3 - c.LASH_WIDTH) & (height < 1 / 3 - 1.0 / SCALE)
    assert np.all(third[near] >= 100.0 * (1.0 - c.LID_SHADE / 3) * (1.0 - c.LASH_DARK / 9) - 1e-6)
    # Never darker than black.
    assert shut.min() >= 0.0


def test_at_the_corners_nothing_moves() -> None:
    height, travel, scale = column(travel=0.0)
    b = np.ones_like(height)
    assert np.all(c.lid_shift(height, travel, scale, b, np.clip) == 0.0)


def test_each_eye_blinks_on_its_own_and_fades_with_its_mask() -> None:
    mask = np.array([1.0, 0.5, 0.0, -0.5, -1.0])  # left eye > 0, right eye < 0
    assert np.allclose(c.eye_blink(mask, 0.8, 0.2, np.clip), [0.8, 0.4, 0.0, 0.1, 0.2])


def test_a_downward_look_lowers_the_lid_and_a_blink_still_shuts_it() -> None:
    assert c.lid_closure(0.0, 0.0, np.clip) == 0.0
    assert c.lid_closure(0.0, -1.0, np.clip) == 0.0  # looking up: the lid stays
    assert np.isclose(c.lid_closure(0.0, 1.0, np.clip), c.LID_FOLLOW)
    assert np.isclose(c.lid_closure(0.0, 0.5, np.clip), 0.5 * c.LID_FOLLOW)
    assert np.isclose(c.lid_closure(1.0, 1.0, np.clip), 1.0)  # never past shut
    closure = [c.lid_closure(b, 0.6, np.clip) for b in np.linspace(0.0, 1.0, 11)]
    assert np.all(np.diff(closure) > 0.0)  # a blink closes on from the lowered lid
