"""The renderer's warp inversion with a depth test (export/warp_inversion.py), on synthetic
fields whose preimages are known."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from export import warp_inversion  # noqa: E402

GRID = 32
JAW = ((10, 20), (5, 25))


def fields_of(move_x: np.ndarray, move_y: np.ndarray | None = None) -> torch.Tensor:
    """(1, 2, 2, g, g): both layers the same forward displacement (grid steps)."""
    move_y = np.zeros_like(move_x) if move_y is None else move_y
    layer = torch.tensor(np.stack([move_x, move_y]), dtype=torch.float32)
    return torch.stack([layer, layer])[None]


def invert(fields: torch.Tensor, direction=(1.0, 0.0)):
    return warp_inversion.invert(fields, torch.tensor([direction], dtype=torch.float32), JAW)


def test_a_translation_inverts_to_its_opposite() -> None:
    skull, jaw = invert(fields_of(np.full((GRID, GRID), 2.5), np.full((GRID, GRID), -1.5)))
    inner = skull[0, :, 4:-4, 4:-4]
    assert torch.allclose(inner[0], torch.tensor(-2.5), atol=1e-4)
    assert torch.allclose(inner[1], torch.tensor(1.5), atol=1e-4)
    assert jaw.shape == (1, 2, 10, 20)


def test_the_jaw_nodes_are_the_skull_grid_restricted() -> None:
    xs = np.arange(GRID, dtype=np.float64)
    smooth = 1.5 * np.sin(xs / 5.0)[None, :] * np.cos(xs / 7.0)[:, None]
    skull, jaw = invert(fields_of(smooth, 0.5 * smooth.T), direction=(0.6, 0.8))
    (top, bottom), (left, right) = JAW
    assert torch.allclose(jaw[0], skull[0, :, top:bottom, left:right], atol=1e-5)


def _folded_row() -> np.ndarray:
    """A displacement along x that folds: a bump 6 steps high over a few steps, as a near
    surface (the nose, the near cheek) moving farther than what lies beside it."""
    xs = np.arange(GRID, dtype=np.float64)
    return 6.0 * np.exp(-(((xs - 12.0) / 2.0) ** 2))


def test_a_fold_shows_the_preimage_nearest_the_camera() -> None:
    row = _folded_row()
    skull, _ = invert(fields_of(np.tile(row, (GRID, 1))))
    chosen = np.arange(GRID) + skull[0, 0, GRID // 2].numpy()
    fine = np.linspace(0, GRID - 1, 20001)
    image = fine + np.interp(fine, np.arange(GRID), row)  # where each source point lands
    folded = 0
    for p in range(2, GRID - 2):
        crossing = np.flatnonzero(np.diff(np.sign(image - p)) != 0)
        roots = fine[crossing]
        # The chosen point maps back onto p (within the inversion's tolerance) and no
        # preimage lies behind it: the turn moves along +x, so the preimage farthest behind p
        # moved farthest, i.e. is nearest the camera.
        landed = chosen[p] + np.interp(chosen[p], np.arange(GRID), row)
        assert abs(landed - p) < warp_inversion.HIT, (p, chosen[p], roots)
        assert chosen[p] < roots.min() + 0.15, (p, chosen[p], roots)
        folded += len(roots) > 1
    assert folded >= 2  # the test does exercise a fold


def test_the_turn_direction_decides_which_sheet_is_near() -> None:
    row = _folded_row()
    fields = fields_of(np.tile(row, (GRID, 1)))
    ahead, _ = invert(fields, direction=(1.0, 0.0))
    behind, _ = invert(fields, direction=(-1.0, 0.0))
    p = 17  # inside the fold: three preimages
    assert ahead[0, 0, GRID // 2, p] < behind[0, 0, GRID // 2, p] - 2.0


def test_no_turn_means_one_start() -> None:
    """At rest the direction is zero: every start coincides and the plain Newton inverse is
    kept (a blink's squeezed lid is not a head turn)."""
    xs = np.arange(GRID, dtype=np.float64)
    squeeze = -0.8 * np.exp(-(((xs - 16.0) / 3.0) ** 2))
    skull, _ = invert(
        fields_of(np.zeros((GRID, GRID)), np.tile(squeeze[:, None], (1, GRID))), (0, 0)
    )
    rows = np.arange(GRID) + skull[0, 1, :, 10].numpy()
    mapped = rows + np.interp(rows, xs, squeeze)
    assert np.abs(mapped[2:-2] - xs[2:-2]).max() < 0.05
