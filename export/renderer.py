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
3. Each field is inverted by damped fixed-point iteration (backward map: output -> source),
   upsampled, and the image plus its source-space maps are sampled bilinearly.
4. Composite, in the mouth window only: skull over jaw over (mouth interior or neck and
   background). Eyelids are tinted shut on blinks.

Only ONNX operators that TensorRT supports are used (MatMul, Gather, GridSample on the coarse
grid, Resize, Floor, Cast, Sin, Cos, Slice, Concat, elementwise ops); no custom plugins.
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

# Damped fixed-point inversion s <- s + a (p - s - D(s)) converges where the forward map
# stretches by up to 2/a - 1 (a jaw drop stretches the skin under the lip ~2-3x).
INVERSION_ITERATIONS = 6
INVERSION_STEP = 0.5
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


def _gather(atlas: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Nearest sample of the half-pixel atlas at ``coords`` (B, h, w, 2): x, y in atlas
    index units (2 per source pixel, 0 = the first pixel's centre), clamped to the border.

    ``atlas`` (B, 2H, 2W, C) holds the source at twice its resolution with the original pixel
    centres at even indices: the nearest atlas sample is within a quarter pixel of bilinear
    sampling and costs one Gather of a C-vector per output pixel (onnxruntime's CPU
    GridSample takes ~100 ms at 512x512). Returns (B, h, w, C) in the atlas' dtype.
    """
    batch, height2, width2, channels = atlas.shape
    out_h, out_w = coords.shape[1], coords.shape[2]
    nearest = torch.floor(coords.clamp(0.0, width2 - 2.0) + 0.5)  # square atlas: one bound
    index = (nearest[..., 0] + nearest[..., 1] * float(width2)).to(torch.int64)  # exact < 2**24
    offset = (torch.arange(batch, dtype=torch.int64) * (height2 * width2)).view(batch, 1, 1)
    rows = torch.index_select(
        atlas.reshape(batch * height2 * width2, channels), 0, (index + offset).reshape(-1)
    )
    return rows.view(batch, out_h, out_w, channels)


def _planar(rows: torch.Tensor) -> torch.Tensor:
    """(B, h, w, C) any dtype -> (B, C, h, w) float32: elementwise work broadcasts cheaply
    over leading dimensions in onnxruntime, expensively over a trailing one."""
    return rows.to(torch.float32).permute(0, 3, 1, 2)


def _to_pixels(planar: torch.Tensor) -> torch.Tensor:
    """(B, 3, h, w) float in [0, 255] -> (B, h, w, 3) float16 integers (exact in float16)."""
    return torch.floor(planar.clamp(0.0, 255.0) + 0.5).permute(0, 2, 3, 1).to(torch.float16)


class Renderer(nn.Module):
    """Renders a batch of frames; all inputs batch-first (see ``engines.rig.Rig``)."""

    def __init__(self, grid: int = GRID) -> None:
        super().__init__()
        self.grid = grid
        lin = torch.linspace(-1.0, 1.0, grid)
        gy, gx = torch.meshgrid(lin, lin, indexing="ij")
        self.register_buffer("grid_points", torch.stack([gx, gy], -1)[None], persistent=False)

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
        """Coarse backward displacement (2B, 2, g, g): output point -> source point - it."""
        batch = warp.shape[0]
        grid = self.grid
        fields = torch.matmul(warp, forward_disp)  # (B, 2, G*G, 2)
        fields = fields.reshape(batch * 2, grid, grid, 2).permute(0, 3, 1, 2)
        points = self.grid_points.expand(batch * 2, grid, grid, 2)
        source = points
        for _ in range(INVERSION_ITERATIONS):
            disp_at = F.grid_sample(
                fields, source, mode="bilinear", padding_mode="border", align_corners=True
            )
            source = source + INVERSION_STEP * (points - source - disp_at.permute(0, 2, 3, 1))
        return (source - points).permute(0, 3, 1, 2)

    def forward(
        self,
        atlas: torch.Tensor,  # (B, 2H, 2W, 3) float16: RGB, integers in [0, 255]
        detail_atlas: torch.Tensor,  # (B, 2H, 2W, 6) float16: render_spec.DETAIL_CHANNELS
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
        batch = atlas.shape[0]
        height, width = atlas.shape[1] // 2, atlas.shape[2] // 2
        targets = self._targets(rest, layer_weight, basis, head_weight, pivot, face_size, motion)
        forward_disp = (targets - controls.unsqueeze(1))[..., :2]  # orthographic projection
        backward = self._backward_maps(forward_disp, warp).view(batch, 2, 2, self.grid, self.grid)
        # Output pixel centres in atlas index units (normalized coordinate c <-> (c + 1) W - 1).
        xs = torch.arange(width, dtype=torch.float32) * 2.0
        ys = torch.arange(height, dtype=torch.float32) * 2.0
        base = torch.stack(
            [xs.view(1, width).expand(height, width), ys.view(height, 1).expand(height, width)], -1
        )

        def full_res(coarse: torch.Tensor) -> torch.Tensor:  # (B, 2, g, g) -> (B, H, W, 2)
            fine = F.interpolate(
                coarse * float(width), size=(height, width), mode="bilinear", align_corners=True
            )
            return base + fine.permute(0, 2, 3, 1)

        # The skull layer covers the whole frame and needs no arithmetic outside the windows.
        grid_upper = full_res(backward[:, 0])
        frame = _gather(atlas, grid_upper)  # (B, H, W, 3) float16
        eye_t, eye_b, eye_l, eye_r = window_pixels(EYE_WINDOW, int(height))
        top, bottom, left, right = window_pixels(MOUTH_WINDOW, int(height))

        # Eyes: lids tinted shut on blinks.
        eye_grid = grid_upper[:, eye_t:eye_b, eye_l:eye_r]
        eye_rgb = _planar(frame[:, eye_t:eye_b, eye_l:eye_r])
        eyes = _planar(_gather(detail_atlas, eye_grid))[:, 0:1]
        blink_left = motion[:, _BLINK_LEFT].view(batch, 1, 1, 1)
        blink_right = motion[:, _BLINK_RIGHT].view(batch, 1, 1, 1)
        lid = (
            eyes.clamp(min=0.0) * blink_left * blink_left
            + (-eyes).clamp(min=0.0) * blink_right * blink_right
        )
        lid_color = colors[:, 3].view(batch, 3, 1, 1)
        eye_rgb = eye_rgb + (lid_color - eye_rgb) * (0.85 * lid)

        # Mouth: skull over jaw over (mouth interior or neck and background).
        grid_lower = full_res(backward[:, 1])[:, top:bottom, left:right]
        _, skull, not_base, teeth, _, _ = torch.split(
            _planar(_gather(detail_atlas, grid_upper[:, top:bottom, left:right])), 1, dim=1
        )
        _, _, _, _, jaw, tongue = torch.split(_planar(_gather(detail_atlas, grid_lower)), 1, dim=1)
        skull_rgb = _planar(frame[:, top:bottom, left:right])
        jaw_rgb = _planar(_gather(atlas, grid_lower))
        cavity, teeth_c, tongue_c = (colors[:, i].view(batch, 3, 1, 1) for i in range(3))
        interior = cavity + (tongue_c - cavity) * (0.75 * tongue)
        interior = interior + (teeth_c - interior) * (0.9 * teeth)
        behind = interior + (skull_rgb - interior) * (1.0 - not_base)
        mouth_rgb = behind + (jaw_rgb - behind) * jaw
        mouth_rgb = mouth_rgb + (skull_rgb - mouth_rgb) * skull

        # Splice in float16 (all values are integers, exact); uint8 only at the output, the one
        # place TensorRT allows it.
        frame = _paste(frame, _to_pixels(eye_rgb), eye_t, eye_l)
        return _paste(frame, _to_pixels(mouth_rgb), top, left).to(torch.uint8)


def _paste(frame: torch.Tensor, patch: torch.Tensor, top: int, left: int) -> torch.Tensor:
    """Replace a (static) rectangle of (B, H, W, C) ``frame`` with ``patch``: Slice + Concat."""
    bottom, right = top + patch.shape[1], left + patch.shape[2]
    middle = torch.cat([frame[:, top:bottom, :left], patch, frame[:, top:bottom, right:]], 2)
    return torch.cat([frame[:, :top], middle, frame[:, bottom:]], 1)
