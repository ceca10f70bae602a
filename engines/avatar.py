"""Avatar preparation: one portrait image -> a framed square crop and its 478 face landmarks.

Done once per image and cached on disk by content hash (``<cache>/avatars/<avatar_id>/``).
Every bad input raises :class:`AvatarError` with a one-line message fit to show a user, and
nothing is cached then. Loading a cached avatar never imports mediapipe, so a server can
start and serve known avatars without paying for the face model.

Pipeline: read the header (limits checked before any pixel is decoded) -> decode, at a reduced
JPEG scale where possible, with EXIF orientation applied and any mode turned into RGB ->
FaceMesh on a copy of at most ``DETECT_MAX_SIDE`` px -> the largest face -> a square crop of
``CROP_SIDE_PER_FACE`` face heights around it, decoded at the coarsest scale that still has
``size`` px across it, synthesized where it leaves the image (the photo mirrored at its edge,
fading into a background colour field) -> FaceMesh again on the crop for landmarks in crop
pixels.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from contracts import settings

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 50 * 2**20
MAX_PIXELS = 40_000_000
MIN_FACE_PX = 64  # face height (landmark 10 -> 152) in the original image
MIN_SIZE, MAX_SIZE = 64, 4096  # allowed output sizes
NUM_LANDMARKS = 478  # FaceMesh with refine_landmarks=True (468 + 10 iris points)

# Formats we accept. Pillow can open many more (EPS even runs Ghostscript); an upload server
# has no business parsing those.
_ACCEPTED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "AVIF", "BMP", "TIFF", "GIF")

# Detection runs on a copy whose longest side is at most DETECT_MAX_SIDE. FaceMesh's detector
# looks at 128x128 and its mesh at 192x192 face crops, so more pixels only cost time. The
# JPEG is decoded at the coarsest DCT scale (1/2, 1/4, 1/8) that keeps at least this many px.
DETECT_MAX_SIDE = 1024

# Framing, in units of the face height (landmark 10, top of the forehead, to 152, the chin).
# The side leaves ~0.6 face heights above the forehead for the hair and ~0.5 below the chin
# for the neck; the centre sits a little above the landmark-box centre for the same reason.
CROP_SIDE_PER_FACE = 2.1
CROP_CENTER_SHIFT = -0.05
FRAMING_VERSION = 2  # bump when the framing code changes, so old cache entries are not reused

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

# Warn when the user will probably not like the result.
UPSCALE_WARN = 1.5  # crop enlarged more than this to reach `size`
PADDING_WARN = 0.2  # more than this fraction of the crop synthesized beyond the photo

CACHE_FORMAT = 1
_ID_RE = re.compile(r"[0-9a-f]{16}")

# Landmarks used to measure a face.
_FOREHEAD, _CHIN = 10, 152


class AvatarError(Exception):
    """One-line, user-facing message (str(e)); raised for every bad input."""


@dataclass(frozen=True)
class Avatar:
    avatar_id: str  # sha256 of the file bytes + framing parameters, first 16 hex chars
    image: np.ndarray  # (S, S, 3) uint8 RGB, the framed square crop
    landmarks: np.ndarray  # (478, 3) float32, x, y in crop pixels, z in the same pixel units
    warnings: tuple[str, ...]


def default_cache_dir() -> Path:
    """$EMOTE_CACHE_DIR if set, else ~/.cache/emote (contracts/settings.py)."""
    return settings.current().cache_dir


def prepare_avatar(path: str | Path, size: int = 512, cache_dir: Path | None = None) -> Avatar:
    """Prepare the portrait in the file at ``path`` (see :func:`prepare_avatar_bytes`)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            # The size limit is checked on the file's metadata so that a huge upload is
            # refused without reading it.
            _check_byte_count(os.fstat(f.fileno()).st_size)
            data = f.read(MAX_FILE_BYTES + 1)  # +1: a file that grew is still caught
    except FileNotFoundError as e:
        raise AvatarError(f"File not found: {path}") from e
    except IsADirectoryError as e:
        raise AvatarError(f"Not a file: {path}") from e
    except OSError as e:
        raise AvatarError(f"Cannot read {path}: {e.strerror or e}") from e
    return prepare_avatar_bytes(data, size=size, cache_dir=cache_dir)


def prepare_avatar_bytes(data: bytes, size: int = 512, cache_dir: Path | None = None) -> Avatar:
    """Frame the largest face in an encoded image as a ``size`` x ``size`` avatar.

    Returns the cached avatar when this image was prepared before with the same ``size``.
    """
    if not isinstance(size, int) or not MIN_SIZE <= size <= MAX_SIZE:
        raise AvatarError(f"Avatar size must be between {MIN_SIZE} and {MAX_SIZE} px, got {size}.")
    _check_byte_count(len(data))
    avatar_id = _avatar_id(data, size)
    cache_root = cache_dir if cache_dir is not None else default_cache_dir()
    cached = load_cached(avatar_id, cache_root)
    if cached is not None:
        return cached
    avatar, meta = _build(data, size, avatar_id)
    _write_cache(avatar, meta, cache_root)
    return avatar


def load_cached(avatar_id: str, cache_dir: Path | None = None) -> Avatar | None:
    """The cached avatar with this id, or None when absent, malformed or unreadable."""
    if not _ID_RE.fullmatch(avatar_id):  # also keeps ids like "../x" out of the path
        return None
    folder = (cache_dir if cache_dir is not None else default_cache_dir()) / "avatars" / avatar_id
    try:
        meta = json.loads((folder / "meta.json").read_text())
        landmarks = np.load(folder / "landmarks.npy", allow_pickle=False)
        bgr = cv2.imread(str(folder / "crop.png"), cv2.IMREAD_COLOR)
        size = int(meta["size"])
        warnings = tuple(str(w) for w in meta["warnings"])
        if meta["format"] != CACHE_FORMAT:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if bgr is None or bgr.shape != (size, size, 3) or landmarks.shape != (NUM_LANDMARKS, 3):
        return None
    image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return Avatar(avatar_id, image, landmarks.astype(np.float32), warnings)


# --- building ------------------------------------------------------------------------------


def _check_byte_count(n: int) -> None:
    if n == 0:
        raise AvatarError("The image file is empty.")
    if n > MAX_FILE_BYTES:
        raise AvatarError(
            f"The image file is {n / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB."
        )


def _avatar_id(data: bytes, size: int) -> str:
    h = hashlib.sha256(data)
    # Everything that changes the result goes into the id, so a changed parameter is a miss.
    h.update(
        f"|size={size}|side={CROP_SIDE_PER_FACE}|shift={CROP_CENTER_SHIFT}"
        f"|framing={FRAMING_VERSION}".encode()
    )
    return h.hexdigest()[:16]


def _build(data: bytes, size: int, avatar_id: str) -> tuple[Avatar, dict[str, Any]]:
    raw_w, raw_h = _open(data).size  # header only: the decode scale depends on it
    # Decode at the coarsest JPEG scale with >= DETECT_MAX_SIDE px, then shrink for FaceMesh.
    src, src_scale, (w, h) = _decode(data, _reduction(max(raw_w, raw_h), DETECT_MAX_SIDE))
    det_scale = min(1.0, DETECT_MAX_SIDE / max(src.shape[:2]))
    det = _resize(src, round(src.shape[1] * det_scale), round(src.shape[0] * det_scale))
    faces = _detect_faces(det)
    if not faces:
        raise AvatarError("No face found in the image.")
    warnings: list[str] = []
    if len(faces) > 1:
        warnings.append(f"{len(faces)} faces found; using the largest")
    # Landmarks in original-image pixels (z scales with x).
    face = max(faces, key=_box_area) / (src_scale * det_scale)

    face_h = _face_height(face)
    if face_h < MIN_FACE_PX:
        raise AvatarError(
            f"The face is too small ({face_h:.0f} px tall; at least {MIN_FACE_PX} px is needed)."
        )
    x_min, y_min = face[:, :2].min(axis=0)
    x_max, y_max = face[:, :2].max(axis=0)
    center_x = (x_min + x_max) / 2
    center_y = (y_min + y_max) / 2 + CROP_CENTER_SHIFT * face_h
    side = CROP_SIDE_PER_FACE * face_h

    # Crop from a decode with at least `size` px across the crop: the detection decode when it
    # has them, else a finer JPEG scale (other formats were decoded at full size already).
    if side * src_scale < size and src_scale < 1.0:
        src, src_scale, _ = _decode(data, _reduction(side, size))
    image, box, padded = _crop_square(
        src, center_x * src_scale, center_y * src_scale, side * src_scale, size, face * src_scale
    )
    # The crop box in original pixels and the map original -> crop pixels.
    x0, y0 = box[0] / src_scale, box[1] / src_scale
    crop_side = (box[2] - box[0]) / src_scale
    to_crop = size / crop_side
    expected = (face - np.array([x0, y0, 0.0])) * to_crop
    landmarks = _refine_landmarks(image, expected, face_h * to_crop)

    if to_crop > UPSCALE_WARN:
        warnings.append(
            f"The face is only {face_h:.0f} px tall; the avatar is enlarged {to_crop:.1f}x "
            "and may look soft"
        )
    if padded > PADDING_WARN:
        sides = _padded_sides(box, src.shape[1], src.shape[0])
        warnings.append(
            f"The portrait is cropped tightly; {padded:.0%} of the frame was synthesized "
            f"beyond the photo's edge ({sides})"
        )
    avatar = Avatar(avatar_id, image, landmarks.astype(np.float32), tuple(warnings))
    meta = {
        "format": CACHE_FORMAT,
        "avatar_id": avatar_id,
        "size": size,
        "warnings": list(warnings),
        "source_size": [w, h],
        "face_box": [round(float(v), 1) for v in (x_min, y_min, x_max, y_max)],
        "face_height": round(float(face_h), 1),
        "crop_box": [round(float(v), 1) for v in (x0, y0, x0 + crop_side, y0 + crop_side)],
    }
    return avatar, meta


# --- decoding ------------------------------------------------------------------------------


def _open(data: bytes) -> Image.Image:
    """Parse the header only (Image.open is lazy) and enforce the pixel limit."""
    Image.init()  # registers all plugins, so that the filter below sees them
    formats = [f for f in _ACCEPTED_FORMATS if f in Image.OPEN]
    too_big = f"The image is larger than {MAX_PIXELS // 1_000_000} megapixels, the limit."
    try:
        img = Image.open(io.BytesIO(data), formats=formats)
    except Image.DecompressionBombError as e:  # > 2x Pillow's own limit: refused in open()
        raise AvatarError(too_big) from e
    except UnidentifiedImageError as e:
        raise AvatarError(
            "The file is not an image in a supported format (JPEG, PNG, WebP, AVIF, BMP, "
            "TIFF, GIF)."
        ) from e
    except Exception as e:  # Pillow's plugins raise many exception types on corrupt headers
        raise AvatarError("The image file is corrupt.") from e
    w, h = img.size
    if w <= 0 or h <= 0:
        raise AvatarError("The image file is corrupt.")
    if w * h > MAX_PIXELS:
        raise AvatarError(
            f"The image is {w}x{h} ({w * h / 1e6:.0f} megapixels); "
            f"the limit is {MAX_PIXELS // 1_000_000} megapixels."
        )
    return img


def _reduction(have_px: float, need_px: float) -> int:
    """The largest JPEG DCT scale denominator that keeps ``need_px`` of ``have_px``."""
    return next(k for k in (8, 4, 2, 1) if k == 1 or have_px / k >= need_px)


def _decode(data: bytes, reduce: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Upright RGB uint8 pixels, their scale relative to the original image, and the
    original image's upright (width, height).

    ``reduce`` > 1 asks JPEG for DCT-domain downscaling (much faster than decoding the full
    image and resizing); other formats ignore it and come back at full size.
    """
    img = _open(data)
    raw_w, raw_h = img.size
    if reduce > 1:
        img.draft(None, (max(1, raw_w // reduce), max(1, raw_h // reduce)))
    scale = img.size[0] / raw_w
    # Pillow's default, but process-global: re-asserted so that nothing else in the process
    # can make a truncated upload decode into a half-grey image instead of an error.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        img.load()
        # Read after load(): PNG's getexif() would otherwise decode the image a second time.
        if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # orientations that swap the axes
            raw_w, raw_h = raw_h, raw_w
        ImageOps.exif_transpose(img, in_place=True)
        rgb = _to_rgb(img)
    except AvatarError:
        raise
    except Exception as e:  # OSError("image file is truncated"), zlib errors, ...
        raise AvatarError("The image file is truncated or corrupt.") from e
    return rgb, scale, (raw_w, raw_h)


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> (H, W, 3) uint8 RGB; transparency is composited over white."""
    mode = img.mode
    if mode.startswith("I") or mode == "F":
        # 16/32-bit integer and float greyscale: Pillow's convert() clips instead of scaling.
        values = np.asarray(img).astype(np.float32)
        if mode.startswith("I;16") or (mode == "I" and values.max() > 255):
            values /= 257.0
        elif mode == "F" and values.max() <= 1.0:
            values *= 255.0
        grey = np.clip(values + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    try:
        if has_alpha:
            rgba = img.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            rgb = Image.alpha_composite(white, rgba).convert("RGB")
        else:
            rgb = img.convert("RGB")
    except ValueError as e:  # e.g. LAB, which Pillow cannot convert
        raise AvatarError(f"Unsupported image colour mode {mode}.") from e
    return np.ascontiguousarray(np.asarray(rgb))


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    if (width, height) == (rgb.shape[1], rgb.shape[0]):
        return rgb
    shrink = width < rgb.shape[1]
    return cv2.resize(
        rgb, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    )


# --- framing -------------------------------------------------------------------------------


def _crop_square(
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
    image = _resize(region, size, size)
    if padded > 0:
        k = size / n
        face_xy = None if face is None else (face[:, :2] - np.array([x0, y0])) * k
        image = _fill_padding(image, (left * k, top * k, right * k, bottom * k), face_xy)
    return image, (x0, y0, x1, y1), padded


def _padded_sides(box: tuple[int, int, int, int], width: int, height: int) -> str:
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


def _box_area(landmarks: np.ndarray) -> float:
    extent = landmarks[:, :2].max(axis=0) - landmarks[:, :2].min(axis=0)
    return float(extent[0] * extent[1])


def _face_height(landmarks: np.ndarray) -> float:
    """Forehead (10) to chin (152) in the image plane: unchanged by roll, unlike a box."""
    return float(np.linalg.norm(landmarks[_CHIN, :2] - landmarks[_FOREHEAD, :2]))


def _refine_landmarks(crop: np.ndarray, expected: np.ndarray, face_h: float) -> np.ndarray:
    """FaceMesh again on the crop, where the face is big: precise landmarks in crop pixels.

    The face matching the first detection is kept (the crop can hold a neighbour's face too);
    if none matches, the first detection's landmarks, mapped into the crop, are used.
    """
    faces = _detect_faces(crop)
    if faces:
        errors = [float(np.linalg.norm(f[:, :2] - expected[:, :2], axis=1).mean()) for f in faces]
        best = int(np.argmin(errors))
        if errors[best] < 0.15 * face_h:
            return faces[best]
    log.info("FaceMesh found no matching face in the crop; using the first detection")
    return expected


# --- FaceMesh ------------------------------------------------------------------------------

# One FaceMesh per process: building it loads the TFLite models (~0.5 s). Its graph is not
# safe to call from several threads at once, so the lock is held while it runs too.
_face_mesh: Any = None
_face_mesh_lock = threading.Lock()


def _detect_faces(rgb: np.ndarray) -> list[np.ndarray]:
    """Every face FaceMesh finds in ``rgb``: (478, 3) float64 arrays in its pixels.

    z is mediapipe's depth (relative, same scale as x) times the image width.
    """
    global _face_mesh
    height, width = rgb.shape[:2]
    with _face_mesh_lock:
        if _face_mesh is None:
            # Imported here: loading a cached avatar must not pay for (or need) mediapipe.
            import mediapipe as mp

            _face_mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True,
                refine_landmarks=True,
                max_num_faces=5,
                min_detection_confidence=0.5,
            )
        result = _face_mesh.process(np.ascontiguousarray(rgb))
    faces = []
    for face in result.multi_face_landmarks or ():
        points = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float64)
        faces.append(points * np.array([width, height, width]))
    return faces


# --- cache ---------------------------------------------------------------------------------


def _write_cache(avatar: Avatar, meta: dict[str, Any], cache_root: Path) -> None:
    """Write the entry into a temporary folder and rename it into place, so that readers
    never see half an entry. A cache that cannot be written is logged, not fatal."""
    avatars = cache_root / "avatars"
    final = avatars / avatar.avatar_id
    try:
        avatars.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{avatar.avatar_id}.", dir=avatars))
        try:
            bgr = cv2.cvtColor(avatar.image, cv2.COLOR_RGB2BGR)
            if not cv2.imwrite(str(tmp / "crop.png"), bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3]):
                raise OSError("cv2.imwrite failed")
            np.save(tmp / "landmarks.npy", avatar.landmarks)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            try:
                os.rename(tmp, final)
            except OSError:
                # An entry is there already: another process's (keep it) or a broken one.
                if load_cached(avatar.avatar_id, cache_root) is not None:
                    return
                shutil.rmtree(final, ignore_errors=True)
                os.rename(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # gone after a successful rename
    except OSError as e:
        log.warning("Could not cache avatar %s in %s: %s", avatar.avatar_id, avatars, e)
