"""The warping renderer: (avatar rig, motion frame) -> RGB frame, as a torch module.

No learned weights: every avatar-specific quantity is an input (see ``engines.rig``), so one
exported graph serves every avatar and a batch can mix avatars.

Per frame:
1. Control-point targets: rest positions + blendshape/gaze basis weighted by the motion frame,
   then a 3D head rotation about the pivot (scaled per point by ``head_weight``, so border
   pins stay put), translation and scale.
2. Two smooth forward displacement fields on a coarse grid (thin-plate spline, precomputed as
   a matrix): the upper layer follows everything but the lower lip, the lower layer everything
   but the upper lip, so the lips can part without tearing.
3. Each field is inverted by damped fixed-point iteration (backward map: output -> source pixel),
   upsampled, and the image plus its source-space maps are sampled with grid_sample.
4. Composite: upper layer over lower layer over a synthesized mouth interior (cavity, teeth,
   tongue); eyelids tinted shut on blinks.

Only ONNX operators that TensorRT supports are used (MatMul, GridSample, Resize, Sin, Cos,
elementwise ops); no custom plugins.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from export import motion_frame as mf

INPUT_NAMES = (
    "image", "aux", "controls", "rest", "basis", "head_weight", "pivot", "face_size", "warp",
    "colors", "motion",
)
OUTPUT_NAMES = ("frame",)
# Damped fixed-point inversion s <- s + a (p - s - D(s)) converges where the forward map
# stretches by up to 2/a - 1 (a jaw drop stretches the skin under the nose ~2-3x).
INVERSION_ITERATIONS = 10
INVERSION_STEP = 0.5

_BLINK = (mf.INDEX["eyeBlinkRight"], mf.INDEX["eyeBlinkLeft"])


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


class Renderer(nn.Module):
    """Renders a batch of frames; all inputs batch-first (see ``engines.rig.Rig``)."""

    def __init__(self, grid: int = 64) -> None:
        super().__init__()
        self.grid = grid
        lin = torch.linspace(-1.0, 1.0, grid)
        gy, gx = torch.meshgrid(lin, lin, indexing="ij")
        self.register_buffer("grid_points", torch.stack([gx, gy], -1)[None], persistent=False)

    def forward(
        self,
        image: torch.Tensor,  # (B, 3, H, W) in [0, 1]
        aux: torch.Tensor,  # (B, C, H, W)
        controls: torch.Tensor,  # (B, N, 3) positions in the portrait
        rest: torch.Tensor,  # (B, N, 3) rest-pose positions (lips closed)
        basis: torch.Tensor,  # (B, K+2, N, 3)
        head_weight: torch.Tensor,  # (B, N)
        pivot: torch.Tensor,  # (B, 3)
        face_size: torch.Tensor,  # (B, 1)
        warp: torch.Tensor,  # (B, 2, G*G, N)
        colors: torch.Tensor,  # (B, 4, 3)
        motion: torch.Tensor,  # (B, DIM)
    ) -> torch.Tensor:  # (B, H, W, 3) in [0, 255]
        batch, n_ctrl = controls.shape[0], controls.shape[1]
        weights = torch.cat([motion[:, : mf.NUM_BLENDSHAPES], motion[:, mf.GAZE_SLICE]], 1)
        offsets = torch.bmm(weights.unsqueeze(1), basis.reshape(batch, basis.shape[1], n_ctrl * 3))
        deformed = rest + offsets.view(batch, n_ctrl, 3)

        head = motion[:, mf.HEAD_SLICE]
        rot = _rotation(head[:, 0], head[:, 1], head[:, 2])
        scale = 1.0 + head[:, 5].view(batch, 1, 1)
        shift = torch.cat([head[:, 3:5] * face_size, torch.zeros_like(face_size)], 1)
        centered = deformed - pivot.unsqueeze(1)
        posed = torch.bmm(centered, rot.transpose(1, 2)) * scale + (pivot + shift).unsqueeze(1)
        target = deformed + head_weight.unsqueeze(-1) * (posed - deformed)
        # Orthographic projection: drop depth.
        forward_disp = (target - controls)[..., :2]  # (B, N, 2)

        grid = self.grid
        fields = torch.matmul(warp, forward_disp.unsqueeze(1))  # (B, 2, G*G, 2)
        fields = fields.reshape(batch * 2, grid, grid, 2).permute(0, 3, 1, 2)
        points = self.grid_points.expand(batch * 2, grid, grid, 2)
        source = points
        for _ in range(INVERSION_ITERATIONS):
            disp_at = F.grid_sample(
                fields, source, mode="bilinear", padding_mode="border", align_corners=True
            )
            source = source + INVERSION_STEP * (points - source - disp_at.permute(0, 2, 3, 1))
        backward = (source - points).permute(0, 3, 1, 2)  # (2B, 2, g, g)

        height, width = image.shape[2], image.shape[3]
        backward = F.interpolate(backward, size=(height, width), mode="bilinear", align_corners=True)
        xs = (torch.arange(width, dtype=image.dtype) * 2.0 + 1.0) / width - 1.0
        ys = (torch.arange(height, dtype=image.dtype) * 2.0 + 1.0) / height - 1.0
        base = torch.stack(
            [xs.view(1, width).expand(height, width), ys.view(height, 1).expand(height, width)], -1
        )
        sample_grid = base.unsqueeze(0) + backward.permute(0, 2, 3, 1)  # (2B, H, W, 2)

        source_maps = torch.cat([image, aux], 1)
        channels = source_maps.shape[1]
        layered = source_maps.unsqueeze(1).expand(batch, 2, channels, height, width)
        layered = layered.reshape(batch * 2, channels, height, width)
        sampled = F.grid_sample(
            layered, sample_grid, mode="bilinear", padding_mode="border", align_corners=False
        ).view(batch, 2, channels, height, width)
        upper, lower = sampled[:, 0], sampled[:, 1]

        cavity, teeth_c, tongue_c, lid_c = (colors[:, i].view(batch, 3, 1, 1) for i in range(4))
        teeth = upper[:, 5:6]
        tongue = lower[:, 6:7]
        interior = cavity + (tongue_c - cavity) * (tongue * 0.75)
        interior = interior + (teeth_c - interior) * (teeth * 0.9)
        a_upper = upper[:, 3:4]
        a_lower = lower[:, 4:5]
        rgb = a_upper * upper[:, :3] + (1.0 - a_upper) * (
            a_lower * lower[:, :3] + (1.0 - a_lower) * interior
        )
        blink = motion[:, list(_BLINK)].view(batch, 2, 1, 1)
        lid = (upper[:, 7:9] * blink * blink).sum(1, keepdim=True).clamp(0.0, 1.0)
        rgb = rgb + (lid_c - rgb) * (0.85 * lid)
        return (rgb.clamp(0.0, 1.0) * 255.0).permute(0, 2, 3, 1)
