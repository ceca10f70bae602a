"""The warping renderer: (avatar rig, motion frame) -> RGB frame, as a torch module.

No learned weights: every avatar-specific quantity is an input (see ``engines.rig``), so one
exported graph serves every avatar and a batch can mix avatars.

Per frame:
1. Control-point targets: rest pose + blendshape/gaze basis weighted by the motion frame
   (per layer: the skull layer ignores the jaw's expression), then a 3D head rotation about
   the pivot (scaled per point by ``head_weight`` so border pins stay put), translation, scale.
2. Two smooth forward displacement fields on a coarse grid (thin-plate spline, precomputed as
   a matrix): the skull layer follows everything but the lower lip, the jaw layer everything
   but the upper lip, so the lips part without tearing and the teeth stay with the skull.
3. Each field is inverted by Newton iteration (backward map: output -> source),
   upsampled (the skull layer's over the frame, the jaw layer's only inside the mouth window,
   by two small MatMuls), and the image plus its source-space maps are sampled bilinearly.
4. Per-pixel work beyond sampling happens in two static windows: in the mouth window the
   skull layer is composited over the jaw layer over (mouth interior or neck and background);
   in the eye window the upper lids are drawn descending over the eyes on blinks.

Only ONNX operators that TensorRT supports are used (MatMul, Gather, Resize, Floor, Cast, Exp,
Sin, Cos, Slice, Split, Concat, elementwise ops); no custom plugins. export/trt_compat.py checks
the exported graph in CI.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from contracts import composite
from contracts import motion_frame as mf
from contracts.render_spec import (
    EYE_WINDOW,
    GRID,
    INPUT_NAMES,
    MOUTH_WINDOW,
    OUTPUT_NAMES,
    SPLIT_OUTPUT_NAMES,
    crop,
    window_pixels,
)
from export import warp_inversion

__all__ = ["INPUT_NAMES", "OUTPUT_NAMES", "SPLIT_OUTPUT_NAMES", "Renderer", "split_renderer"]

_BLINK_RIGHT = mf.INDEX["eyeBlinkRight"]
_BLINK_LEFT = mf.INDEX["eyeBlinkLeft"]
_GAZE_X = mf.INDEX["gazeX"]
_GAZE_Y = mf.INDEX["gazeY"]
_JAW = mf.INDEX["jawOpen"]
_CLOSE = mf.INDEX["mouthClose"]


def _rotation(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) rotation, image axes (x right, y down, z away from the camera).

    Positive yaw turns the face to the viewer's right, positive pitch nods down, positive
    roll tilts clockwise on screen.
    """
    cy, sy = torch.cos(yaw), torch.sin(yaw)
    cp, sp = torch.cos(pitch), torch.sin(pitch)
    cr, sr = torch.cos(roll), torch.sin(roll)
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)
    r_yaw = torch.stack([cy, zero, -sy, zero, one, zero, sy, zero, cy], -1).view(-1, 3, 3)
    r_pitch = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).view(-1, 3, 3)
    r_roll = torch.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).view(-1, 3, 3)
    return r_roll @ r_yaw @ r_pitch


def _bilinear(quads: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Bilinear sample of a quad table at ``x``, ``y`` (B, h, w) in source pixels (0 = the
    first pixel's centre), clamped to the border. Returns (B, C, h, w) float32.

    ``quads`` (B, H, W, 4C) holds, for every pixel, its 2x2 neighbourhood (itself, right,
    below, below-right; the border repeats), so bilinear sampling costs one Gather of a row
    per output pixel: onnxruntime's CPU GridSample takes ~100 ms at 512x512, this ~4 ms. The
    result is continuous in the coordinates, so backends agree to rounding (parity tests).
    Everything stays planar (coordinates apart, taps transposed once): onnxruntime
    broadcasts over a leading axis ~15x faster than over the innermost one.
    """
    batch, height, width, quad_channels = quads.shape
    channels = quad_channels // 4
    out_h, out_w = x.shape[1], x.shape[2]
    x = x.clamp(0.0, width - 1.0)
    y = y.clamp(0.0, height - 1.0)
    x0 = torch.floor(x)
    y0 = torch.floor(y)
    index = (x0 + y0 * float(width)).to(torch.int64)  # exact below 2**24
    offset = (torch.arange(batch, dtype=torch.int64) * (height * width)).view(batch, 1, 1)
    flat = quads.reshape(batch * height * width, quad_channels)
    rows = torch.index_select(flat, 0, (index + offset).reshape(-1))
    taps = rows.view(batch, out_h, out_w, quad_channels).permute(0, 3, 1, 2).to(torch.float32)
    p00, p01, p10, p11 = torch.split(taps, channels, dim=1)
    fx = (x - x0).unsqueeze(1)
    fy = (y - y0).unsqueeze(1)
    top = p00 + (p01 - p00) * fx
    bottom = p10 + (p11 - p10) * fx
    return top + (bottom - top) * fy


class Renderer(nn.Module):
    """Renders a batch of frames; all inputs batch-first (see ``engines.rig.Rig``).

    ``split=True`` stops at the source maps (the skull layer's over the frame, the jaw
    layer's in the mouth window) and leaves sampling and compositing to engines.compose,
    which does them on the CPU with OpenCV's ``remap`` and the same ``contracts.composite``
    formulas: Gather-based sampling is most of the graph's cost on a CPU. The full graph
    serves GPUs and is the reference."""

    def __init__(self, grid: int = GRID, split: bool = False) -> None:
        super().__init__()
        self.grid = grid
        self.split = split
        self.output_names = SPLIT_OUTPUT_NAMES if split else OUTPUT_NAMES

    def _targets(self, rest, layer_weight, basis, head_weight, pivot, face_size, motion):
        """Per-layer control targets (B, 2, N, 3)."""
        batch, n_ctrl = rest.shape[0], rest.shape[1]
        # mouthClose closes the lips against an open jaw (ARKit's meaning), so it never
        # closes them further than the jaw opened them: alone it would push the lower lip up
        # through the upper one.
        shapes = motion[:, : mf.NUM_BLENDSHAPES]
        close = torch.minimum(shapes[:, _CLOSE : _CLOSE + 1], shapes[:, _JAW : _JAW + 1])
        shapes = torch.cat([shapes[:, :_CLOSE], close, shapes[:, _CLOSE + 1 :]], 1)
        weights = torch.cat([shapes, motion[:, mf.GAZE_SLICE]], 1)
        offsets = torch.bmm(weights.unsqueeze(1), basis.reshape(batch, basis.shape[1], n_ctrl * 3))
        deformed = rest.unsqueeze(1) + layer_weight.unsqueeze(-1) * offsets.view(
            batch, 1, n_ctrl, 3
        )
        head = motion[:, mf.HEAD_SLICE]
        rot = _rotation(head[:, 0], head[:, 1], head[:, 2])
        scale = 1.0 + head[:, 5].view(batch, 1, 1)
        shift = torch.cat([head[:, 3:5] * face_size, torch.zeros_like(face_size)], 1)
        centered = (deformed - pivot.view(batch, 1, 1, 3)).reshape(batch, 2 * n_ctrl, 3)
        posed = torch.bmm(centered, rot.transpose(1, 2)) * scale + (pivot + shift).unsqueeze(1)
        posed = posed.view(batch, 2, n_ctrl, 3)
        return deformed + head_weight.view(batch, 1, n_ctrl, 1) * (posed - deformed)

    def _backward_maps(
        self,
        targets: torch.Tensor,
        controls: torch.Tensor,
        warp: torch.Tensor,
        head: torch.Tensor,
        jaw_nodes: tuple[tuple[int, int], tuple[int, int]],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Coarse backward displacements in grid steps: the skull layer's (B, 2, g, g) and the
        jaw layer's (B, 2, h, w) at ``jaw_nodes`` (the grid rows and columns that the mouth
        window's pixels interpolate from; the jaw layer is sampled nowhere else). Each is its
        forward field (the warp matrix applied to the control displacements) inverted with a
        depth test (export/warp_inversion.py)."""
        batch = warp.shape[0]
        grid = self.grid
        forward_disp = targets[..., :2] - controls[:, None, :, :2]  # orthographic projection
        fields = torch.matmul(warp, forward_disp) * (0.5 * (grid - 1))  # (B, 2, g*g, 2) steps
        fields = fields.reshape(batch, 2, grid, grid, 2).permute(0, 1, 4, 2, 3)
        # The turn moves points along (yaw, pitch) on screen, turned by the roll.
        yaw, pitch, roll = head[:, 0], head[:, 1], head[:, 2]
        cos, sin = torch.cos(roll), torch.sin(roll)
        along = torch.stack([yaw * cos - pitch * sin, yaw * sin + pitch * cos], 1)
        along = along / torch.sqrt((along * along).sum(1, keepdim=True) + 1e-6)
        return warp_inversion.invert(fields, along, jaw_nodes)

    def forward(
        self,
        image_quads: torch.Tensor,  # (B, H, W, 12) float32: RGB 2x2 neighbourhoods, [0, 255]
        eye_quads: torch.Tensor,  # (B, H, W, 32) float16: render_spec.EYE_CHANNELS quads
        skull_mouth_quads: torch.Tensor,  # (B, H, W, 16) float16: SKULL_MOUTH_CHANNELS quads
        jaw_mouth_quads: torch.Tensor,  # (B, H, W, 20) float16: JAW_MOUTH_CHANNELS quads
        controls: torch.Tensor,  # (B, N, 3) positions in the portrait
        rest: torch.Tensor,  # (B, N, 3) rest-pose positions (lips closed)
        layer_weight: torch.Tensor,  # (B, 2, N) expression weight per layer
        basis: torch.Tensor,  # (B, K+2, N, 3)
        head_weight: torch.Tensor,  # (B, N)
        pivot: torch.Tensor,  # (B, 3)
        face_size: torch.Tensor,  # (B, 1)
        warp: torch.Tensor,  # (B, 2, G*G, N)
        colors: torch.Tensor,  # (B, 4, 3) cavity, teeth, tongue, eyelid; [0, 255]
        motion: torch.Tensor,  # (B, DIM)
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``frame`` (B, H, W, 3) uint8; split: ``source_map`` (B, 2, H, W) float32, the
        skull layer's source pixel (x, y) of every output pixel, and ``jaw_map``
        (B, 2, h, w), the jaw layer's inside MOUTH_WINDOW."""
        batch = image_quads.shape[0]
        size = int(image_quads.shape[1])
        targets = self._targets(rest, layer_weight, basis, head_weight, pivot, face_size, motion)
        head = motion[:, mf.HEAD_SLICE]  # orthographic projection of the posed targets
        mouth = window_pixels(MOUTH_WINDOW, size)
        jaw_nodes = _window_nodes(mouth, size, self.grid)
        skull_back, jaw_back = self._backward_maps(targets, controls, warp, head, jaw_nodes)
        to_pixels = (size - 1.0) / (self.grid - 1.0)  # grid steps -> pixels

        # The skull layer covers the whole frame: output pixel centre + backward displacement.
        fine = F.interpolate(
            skull_back * to_pixels, size=(size, size), mode="bilinear", align_corners=True
        )
        xs = torch.arange(size, dtype=torch.float32).view(1, 1, size)
        ys = torch.arange(size, dtype=torch.float32).view(1, size, 1)
        ux, uy = xs + fine[:, 0], ys + fine[:, 1]

        eye = window_pixels(EYE_WINDOW, size)
        lx, ly = _window_map(jaw_back * to_pixels, mouth, size, self.grid, jaw_nodes)
        if self.split:  # engines.compose samples and composites on the CPU
            return torch.stack([ux, uy], 1), torch.stack([lx, ly], 1)
        rgb = _bilinear(image_quads, ux, uy)  # (B, 3, H, W)
        ex, ey = crop(ux, eye), crop(uy, eye)
        eye_mask, height, travel, scale, *flow = torch.split(_bilinear(eye_quads, ex, ey), 1, dim=1)
        scale = scale * composite.EYE_MAP_PIXELS
        x_dx, x_dy, y_dx, y_dy = (f[:, 0] * composite.EYE_MAP_PIXELS for f in flow)
        gx, gy = composite.gaze_source(
            ex,
            ey,
            (x_dx, x_dy, y_dx, y_dy),
            motion[:, _GAZE_X].view(batch, 1, 1),
            motion[:, _GAZE_Y].view(batch, 1, 1),
        )
        gaze_y = motion[:, _GAZE_Y].view(batch, 1, 1, 1)
        left, right = (
            composite.lid_closure(motion[:, i].view(batch, 1, 1, 1), gaze_y, torch.clamp)
            for i in (_BLINK_LEFT, _BLINK_RIGHT)
        )
        blink = composite.eye_blink(eye_mask, left, right, torch.clamp)
        shift = composite.lid_shift(height, travel, scale, blink, torch.clamp)
        lid = _bilinear(image_quads, ex, ey - shift[:, 0])
        base = _bilinear(image_quads, gx, gy)
        eye_rgb = composite.eyes(base, lid, height, travel, scale, blink, torch.clamp)
        # The eye window reaches into the mouth window (a head pitched down carries the eyes
        # there): the mouth is composited over the frame with the eyes already in it.
        rgb = _paste(rgb, eye_rgb, eye[0], eye[2])
        sx, sy = crop(ux, mouth), crop(uy, mouth)
        skull, not_base, teeth, gum = torch.split(_bilinear(skull_mouth_quads, sx, sy), 1, dim=1)
        jaw, tongue, lower_teeth, throat, lip_inner = torch.split(
            _bilinear(jaw_mouth_quads, lx, ly), 1, dim=1
        )
        cavity, teeth_color, tongue_color = (colors[:, i].view(batch, 3, 1, 1) for i in range(3))
        mouth_rgb = composite.mouth(
            crop(rgb, mouth),
            _bilinear(image_quads, lx, ly),
            skull,
            not_base,
            teeth,
            jaw,
            tongue,
            lower_teeth,
            throat,
            gum,
            lip_inner,
            composite.opening(
                motion[:, _JAW].view(batch, 1, 1, 1),
                motion[:, _CLOSE].view(batch, 1, 1, 1),
                torch.clamp,
            ),
            cavity,
            teeth_color,
            tongue_color,
        )
        rgb = _paste(rgb, mouth_rgb, mouth[0], mouth[2])
        # Round, interleave and convert: uint8 only at the output, the one place TensorRT
        # allows it.
        return torch.floor(rgb.clamp(0.0, 255.0) + 0.5).permute(0, 2, 3, 1).to(torch.uint8)


def split_renderer() -> Renderer:
    """The renderer without the full-frame sampling (see ``Renderer``), for CPU engines."""
    return Renderer(split=True)


def _interpolation_matrix(start: int, stop: int, size: int, grid: int) -> torch.Tensor:
    """(stop - start, grid): align-corners linear interpolation from ``grid`` coarse points to
    output pixels start..stop-1 of ``size``, as a matrix (a constant in the graph)."""
    t = torch.arange(start, stop, dtype=torch.float64) * ((grid - 1.0) / (size - 1.0))
    low = t.floor().clamp(max=grid - 2)
    frac = t - low
    rows = torch.arange(stop - start)
    matrix = torch.zeros(stop - start, grid, dtype=torch.float64)
    matrix[rows, low.long()] = 1.0 - frac
    matrix[rows, low.long() + 1] = frac
    return matrix.to(torch.float32)


def _window_nodes(
    window: tuple[int, int, int, int], size: int, grid: int
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The coarse grid's rows and columns (half-open) that a pixel window interpolates from."""
    top, bottom, left, right = window

    def span(start: int, stop: int) -> tuple[int, int]:
        weights = _interpolation_matrix(start, stop, size, grid).abs().sum(0)
        used = torch.nonzero(weights > 0).flatten()
        return int(used.min()), int(used.max()) + 1

    return span(top, bottom), span(left, right)


def _window_map(
    coarse: torch.Tensor,
    window: tuple[int, int, int, int],
    size: int,
    grid: int,
    nodes: tuple[tuple[int, int], tuple[int, int]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Source pixel coordinates inside a window from a coarse (B, 2, h, w) displacement in
    pixels at the grid's ``nodes`` (``_window_nodes``): the bilinear upsampling restricted to
    the window, as two small MatMuls."""
    top, bottom, left, right = window
    (r0, r1), (c0, c1) = nodes
    rows = _interpolation_matrix(top, bottom, size, grid)[:, r0:r1].contiguous()
    cols = _interpolation_matrix(left, right, size, grid)[:, c0:c1].t().contiguous()
    fine = torch.matmul(torch.matmul(rows, coarse), cols)  # (B, 2, h, w)
    xs = torch.arange(left, right, dtype=torch.float32).view(1, 1, right - left)
    ys = torch.arange(top, bottom, dtype=torch.float32).view(1, bottom - top, 1)
    return xs + fine[:, 0], ys + fine[:, 1]


def _paste(frame: torch.Tensor, patch: torch.Tensor, top: int, left: int) -> torch.Tensor:
    """Replace a (static) rectangle of (B, C, H, W) ``frame`` with ``patch``: Slice + Concat."""
    bottom, right = top + patch.shape[2], left + patch.shape[3]
    middle = torch.cat([frame[:, :, top:bottom, :left], patch, frame[:, :, top:bottom, right:]], 3)
    return torch.cat([frame[:, :, :top], middle, frame[:, :, bottom:]], 2)
