"""The per-avatar rig: everything the renderer needs besides the motion frame.

Built once per avatar from its framed image and 478 FaceMesh landmarks (pure numpy + cv2):

* control points: the landmarks, a ring around the head (hair moves with the head), and pins
  on the image border and shoulders (the background stays put);
* a blendshape basis: each blendshape (and gaze) as a displacement of the control points,
  scaled to this face (mouth width, eye opening, face height);
* thin-plate-spline interpolation weights from control displacements to a dense displacement
  grid, for two layers: the upper layer ignores the lower lip and the lower layer ignores the
  upper lip, so the lips can part without tearing the smooth warp;
* source-space maps (layer masks, teeth and tongue placement, eye apertures) and colours for
  the mouth interior and the eyelids.

All positions are in grid_sample's normalized coordinates: x, y in [-1, 1] over the image;
z (depth, towards the camera negative) in the same units.

The geometry lives in ``engines.rig_basis`` (face frame, blendshape basis, rest pose),
``engines.rig_warp`` (extra controls, layers, spline weights) and ``engines.rig_maps``
(source-space maps, colours, quad tables); this module assembles the :class:`Rig` and caches
it on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from contracts.render_spec import GRID, NUM_CONTROLS
from engines import facemesh_topology as topo
from engines.head_turn import own_yaw
from engines.rig_basis import BASIS_FIELDS, blendshape_basis, face_frame, rest_offset
from engines.rig_maps import aux_maps, palette, quads
from engines.rig_warp import (
    TPS_REGULARIZATION,
    extra_controls,
    head_depth,
    layer_membership,
    tps_weights,
)

__all__ = [
    "BASIS_FIELDS",
    "RIG_VERSION",
    "TPS_REGULARIZATION",
    "Rig",
    "build_rig",
    "rig_for_avatar",
    "rig_path",
]


@dataclass(frozen=True)
class Rig:
    """Renderer inputs that depend only on the avatar (batch dimension added by the engine)."""

    image_quads: np.ndarray  # (S, S, 12) float32: RGB [0, 255] of each pixel's 2x2 block
    eye_quads: np.ndarray  # (S, S, 32) float16: EYE_CHANNELS of each pixel's 2x2 block
    skull_mouth_quads: np.ndarray  # (S, S, 16) float16: SKULL_MOUTH_CHANNELS, 2x2 blocks
    jaw_mouth_quads: np.ndarray  # (S, S, 20) float16: JAW_MOUTH_CHANNELS, 2x2 blocks
    controls: np.ndarray  # (N, 3) float32: positions in the portrait
    rest: np.ndarray  # (N, 3) float32: rest pose (the portrait with its lips closed)
    layer_weight: np.ndarray  # (2, N) float32: expression weight in the skull / jaw layer
    basis: np.ndarray  # (K + 2, N, 3) float32
    head_weight: np.ndarray  # (N,) float32: 1 moves with the head, 0 pinned
    pivot: np.ndarray  # (3,) float32: head rotation centre
    face_size: np.ndarray  # (1,) float32: translation unit (brow to chin), normalized
    warp: np.ndarray  # (2, GRID*GRID, N) float32: control displacement -> grid displacement
    colors: np.ndarray  # (4, 3) float32: cavity, teeth, tongue, eyelid (RGB, [0, 255])
    own_yaw: np.ndarray  # (1,) float32: the portrait's own head yaw (engines.head_turn); not a
    # graph input: the frame renderer limits the total turn with it

    def inputs(self) -> dict[str, np.ndarray]:
        """Named renderer inputs with a batch dimension of 1."""
        return {
            "image_quads": self.image_quads[None],
            "eye_quads": self.eye_quads[None],
            "skull_mouth_quads": self.skull_mouth_quads[None],
            "jaw_mouth_quads": self.jaw_mouth_quads[None],
            "controls": self.controls[None],
            "rest": self.rest[None],
            "layer_weight": self.layer_weight[None],
            "basis": self.basis[None],
            "head_weight": self.head_weight[None],
            "pivot": self.pivot[None],
            "face_size": self.face_size[None],
            "warp": self.warp[None],
            "colors": self.colors[None],
        }


def build_rig(image: np.ndarray, landmarks: np.ndarray) -> Rig:
    """Build the rig from a square RGB uint8 image and its (478, 3) pixel landmarks."""
    size = image.shape[0]
    if image.shape != (size, size, 3) or landmarks.shape != (topo.NUM_LANDMARKS, 3):
        raise ValueError("build_rig needs a square RGB image and 478 landmarks")
    lm = landmarks.astype(np.float64)
    yaw = own_yaw(lm)
    lm[:, 2] = head_depth(lm)
    frame = face_frame(lm)
    shapes = blendshape_basis(lm, frame)
    extra, extra_weight = extra_controls(lm, frame, size)
    controls_px = np.concatenate([lm, extra])
    n_active = len(controls_px)
    if n_active > NUM_CONTROLS:
        raise ValueError(f"{n_active} control points exceed NUM_CONTROLS={NUM_CONTROLS}")
    n_total = NUM_CONTROLS
    extra_weight = np.concatenate([extra_weight, np.zeros(n_total - n_active)])
    pad = np.tile(lm[topo.NOSE_TIP], (n_total - n_active, 1))  # inert, inside the face
    controls_px = np.concatenate([controls_px, pad])
    to_norm = 2.0 / size
    controls = controls_px * to_norm - np.array([1.0, 1.0, 0.0])
    rest = controls.copy()
    rest[: len(lm)] += rest_offset(lm, frame) * to_norm
    basis = np.zeros((len(BASIS_FIELDS), n_total, 3))
    for k, name in enumerate(BASIS_FIELDS):
        basis[k, : len(lm)] = shapes[name] * to_norm
    # The neck under the chin gives way to a dropping jaw (half as far), so the jaw layer's
    # warp stretches there instead of folding over itself.
    _, extra_b = frame.local(extra)
    chin_b = float(frame.local(lm[topo.CHIN][None])[1][0])
    neck = len(lm) + np.flatnonzero((extra_weight[: len(extra)] > 0) & (extra_b > 0.6 * chin_b))
    basis[BASIS_FIELDS.index("jawOpen"), neck] = (
        0.5 * basis[BASIS_FIELDS.index("jawOpen"), topo.CHIN]
    )
    head_weight = np.concatenate([np.ones(len(lm)), extra_weight])
    active_upper, active_lower, layer_weight = layer_membership(controls_px, lm, frame)
    active_upper[n_active:] = False
    active_lower[n_active:] = False
    warp = np.stack(
        [
            tps_weights(controls[:, :2], active_upper, GRID),
            tps_weights(controls[:, :2], active_lower, GRID),
        ]
    )
    # Rotate about a point behind the face at eye-nose height (the neck's top).
    eyes_nose = lm[[topo.NOSE_TIP, 33, 263], :2].mean(0)
    pivot_px = np.array([eyes_nose[0], eyes_nose[1], 0.6 * frame.face_height])
    pivot = pivot_px * to_norm - np.array([1.0, 1.0, 0.0])
    brow_chin = np.linalg.norm(lm[9, :2] - lm[topo.CHIN, :2]) * to_norm
    eye_maps, skull_mouth_maps, jaw_mouth_maps = aux_maps(lm, frame, size)
    return Rig(
        # float32: the whole frame samples it, and casting 12 channels costs more than reading
        # twice the bytes; the window maps stay float16.
        image_quads=quads(image.astype(np.float32), np.float32),
        eye_quads=quads(eye_maps),
        skull_mouth_quads=quads(skull_mouth_maps),
        jaw_mouth_quads=quads(jaw_mouth_maps),
        controls=controls.astype(np.float32),
        rest=rest.astype(np.float32),
        layer_weight=layer_weight.astype(np.float32),
        basis=basis.astype(np.float32),
        head_weight=head_weight.astype(np.float32),
        pivot=pivot.astype(np.float32),
        face_size=np.array([brow_chin], np.float32),
        warp=warp,
        colors=palette(image, lm, frame) * 255.0,
        own_yaw=np.array([yaw], np.float32),
    )


# 22: the portrait's own yaw (the frame renderer limits the total turn); 21: a stronger
# smile (corners up 0.2 mouth widths); 20: the gum line and the lower lip's
# wet inner edge (two more mouth channels); 19: the jaw
# layer starts at the lower inner lip (a painted open mouth's own gap left out);
# 18: the gaze flows (eye maps), no gaze in the warp; 17: the lid slides and unfolds
# (eye maps), no blink in the warp; 16: the cavity's colour back
# to v1's; 15: spread lips thin, corners drop less; 14: the mouth interior's parts; 13:
# head_depth and the 48-point warp grid
RIG_VERSION = 23


def rig_path(avatar_id: str, cache_root: Path) -> Path:
    """Where the avatar's rig is cached."""
    return cache_root / "avatars" / avatar_id / f"rig_v{RIG_VERSION}.npz"


def rig_for_avatar(
    avatar_id: str, image: np.ndarray, landmarks: np.ndarray, cache_root: Path | None
) -> Rig:
    """The avatar's rig, from ``rig_path`` when present (a ~50 ms load instead of a ~0.4 s
    build), else built and saved there."""
    path = None if cache_root is None else rig_path(avatar_id, cache_root)
    if path is not None and path.is_file():
        try:
            with np.load(path) as data:
                cached = Rig(**{f.name: data[f.name] for f in fields(Rig)})
            if cached.warp.shape[1] == GRID * GRID:  # else built for another warp grid
                return cached
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache entry is rebuilt below
    rig = build_rig(image, landmarks)
    if path is not None and path.parent.is_dir():
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, **{f.name: getattr(rig, f.name) for f in fields(Rig)})
        tmp.replace(path)
    return rig
