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
   upsampled, and the image plus its source-space maps are sampled bilinearly.
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

from export import motion_frame as mf
from export.render_spec import (
    EYE_WINDOW,
    GRID,
    INPUT_NAMES,
    MOUTH_WINDOW,
    OUTPUT_NAMES,
    window_pixels,
)

__all__ = ["INPUT_NAMES", "OUTPUT_NAMES", "Renderer"]

INVERSION_ITERATIONS = 3  # Newton steps: the residual is sub-pixel after 3 on our warps
_BLINK_RIGHT = mf.INDEX["eyeBlinkRight"]
_BLINK_LEFT = mf.INDEX["eyeBlinkLeft"]


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


def _quad_table(maps: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) -> (N, h, w, 4C): each point with its right, lower and lower-right
    neighbours (the border repeats), the table ``_bilinear`` samples."""
    right = torch.cat([maps[..., 1:], maps[..., -1:]], 3)
    below = torch.cat([maps[:, :, 1:], maps[:, :, -1:]], 2)
    below_right = torch.cat([right[:, :, 1:], right[:, :, -1:]], 2)
    return torch.cat([maps, right, below, below_right], 1).permute(0, 2, 3, 1)


class Renderer(nn.Module):
    """Renders a batch of frames; all inputs batch-first (see ``engines.rig.Rig``)."""

    def __init__(self, grid: int = GRID) -> None:
        super().__init__()
        self.grid = grid
        steps = torch.arange(grid, dtype=torch.float32)
        gy, gx = torch.meshgrid(steps, steps, indexing="ij")
        self.register_buffer("grid_x", gx[None], persistent=False)
        self.register_buffer("grid_y", gy[None], persistent=False)

    def _targets(self, rest, layer_weight, basis, head_weight, pivot, face_size, motion):
        """Per-layer control targets (B, 2, N, 3)."""
        batch, n_ctrl = rest.shape[0], rest.shape[1]
        weights = torch.cat([motion[:, : mf.NUM_BLENDSHAPES], motion[:, mf.GAZE_SLICE]], 1)
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

    def _backward_maps(self, forward_disp: torch.Tensor, warp: torch.Tensor) -> torch.Tensor:
        """Coarse backward displacement (2B, 2, g, g) in grid steps: for each output grid
        point p, s - p where s + D(s) = p (D the forward displacement field), by Newton.

        Plain fixed-point iteration stalls where the warp compresses (a closing eyelid, lips
        pressing): its step shrinks with 1 + D'. Newton's step uses the field's Jacobian,
        sampled with the field from one 6-channel coarse table (by Gather: onnxruntime's
        GridSample is slow even at 64x64).
        """
        batch = warp.shape[0]
        grid = self.grid
        fields = torch.matmul(warp, forward_disp) * (0.5 * (grid - 1))  # grid steps
        fields = fields.reshape(batch * 2, grid, grid, 2).permute(0, 3, 1, 2)
        # Central differences (one-sided at the edges) of both components along x and y.
        pad_x = torch.cat([fields[..., :1], fields, fields[..., -1:]], 3)
        pad_y = torch.cat([fields[:, :, :1], fields, fields[:, :, -1:]], 2)
        d_dx = (pad_x[..., 2:] - pad_x[..., :-2]) * 0.5
        d_dy = (pad_y[:, :, 2:] - pad_y[:, :, :-2]) * 0.5
        table = _quad_table(torch.cat([fields, d_dx, d_dy], 1))  # Dx Dy Dx/x Dy/x Dx/y Dy/y
        px = self.grid_x.expand(batch * 2, grid, grid)
        py = self.grid_y.expand(batch * 2, grid, grid)
        sx, sy = px, py
        for _ in range(INVERSION_ITERATIONS):
            dx, dy, dxx, dyx, dxy, dyy = torch.split(_bilinear(table, sx, sy), 1, dim=1)
            rx = sx.unsqueeze(1) + dx - px.unsqueeze(1)
            ry = sy.unsqueeze(1) + dy - py.unsqueeze(1)
            a, b, c, d = 1.0 + dxx, dxy, dyx, 1.0 + dyy  # J = [[a, b], [c, d]]
            det = (a * d - b * c).clamp(min=0.05)  # folds are clamped, never inverted
            sx = sx - ((d * rx - b * ry) / det)[:, 0]  # [:, 0], not squeeze: an If in ONNX
            sy = sy - ((a * ry - c * rx) / det)[:, 0]
        return torch.stack([sx - px, sy - py], 1)

    def forward(
        self,
        image_quads: torch.Tensor,  # (B, H, W, 12) float32: RGB 2x2 neighbourhoods, [0, 255]
        eye_quads: torch.Tensor,  # (B, H, W, 12) float16: render_spec.EYE_CHANNELS quads
        skull_mouth_quads: torch.Tensor,  # (B, H, W, 12) float16: SKULL_MOUTH_CHANNELS quads
        jaw_mouth_quads: torch.Tensor,  # (B, H, W, 8) float16: JAW_MOUTH_CHANNELS quads
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
    ) -> torch.Tensor:  # (B, H, W, 3) uint8
        batch = image_quads.shape[0]
        height, width = image_quads.shape[1], image_quads.shape[2]
        targets = self._targets(rest, layer_weight, basis, head_weight, pivot, face_size, motion)
        forward_disp = (targets - controls.unsqueeze(1))[..., :2]  # orthographic projection
        backward = self._backward_maps(forward_disp, warp).view(batch, 2, 2, self.grid, self.grid)
        # Output pixel centres in source pixel units; grid steps -> pixels.
        xs = torch.arange(width, dtype=torch.float32).view(1, 1, width)
        ys = torch.arange(height, dtype=torch.float32).view(1, height, 1)
        to_pixels = (width - 1.0) / (self.grid - 1.0)

        def full_res(coarse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            fine = F.interpolate(
                coarse * to_pixels, size=(height, width), mode="bilinear", align_corners=True
            )
            return xs + fine[:, 0], ys + fine[:, 1]

        eye_t, eye_b, eye_l, eye_r = window_pixels(EYE_WINDOW, int(height))
        top, bottom, left, right = window_pixels(MOUTH_WINDOW, int(height))

        # The skull layer covers the whole frame.
        ux, uy = full_res(backward[:, 0])
        rgb = _bilinear(image_quads, ux, uy)  # (B, 3, H, W)

        # Eyes: on a blink the upper lid descends over the opening, its lash line leading.
        ex, ey = ux[:, eye_t:eye_b, eye_l:eye_r], uy[:, eye_t:eye_b, eye_l:eye_r]
        eye_rgb = rgb[:, :, eye_t:eye_b, eye_l:eye_r]
        eyes, height_in_eye, lift = torch.split(_bilinear(eye_quads, ex, ey), 1, dim=1)
        blink = eyes.clamp(min=0.0) * motion[:, _BLINK_LEFT].view(batch, 1, 1, 1) + (-eyes).clamp(
            min=0.0
        ) * motion[:, _BLINK_RIGHT].view(batch, 1, 1, 1)
        inside = eyes.abs().clamp(max=1.0)
        # The lid edge runs from the upper lash line (height -0.3) to past the lower lid.
        lid_edge = blink * 1.4 - 0.3
        covered = ((lid_edge - height_in_eye) / 0.12).clamp(0.0, 1.0) * inside
        covered = covered * (blink * 8.0).clamp(max=1.0)
        lash = torch.exp(-(((height_in_eye - lid_edge) / 0.1) ** 2)) * (blink * 4.0).clamp(max=1.0)
        # The lid's skin: the portrait just above the upper lid, slid down over the eye.
        lid_rgb = _bilinear(image_quads, ex, ey - lift[:, 0] * 64.0)
        eye_rgb = eye_rgb + (lid_rgb - eye_rgb) * covered
        eye_rgb = eye_rgb * (1.0 - 0.55 * lash * inside)

        # Mouth: skull over jaw over (mouth interior or neck and background).
        lx, ly = full_res(backward[:, 1])
        lx, ly = lx[:, top:bottom, left:right], ly[:, top:bottom, left:right]
        skull, not_base, teeth = torch.split(
            _bilinear(
                skull_mouth_quads, ux[:, top:bottom, left:right], uy[:, top:bottom, left:right]
            ),
            1,
            dim=1,
        )
        jaw, tongue = torch.split(_bilinear(jaw_mouth_quads, lx, ly), 1, dim=1)
        skull_rgb = rgb[:, :, top:bottom, left:right]
        jaw_rgb = _bilinear(image_quads, lx, ly)
        cavity, teeth_c, tongue_c = (colors[:, i].view(batch, 3, 1, 1) for i in range(3))
        interior = cavity + (tongue_c - cavity) * (0.75 * tongue)
        interior = interior + (teeth_c - interior) * (0.9 * teeth)
        behind = interior + (skull_rgb - interior) * (1.0 - not_base)
        mouth_rgb = behind + (jaw_rgb - behind) * jaw
        mouth_rgb = mouth_rgb + (skull_rgb - mouth_rgb) * skull

        rgb = _paste(rgb, eye_rgb, eye_t, eye_l)
        rgb = _paste(rgb, mouth_rgb, top, left)
        # Round, interleave and convert: uint8 only at the output, the one place TensorRT
        # allows it.
        return torch.floor(rgb.clamp(0.0, 255.0) + 0.5).permute(0, 2, 3, 1).to(torch.uint8)


def _paste(frame: torch.Tensor, patch: torch.Tensor, top: int, left: int) -> torch.Tensor:
    """Replace a (static) rectangle of (B, C, H, W) ``frame`` with ``patch``: Slice + Concat."""
    bottom, right = top + patch.shape[2], left + patch.shape[3]
    middle = torch.cat([frame[:, :, top:bottom, :left], patch, frame[:, :, top:bottom, right:]], 3)
    return torch.cat([frame[:, :, :top], middle, frame[:, :, bottom:]], 2)
