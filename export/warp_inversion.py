"""Inverting the renderer's forward warps with a depth test: output grid point -> source point.

Each of the renderer's two layers (skull, jaw) warps the portrait by a forward displacement
field D on a coarse grid: source point s lands on s + D(s). Sampling needs the backward map:
for each output grid point p, the source point s with s + D(s) = p. Where the head turns far,
a field folds (the near cheek slides over the far one, the nose over the far cheek's edge)
and p has several preimages, of which a viewer sees the one nearest the camera. So Newton's
method runs from several starting points along the turn's direction on screen (the direction
a fold's preimages lie apart in), and each output point keeps, among the results that map
back onto it and face the camera, the nearest one: a z-buffer over the preimages. A
back-facing result (the surface between a fold's two sheets) wins only where nothing else
maps back.

Both layers, every start and every output point run as one flat list of points per frame
(one Gather per Newton step for all of them): on onnxruntime's CPU the graph's cost is as
much its node count as its arithmetic. Only Gather and elementwise ops, Where included:
TensorRT-compatible, no If or Loop nodes (the iterations are unrolled). Pure functions of
tensors.
"""

from __future__ import annotations

import torch

ITERATIONS = 3  # Newton steps from each start: the residual is sub-step after 3 on our warps
# Starting points, in grid steps along the turn's direction from each output point: a turn
# moves the points nearer the camera farther, so the preimages nearer the camera lie behind p.
START_STEPS: tuple[float, ...] = (0.0, -3.0, -6.0)
MAX_STEP = 4.0  # grid steps: one Newton step moves at most this far
HIT = 0.25  # grid steps: a result within this of p maps back onto it
MISS_PENALTY = 1000.0  # grid steps of depth: a miss loses to every hit, the nearest miss wins
BACK_PENALTY = 200.0  # a back-facing hit loses to every front-facing one
MIN_DET = 0.05  # |Jacobian determinant| floor: a step never divides by a vanishing one

Nodes = tuple[tuple[int, int], tuple[int, int]]  # grid rows and columns, half-open


def quad_table(maps: torch.Tensor) -> torch.Tensor:
    """(..., C, g, g) -> (..., g, g, 4C): each point with its right, lower and lower-right
    neighbours (the border repeats), the table ``_sample`` samples."""
    right = torch.cat([maps[..., 1:], maps[..., -1:]], -1)
    below = torch.cat([maps[..., 1:, :], maps[..., -1:, :]], -2)
    below_right = torch.cat([right[..., 1:, :], right[..., -1:, :]], -2)
    table = torch.cat([maps, right, below, below_right], -3)
    rank = table.dim()  # positive axes: ONNX's Transpose takes no negative ones
    return table.permute(*range(rank - 3), rank - 2, rank - 1, rank - 3)


class _Points:
    """The flat list of output points (both layers, every start) and its constants."""

    def __init__(self, grid: int, jaw_nodes: Nodes, steps: tuple[float, ...]) -> None:
        (top, bottom), (left, right) = jaw_nodes
        gy, gx = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
        jy, jx = torch.meshgrid(torch.arange(top, bottom), torch.arange(left, right), indexing="ij")
        px = torch.cat([gx.flatten(), jx.flatten()]).float()
        py = torch.cat([gy.flatten(), jy.flatten()]).float()
        layer = torch.cat([torch.zeros(grid * grid), torch.ones(jx.numel())]).long()
        self.count = px.numel()  # output points per start
        self.skull_shape = (grid, grid)
        self.jaw_shape = (bottom - top, right - left)
        starts = len(steps)
        self.px = px.repeat(starts).view(1, -1)
        self.py = py.repeat(starts).view(1, -1)
        self.steps = torch.tensor(steps).repeat_interleave(self.count).view(1, -1)
        self.layer_offset = (layer * grid * grid).repeat(starts).view(1, -1)


def invert(
    fields: torch.Tensor,
    direction: torch.Tensor,
    jaw_nodes: Nodes,
    steps: tuple[float, ...] = START_STEPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward displacements, in grid steps: the skull layer's (B, 2, g, g) over the whole
    grid and the jaw layer's (B, 2, h, w) at ``jaw_nodes``.

    ``fields`` (B, 2, 2, g, g): per layer, D (x, y; grid steps) at each source grid point;
    ``direction`` (B, 2): the unit (or zero) on-screen direction the head turn moves points
    along.
    """
    grid = fields.shape[-1]
    points = _Points(grid, jaw_nodes, steps)
    cells = 2 * grid * grid  # table rows per frame
    batch_offset = (torch.arange(fields.shape[0]) * cells).view(-1, 1)
    offset = points.layer_offset + batch_offset  # (B, P)
    # The field and its Jacobian by central differences (one-sided at the edges): smoother
    # than the bilinear interpolant's own derivative, which jumps at every cell edge and sets
    # Newton oscillating around a fold's edge.
    pad_x = torch.cat([fields[..., :1], fields, fields[..., -1:]], -1)
    pad_y = torch.cat([fields[..., :1, :], fields, fields[..., -1:, :]], -2)
    d_dx = (pad_x[..., 2:] - pad_x[..., :-2]) * 0.5
    d_dy = (pad_y[..., 2:, :] - pad_y[..., :-2, :]) * 0.5
    table = quad_table(torch.cat([fields, d_dx, d_dy], 2)).reshape(-1, 24)  # (B*2*g*g, 24)
    px, py = points.px, points.py
    total = points.count * len(steps)
    sx = px + direction[:, 0:1] * points.steps
    sy = py + direction[:, 1:2] * points.steps
    for _ in range(ITERATIONS):
        dx, dy, dxx, dyx, dxy, dyy = _sample(table, offset, grid, total, sx, sy)
        rx = sx + dx - px
        ry = sy + dy - py
        a, b, c, d = 1.0 + dxx, dxy, dyx, 1.0 + dyy  # J = [[a, b], [c, d]]
        det = a * d - b * c
        det = det.clamp(min=MIN_DET)  # a fold is stepped through, never inverted
        step_x = ((d * rx - b * ry) / det).clamp(-MAX_STEP, MAX_STEP)
        step_y = ((a * ry - c * rx) / det).clamp(-MAX_STEP, MAX_STEP)
        sx = (sx - step_x).clamp(-1.0, float(grid))
        sy = (sy - step_y).clamp(-1.0, float(grid))
    dx, dy, dxx, dyx, dxy, dyy = _sample(table, offset, grid, total, sx, sy)
    miss = (sx + dx - px) ** 2 + (sy + dy - py) ** 2
    det = (1.0 + dxx) * (1.0 + dyy) - dxy * dyx
    # Depth without a depth map: of two preimages s1, s2 of one p, s1 + D(s1) = s2 + D(s2),
    # so the one farther behind p along the turn moved farther along it; under a rotation
    # about an axis in the image plane (orthographic) that is exactly the one nearer the
    # camera: (z2 - z1) sin(angle) = (s2 - s1) . direction * cos(angle).
    depth = sx * direction[:, 0:1] + sy * direction[:, 1:2]
    hit = miss < HIT * HIT
    # Among the hits the nearest facing one; where nothing maps back (a fold's edge that
    # Newton did not reach), the result nearest to mapping back.
    score = torch.where(det > 0.0, depth, depth + BACK_PENALTY)
    score = torch.where(hit, score, MISS_PENALTY * (1.0 + miss))
    n = points.count
    best_x, best_y, best = sx[:, :n], sy[:, :n], score[:, :n]
    for k in range(1, len(steps)):
        cut = slice(k * n, (k + 1) * n)
        better = score[:, cut] < best
        best_x = torch.where(better, sx[:, cut], best_x)
        best_y = torch.where(better, sy[:, cut], best_y)
        best = torch.where(better, score[:, cut], best)
    back = torch.stack([best_x - px[:, :n], best_y - py[:, :n]], 1)  # (B, 2, n)
    skull_count = grid * grid
    skull = back[:, :, :skull_count].reshape(-1, 2, *points.skull_shape)
    jaw = back[:, :, skull_count:].reshape(-1, 2, *points.jaw_shape)
    return skull, jaw


def _sample(
    table: torch.Tensor,
    offset: torch.Tensor,
    grid: int,
    count: int,
    x: torch.Tensor,
    y: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """Bilinear samples of a flat quad table (rows, 4C) at ``x``, ``y`` (B, ``count``) in
    grid steps, clamped to the grid, each point reading the rows from ``offset`` (B, count)
    on: C tensors (B, count) from one Gather."""
    channels = table.shape[1] // 4
    x = x.clamp(0.0, grid - 1.0)
    y = y.clamp(0.0, grid - 1.0)
    x0, y0 = torch.floor(x), torch.floor(y)
    index = (x0 + y0 * float(grid)).to(torch.int64) + offset
    rows = torch.index_select(table, 0, index.flatten())
    taps = rows.view(-1, count, 4 * channels).transpose(1, 2)
    p00, p01, p10, p11 = torch.split(taps, channels, dim=1)
    fx, fy = (x - x0).unsqueeze(1), (y - y0).unsqueeze(1)
    top = p00 + (p01 - p00) * fx
    bottom = p10 + (p11 - p10) * fx
    return tuple(torch.unbind(top + (bottom - top) * fy, 1))
