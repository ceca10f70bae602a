"""Framing of an avatar: the square crop around the face and the border synthesized where that
square reaches past the photo.

One concern: given decoded pixels, a centre and a side, cut the square out and fill what lies
beyond the photo's edge so that it reads as more of the same background, not as smears. A
tightly cropped portrait (hair or chin cut by the photo's edge) leaves 30-60% of the square
outside it; replicating the edge rows made dark streaks above a cut-off head. Instead each
padded side mirrors a thin band at the edge, which fades into a background colour field
(taken from the real pixels along the padded sides, outside the head) and grain of the photo's
own strength; real pixels are kept exactly. See "Avatar preparation" in docs/architecture.md.

Face detection, landmarks, loading and caching are in engines/avatar.py, which calls
:func:`crop_square`, :func:`padded_sides` (for its warning) and :func:`resize`.
"""

from __future__ import annotations

import cv2
import numpy as np

# Where the crop reaches past the photo, the frame is synthesized (_mirror_extend, then
# _fill_padding); all lengths are fractions of the crop's side. Each padded side mirrors a
# band MIRROR_DEPTH deep whose mirror line lies EDGE_SKIP inside the edge. The mirror's
# colour (its FILL_LOW_SIGMA blur) gives way, over ~FILL_COLOUR_FADE, to a background field
# made from the real pixels within EDGE_BAND of the padded sides, and its finer texture, over
# ~FILL_TEXTURE_FADE, to grain.
EDGE_SKIP = 0.006
MIRROR_DEPTH = 0.05
FILL_LOW_SIGMA = 0.01
FILL_COLOUR_FADE = 0.025
FILL_TEXTURE_FADE = 0.04
EDGE_BAND = 0.08
SIDE_NAME_MIN = 0.01  # a side is named in the warning once it holds 1% of the frame


def crop_square(
    src: np.ndarray,
    center_x: float,
    center_y: float,
    side: float,
    size: int,
    face: np.ndarray | None = None,
) -> tuple[np.ndarray, tuple[int, int, int, int], float]:
    """The square around a centre, resized to ``size``; synthesized where it leaves src.

    ``face`` holds the face's landmarks (x, y in src pixels, more columns ignored): the head
    they outline is kept out of the synthesized background's colour (see
    :func:`_fill_padding`). Returns the crop, its integer box (x0, y0, x1, y1) in src pixels
    and the fraction of its area that was synthesized.
    """
    n = max(1, round(side))
    x0, y0 = round(center_x - n / 2), round(center_y - n / 2)
    x1, y1 = x0 + n, y0 + n
    h, w = src.shape[:2]
    left, top = max(0, -x0), max(0, -y0)
    right, bottom = max(0, x1 - w), max(0, y1 - h)
    region = src[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)]
    padded = 1.0 - region.shape[0] * region.shape[1] / (n * n)
    if padded > 0:
        region = _mirror_extend(region, (left, top, right, bottom), n)
    image = resize(region, size, size)
    if padded > 0:
        k = size / n
        face_xy = None if face is None else (face[:, :2] - np.array([x0, y0])) * k
        image = _fill_padding(image, (left * k, top * k, right * k, bottom * k), face_xy)
    return image, (x0, y0, x1, y1), padded


def padded_sides(box: tuple[int, int, int, int], width: int, height: int) -> str:
    """Where a crop box reaches past a width x height image, in words: "top, left", or
    "all sides"; a side counts once it holds ``SIDE_NAME_MIN`` of the box's area."""
    x0, y0, x1, y1 = box
    n = x1 - x0
    bands = {
        "top": max(0, -y0) / n,
        "bottom": max(0, y1 - height) / n,
        "left": max(0, -x0) / n,
        "right": max(0, x1 - width) / n,
    }
    sides = [name for name, fraction in bands.items() if fraction >= SIDE_NAME_MIN]
    return "all sides" if len(sides) == 4 else ", ".join(sides)


def _mirror_extend(region: np.ndarray, pads: tuple[int, int, int, int], n: int) -> np.ndarray:
    """``region`` padded by (left, top, right, bottom) px with mirror images of its edge.

    Each padded side mirrors only a band ``MIRROR_DEPTH`` of the crop side deep, back and
    forth, so nothing deeper in the photo (an earring, the chin, an eye) is ever copied out.
    The band starts ``EDGE_SKIP`` inside the edge: a photo's last rows and columns are often
    darker (vignetting, a scanner's or JPEG's edge) and would be repeated as a dark line;
    the real pixels are put back over the skipped rows.
    """
    left, top, right, bottom = pads
    h, w = region.shape[:2]
    rows = _mirror_index(h, top, bottom, n)
    cols = _mirror_index(w, left, right, n)
    return np.ascontiguousarray(region.take(rows, axis=0).take(cols, axis=1))


def _mirror_index(length: int, before: int, after: int, n: int) -> np.ndarray:
    """Source indices for ``before + length + after`` positions along one axis: identity
    over the real ``length``, mirrored back and forth within a band beyond it."""
    skip = max(3, round(EDGE_SKIP * n))
    depth = max(2, round(MIRROR_DEPTH * n))
    index = np.arange(-before, length + after)
    for pad, sign in ((before, -1), (after, 1)):
        if pad == 0:
            continue
        inset = min(skip, max(0, (length - 2) // 4))
        band = max(2, min(depth, length - 2 * inset))
        mirror = inset if sign < 0 else length - 1 - inset  # index of the mirror line
        beyond = index < 0 if sign < 0 else index >= length
        p = np.abs(index[beyond] - mirror)  # distance from the mirror line
        t = p % (2 * (band - 1))
        fold = np.where(t < band, t, 2 * (band - 1) - t)  # 0..band-1, back and forth
        index[beyond] = mirror - sign * fold
    return index


def _fill_padding(
    image: np.ndarray,
    pads: tuple[float, float, float, float],
    face: np.ndarray | None,
) -> np.ndarray:
    """Turn the mirrored bands (see :func:`_mirror_extend`) into a plausible background;
    the real pixels are returned unchanged.

    The mirror continues the photo's texture and colour across its edge (no streaks, unlike
    edge replication), but only for a while: with the distance d from the real image, its
    colour (``mirror_low``, a FILL_LOW_SIGMA blur) gives way to a background colour field
    and its fine texture to grain of the photo's own strength::

        fill = back + c(d) * (mirror_low - back) + t(d) * (mirror - mirror_low)
                    + (1 - t(d)) * grain

    c and t fall exponentially, faster where the mirror is unlike the background (the hair
    at a cut-off head ends within a few pixels; a wall goes on). The background field
    (:func:`_background_field`) is the colour of the real pixels along the padded sides
    outside the head, so above a head cut by the photo's top edge it is the wall beside
    the hair, not the hair: replicating that edge row is what made the dark smears.
    """
    size = image.shape[0]
    left, top, right, bottom = pads
    coords = np.arange(size, dtype=np.float32) + 0.5
    # Distance from the real image (0 inside it; Euclidean, so corners, which are mirrored
    # twice, fade sooner along the diagonal).
    dx = np.maximum(left - coords, coords - (size - right)).clip(min=0)
    dy = np.maximum(top - coords, coords - (size - bottom)).clip(min=0)
    distance = np.sqrt(dx[None, :] ** 2 + dy[:, None] ** 2)
    real = distance == 0

    mirror = image.astype(np.float32)
    mirror_low = _blur(mirror, FILL_LOW_SIGMA * size)
    # The real pixels within EDGE_BAND of a padded side (but not the outermost EDGE_SKIP,
    # which the mirror skips too): what the background continues.
    inner_x, inner_y = np.full(size, np.inf, np.float32), np.full(size, np.inf, np.float32)
    for inner, before, after in ((inner_x, left, right), (inner_y, top, bottom)):
        if before > 0:
            np.minimum(inner, coords - before, out=inner)
        if after > 0:
            np.minimum(inner, size - after - coords, out=inner)
    inner = np.minimum(inner_x[None, :], inner_y[:, None])
    edge = real & (inner >= EDGE_SKIP * size + 1) & (inner < EDGE_BAND * size)
    background = _background_field(mirror, edge, face)

    # Per synthesized pixel (vectors from here on; the real pixels are not touched).
    pad = ~real
    fine, low, back = mirror[pad], mirror_low[pad], background[pad]
    d = (distance[pad] / size)[:, None]
    # Content unlike the background (hair, a shoulder against a wall) ends sooner than
    # content like it: the fade runs up to 2x faster, from a colour distance of 50 levels.
    unlike = np.minimum(np.linalg.norm(low - back, axis=1, keepdims=True) / 50.0, 1.0)
    colour = np.exp(-d * (1.0 + unlike) / FILL_COLOUR_FADE)
    texture = np.exp(-d * (1.0 + unlike) / FILL_TEXTURE_FADE)
    grain = _grain(mirror, real)[pad]
    fill = back + colour * (low - back) + texture * (fine - low) + (1.0 - texture) * grain
    out = image.copy()
    out[pad] = np.clip(fill + 0.5, 0, 255).astype(np.uint8)
    return out


def _grain(image: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Noise with the real pixels' grain (the robust spread of their finest detail, per
    channel), the same for every call: film grain, sensor noise or a painting's canvas
    without any of the photo's shapes."""
    fine = image - cv2.GaussianBlur(image, (0, 0), 1.0)
    sample = np.abs(fine[::4, ::4][real[::4, ::4]])  # a 1/16 grid is plenty for a median
    level = 1.4826 * np.median(sample, axis=0) if len(sample) else np.zeros(3)  # MAD -> sigma
    noise = np.random.default_rng(0).standard_normal(real.shape, dtype=np.float32)
    # A 0.7 px blur makes grain of pixel noise; 2.5 restores its spread (1 / 0.40).
    noise = cv2.GaussianBlur(noise, (0, 0), 0.7) * 2.5
    return noise[:, :, None] * level.astype(np.float32)


def _face_ellipse(face: np.ndarray, size: int) -> np.ndarray:
    """A 0/1 float mask (size x size) of the head: an ellipse around the landmarks' box, tall
    enough (0.55 face heights past it) to be about as wide as the face over the hair above
    the forehead, cut off just below the chin (the neck and clothes below are not masked:
    they do continue past a photo's bottom edge)."""
    x_min, y_min = (float(v) for v in face[:, :2].min(axis=0))
    x_max, y_max = (float(v) for v in face[:, :2].max(axis=0))
    face_h = y_max - y_min
    centre = (round((x_min + x_max) * 2), round((y_min + y_max) * 2))  # in 1/4 px (shift=2)
    axes = (round((x_max - x_min) * 2 + 1.2 * face_h), round((y_max - y_min) * 2 + 2.2 * face_h))
    mask = np.zeros((size, size), np.uint8)
    cv2.ellipse(mask, centre, (max(1, axes[0]), max(1, axes[1])), 0, 0, 360, (1,), -1, 8, 2)
    mask[max(0, round(y_max + 0.1 * face_h)) :] = 0
    return mask.astype(np.float32)


def _background_field(image: np.ndarray, edge: np.ndarray, face: np.ndarray | None) -> np.ndarray:
    """A smooth colour field over the whole image: the colour of the ``edge`` pixels (the
    real ones along the padded sides) outside the head, spread by normalized convolution
    (fine where such pixels are near, coarse elsewhere). Computed at 1/8 size: it has no
    detail."""
    size = image.shape[0]
    small = max(8, size // 8)
    weight = edge.astype(np.float32)
    if face is not None:
        # Where the edge is all head, its colour is used after all, at a low weight.
        weight *= 1.0 - 0.999 * _face_ellipse(face, size)
    w = cv2.resize(weight, (small, small), interpolation=cv2.INTER_AREA)
    wi = cv2.resize(image * weight[:, :, None], (small, small), interpolation=cv2.INTER_AREA)
    mean = wi.reshape(-1, 3).sum(axis=0) / max(float(w.sum()), 1e-6)
    field = np.broadcast_to(mean, wi.shape).astype(np.float32)
    # Coarse to fine: a finer estimate takes over wherever more than ~1% of its kernel
    # holds edge pixels, so each place gets the colour of the nearest edge outside the head.
    for sigma in (0.3, 0.15, 0.08, 0.04):  # fractions of the side
        s = sigma * small
        num = cv2.GaussianBlur(wi, (0, 0), s)
        den = cv2.GaussianBlur(w, (0, 0), s)[:, :, None]
        field = (num + 0.01 * field) / (den + 0.01)
    return cv2.resize(field, (size, size), interpolation=cv2.INTER_CUBIC)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; wide ones run on a downscaled copy (the result is smooth anyway)."""
    factor = max(1, int(sigma // 4))
    if factor == 1:
        return cv2.GaussianBlur(image, (0, 0), sigmaX=sigma)
    h, w = image.shape[:2]
    small = cv2.resize(
        image, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA
    )
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma / factor)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """``rgb`` at width x height: area averaging to shrink, bicubic to enlarge."""
    if (width, height) == (rgb.shape[1], rgb.shape[0]):
        return rgb
    shrink = width < rgb.shape[1]
    return cv2.resize(
        rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    )
