"""Finish frames from the split renderer graph on the CPU.

The split graph (``export.renderer.split_renderer``) computes the warp: the skull layer's
source map over the frame and the jaw layer's inside the mouth window. Sampling and
compositing, the per-pixel work that dominates the full graph on a CPU, happen here: OpenCV's
``remap`` samples the portrait and the rig's masks (bilinear, border replicated like the
graph's clamped sampling; ~1 ms for a 512x512 frame on one core), and the windows are
composited by the same formulas the graph uses (``contracts.composite``). ``remap`` rounds
sampling positions to 1/32 pixel, so frames differ from the full graph's by a level or two
on sharp edges (tests/test_renderer.py bounds it).
"""

from __future__ import annotations

import cv2
import numpy as np

from contracts import composite
from contracts import motion_frame as mf
from contracts.render_spec import (
    EYE_CHANNELS,
    EYE_WINDOW,
    JAW_MOUTH_CHANNELS,
    MOUTH_WINDOW,
    SKULL_MOUTH_CHANNELS,
    crop,
    window_pixels,
)
from engines.rig import Rig

# Sessions render in parallel, one worker thread each: OpenCV's own thread pool would only
# oversubscribe the cores.
cv2.setNumThreads(1)

_BLINK_LEFT = mf.INDEX["eyeBlinkLeft"]
_BLINK_RIGHT = mf.INDEX["eyeBlinkRight"]
_GAZE_X = mf.INDEX["gazeX"]
_GAZE_Y = mf.INDEX["gazeY"]
_JAW = mf.INDEX["jawOpen"]
_CLOSE = mf.INDEX["mouthClose"]
_STRIDE = 3  # the eye boxes' search grid, pixels
# The mouth channels sampled with the portrait on every frame (skull, not_base, teeth; jaw,
# tongue, lower_teeth, throat) and the two sampled only on a real opening.
_GUM = SKULL_MOUTH_CHANNELS.index("gum")
_LIP_INNER = JAW_MOUTH_CHANNELS.index("lip_inner")
_SKULL_ALWAYS = [i for i in range(len(SKULL_MOUTH_CHANNELS)) if i != _GUM]
_JAW_ALWAYS = [i for i in range(len(JAW_MOUTH_CHANNELS)) if i != _LIP_INNER]


def _plain(quads: np.ndarray, channels: int) -> np.ndarray:
    """A rig quad table (S, S, 4C) -> its own maps (S, S, C) float32 (the first C channels
    are each pixel's own values)."""
    return np.ascontiguousarray(quads[..., :channels], dtype=np.float32)


class Compositor:
    """One avatar's source images for ``remap``, built once per rig.

    Windows are composited planar (channels first, masks broadcast over the leading axis):
    numpy broadcasts a (h, w, 1) mask over (h, w, 3) RGB several times slower."""

    def __init__(self, rig: Rig) -> None:
        self.size = rig.image_quads.shape[0]
        rgb = _plain(rig.image_quads, 3)
        self.portrait = np.rint(rgb).astype(np.uint8)  # exact: the quads hold integer RGB
        self.portrait_float = rgb
        # One remap per set of coordinates: the portrait stacked with the layer's masks.
        eye_maps = _plain(rig.eye_quads, len(EYE_CHANNELS))
        self.eye_stack = np.concatenate([rgb, eye_maps], 2)
        # Where in the portrait each eye's maps are not zero (the eye, the lid above it): only
        # output pixels sampled from there can change (a tenth of the eye window).
        sign, flow = eye_maps[..., 0], np.any(eye_maps[..., 4:] != 0.0, axis=-1)
        self.eye_boxes = [box for box in (_box(sign > 0.0), _box(sign < 0.0)) if box]
        # Gaze alone moves only what lies between the lids.
        self.gaze_boxes = [box for box in (_box(flow & (sign > 0)), _box(flow & (sign < 0))) if box]
        # The gum line and the wet lip edge only show on a real opening (composite.opening):
        # sampled on their own then, so a frame without them costs what it did before them.
        skull_maps = _plain(rig.skull_mouth_quads, len(SKULL_MOUTH_CHANNELS))
        self.skull_stack = np.concatenate([rgb, skull_maps[..., _SKULL_ALWAYS]], 2)
        self.gum = np.ascontiguousarray(skull_maps[..., _GUM])
        # jaw, tongue, lower teeth, throat
        jaw_maps = _plain(rig.jaw_mouth_quads, len(JAW_MOUTH_CHANNELS))
        self.jaw_stack = np.concatenate([rgb, jaw_maps[..., _JAW_ALWAYS]], 2)
        self.lip_inner = np.ascontiguousarray(jaw_maps[..., _LIP_INNER])
        # Each is a thin strip along a lip (~1% of the mouth window): found and composited
        # inside its box only, as the eyes are.
        self.gum_box = _box(self.gum > 0.0)
        self.lip_inner_box = _box(self.lip_inner > 0.0)
        self.colors = rig.colors.astype(np.float32).reshape(-1, 3, 1, 1)
        self.eye = window_pixels(EYE_WINDOW, self.size)
        self.mouth = window_pixels(MOUTH_WINDOW, self.size)

    def frames(self, source_map: np.ndarray, jaw_map: np.ndarray, motion: np.ndarray) -> np.ndarray:
        """The split graph's outputs for B frames and their (B, DIM) motion -> (B, S, S, 3)
        uint8 frames."""
        size, batch = self.size, source_map.shape[0]
        if source_map.shape != (batch, 2, size, size):
            raise ValueError(f"source_map {source_map.shape} does not match a {size}px rig")
        out = np.empty((batch, size, size, 3), np.uint8)
        for b in range(batch):
            sx, sy = source_map[b, 0], source_map[b, 1]
            _remap(self.portrait, sx, sy, out[b])
            shown = composite.opening(float(motion[b, _JAW]), float(motion[b, _CLOSE]), np.clip)
            self._mouth(out[b], sx, sy, jaw_map[b, 0], jaw_map[b, 1], float(shown))
            # After the mouth: the eye window reaches into the mouth window, and the mouth's
            # window is pasted whole while the eyes paste only their boxes (the graph cuts the
            # mouth from the frame with the eyes in it; the same pixels either way).
            self._eyes(out[b], sx, sy, motion[b])
        return out

    def _eyes(self, frame: np.ndarray, sx: np.ndarray, sy: np.ndarray, motion: np.ndarray) -> None:
        gaze = float(motion[_GAZE_X]), float(motion[_GAZE_Y])
        lids = tuple(
            float(composite.lid_closure(float(motion[i]), gaze[1], np.clip))
            for i in (_BLINK_LEFT, _BLINK_RIGHT)
        )
        blinking = lids != (0.0, 0.0)  # a blink, or the lids following a downward look
        if not blinking and gaze == (0.0, 0.0):
            return  # the formulas leave open eyes looking ahead exactly as sampled
        top, _, left, _ = self.eye
        ex, ey = crop(sx, self.eye), crop(sy, self.eye)
        for box in self.eye_boxes if blinking else self.gaze_boxes:
            found = _sampled_from(ex, ey, box)
            if found is None:
                continue
            r0, r1, c0, c1 = found
            rgb = self._eye(ex[r0:r1, c0:c1], ey[r0:r1, c0:c1], lids, blinking, gaze)
            _paste(frame, rgb, (top + r0, top + r1, left + c0, left + c1))

    def _eye(
        self,
        ex: np.ndarray,
        ey: np.ndarray,
        lids: tuple[float, ...],  # the left and right lids' closure (composite.lid_closure)
        blinking: bool,
        gaze: tuple[float, float],
    ) -> np.ndarray:
        """One eye's box of the eye window (source coordinates ``ex``, ``ey``) -> planar RGB."""
        eye = _planes(self.eye_stack, ex, ey)
        mask, height, travel, scale = eye[3:7]
        base = eye[:3]
        if gaze != (0.0, 0.0):
            flow = eye[7:] * composite.EYE_MAP_PIXELS
            gx, gy = composite.gaze_source(ex, ey, (flow[0], flow[1], flow[2], flow[3]), *gaze)
            base = _planes(self.portrait_float, gx, gy)
        if not blinking:
            return base
        scale = scale * composite.EYE_MAP_PIXELS
        blink = composite.eye_blink(mask, lids[0], lids[1], np.clip)
        shift = composite.lid_shift(height, travel, scale, blink, np.clip)
        lid = _planes(self.portrait_float, ex, ey - shift)
        return np.ascontiguousarray(
            composite.eyes(base, lid, height, travel, scale, blink, np.clip)
        )

    def _mouth(
        self,
        frame: np.ndarray,
        sx: np.ndarray,
        sy: np.ndarray,
        lx: np.ndarray,
        ly: np.ndarray,
        shown: float,
    ) -> None:
        sx, sy = crop(sx, self.mouth), crop(sy, self.mouth)
        skull_planes = _planes(self.skull_stack, sx, sy)
        skull, not_base, teeth = skull_planes[3:]
        jaw_planes = _planes(self.jaw_stack, lx, ly)
        jaw, tongue, lower_teeth, throat = jaw_planes[3:]
        cavity_color, teeth_color, tongue_color = self.colors[0], self.colors[1], self.colors[2]
        interior = composite.mouth_back(
            throat, tongue, lower_teeth, cavity_color, teeth_color, tongue_color
        )
        if shown > 0.0:  # the lip edge, then the gum (composite.mouth_bands' order)
            for band, xs, ys, box, lift in (
                (self.lip_inner, lx, ly, self.lip_inner_box, composite.LIP_INNER_LIFT),
                (self.gum, sx, sy, self.gum_box, composite.GUM_LIFT),
            ):
                found = _sampled_from(xs, ys, box) if box else None
                if found is None:
                    continue
                r0, r1, c0, c1 = found
                mask = _remap(band, xs[r0:r1, c0:c1], ys[r0:r1, c0:c1])
                part = interior[:, r0:r1, c0:c1]
                part[...] = composite.wet_band(part, mask, lift, shown, tongue_color)
        rgb = composite.mouth_front(
            interior, skull_planes[:3], jaw_planes[:3], skull, not_base, teeth, jaw, teeth_color
        )
        _paste(frame, rgb, self.mouth)


def _extent(region: np.ndarray) -> tuple[int, int, int, int] | None:
    """(first row, last row, first column, last column) of a boolean map's True pixels;
    None if none."""
    rows, cols = np.flatnonzero(region.any(1)), np.flatnonzero(region.any(0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def _sampled_from(
    xs: np.ndarray, ys: np.ndarray, box: tuple[float, float, float, float]
) -> tuple[int, int, int, int] | None:
    """(first row, end row, first column, end column) of the output pixels whose source
    (``xs``, ``ys``) lies in ``box``; None if none. Found on every third pixel, then widened
    by three: the boxes (padded by two source pixels) span at least six pixels each way and
    the warp is smooth, so no pixel is missed, and the formulas leave the extra pixels as
    they were."""
    x0, x1, y0, y1 = box
    sx3, sy3 = xs[::_STRIDE, ::_STRIDE], ys[::_STRIDE, ::_STRIDE]
    found = _extent((sx3 >= x0) & (sx3 <= x1) & (sy3 >= y0) & (sy3 <= y1))
    if found is None:
        return None
    h, w = xs.shape
    r0, r1 = max(0, found[0] * _STRIDE - _STRIDE), min(h, found[1] * _STRIDE + _STRIDE + 1)
    c0, c1 = max(0, found[2] * _STRIDE - _STRIDE), min(w, found[3] * _STRIDE + _STRIDE + 1)
    return r0, r1, c0, c1


def _box(region: np.ndarray, pad: int = 2) -> tuple[float, float, float, float] | None:
    """(x0, x1, y0, y1) around a boolean map's True pixels, widened by ``pad``; None if none
    (the bilinear sampling reads a pixel's neighbours, so a point up to a pixel outside a
    region still reads it)."""
    found = _extent(region)
    if found is None:
        return None
    r0, r1, c0, c1 = found
    return float(c0 - pad), float(c1 + pad), float(r0 - pad), float(r1 + pad)


def _remap(
    image: np.ndarray, x: np.ndarray, y: np.ndarray, dst: np.ndarray | None = None
) -> np.ndarray:
    """``image`` sampled bilinearly at source pixels (x, y), the border repeated."""
    return cv2.remap(
        image,
        np.ascontiguousarray(x, dtype=np.float32),
        np.ascontiguousarray(y, dtype=np.float32),
        cv2.INTER_LINEAR,
        dst=dst,
        borderMode=cv2.BORDER_REPLICATE,
    )


def _planes(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``image`` (S, S, C) sampled at (x, y), planar (C, h, w) (one transpose: OpenCV's
    ``split`` of more than 4 channels costs several times as much)."""
    return np.ascontiguousarray(_remap(image, x, y).transpose(2, 0, 1))


def _paste(frame: np.ndarray, rgb: np.ndarray, window: tuple[int, int, int, int]) -> None:
    """Round planar (3, h, w) float RGB to uint8 into ``frame``'s window."""
    top, bottom, left, right = window
    clipped = np.clip(rgb, 0.0, 255.0, out=rgb)
    clipped += 0.5  # then truncation: floor(x + 0.5) for x >= 0, the graph's rounding
    frame[top:bottom, left:right] = cv2.merge(list(clipped.astype(np.uint8)))
