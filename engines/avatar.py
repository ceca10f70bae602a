"""Avatar preparation: one portrait image -> a framed square crop and its 478 face landmarks.

Done once per image and cached on disk by content hash (``<cache>/avatars/<avatar_id>/``).
Every bad input raises :class:`AvatarError` with a one-line message fit to show a user, and
nothing is cached then. Loading a cached avatar never imports mediapipe, so a server can
start and serve known avatars without paying for the face model.

Pipeline: read the header (limits checked before any pixel is decoded) -> decode, at a reduced
scale where possible (JPEG in the DCT domain; other formats are box-reduced right after the
decode, before the copies that the mode conversion makes), with EXIF orientation applied and
any mode turned into RGB ->
FaceMesh on a copy of at most ``DETECT_MAX_SIDE`` px -> the largest face -> a square crop of
``CROP_SIDE_PER_FACE`` face heights around it, decoded at the coarsest scale that still has
``size`` px across it, synthesized where it leaves the image (engines/framing.py: the photo
mirrored at its edge, fading into a background colour field) -> FaceMesh again on the crop
for landmarks in crop pixels.
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
from typing import Any, BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from contracts import settings
from engines.framing import crop_square, padded_sides, resize

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
# Images are decoded at the coarsest scale (1/2, 1/4, 1/8) that keeps at least this many px.
DETECT_MAX_SIDE = 1024

# Framing, in units of the face height (landmark 10, top of the forehead, to 152, the chin).
# The side leaves ~0.6 face heights above the forehead for the hair and ~0.5 below the chin
# for the neck; the centre sits a little above the landmark-box centre for the same reason.
CROP_SIDE_PER_FACE = 2.1
CROP_CENTER_SHIFT = -0.05
# Bump FRAMING_VERSION when the crop or fill (engines/framing.py) changes, so that old cache
# entries are not reused.
FRAMING_VERSION = 2

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
    return _finish_id(hashlib.sha256(data), size)


def _finish_id(h: hashlib._Hash, size: int) -> str:
    # Everything that changes the result goes into the id, so a changed parameter is a miss.
    h.update(
        f"|size={size}|side={CROP_SIDE_PER_FACE}|shift={CROP_CENTER_SHIFT}"
        f"|framing={FRAMING_VERSION}".encode()
    )
    return h.hexdigest()[:16]


def avatar_id_of_file(path: Path, size: int = 512) -> str:
    """The id :func:`prepare_avatar` gives the image in ``path``, hashed in 1 MB reads, so that
    a server can find an upload in the cache without holding the file in memory."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return _finish_id(h, size)


def check_image_file(path: Path) -> tuple[int, int]:
    """The (width, height) in the header of the image file at ``path``, after the checks that
    need no pixels: byte count, accepted format, pixel limit. Raises AvatarError.

    Only the header is parsed (Pillow's open is lazy), so a server can refuse an image that
    would not fit the limits before it spends a decode, or a process, on it."""
    try:
        _check_byte_count(path.stat().st_size)
        with path.open("rb") as f, _open(f) as img:
            return img.size
    except OSError as e:
        raise AvatarError(f"Cannot read the image: {e.strerror or e}") from e


def _build(data: bytes, size: int, avatar_id: str) -> tuple[Avatar, dict[str, Any]]:
    raw_w, raw_h = _open(data).size  # header only: the decode scale depends on it
    # Decode at the coarsest scale with >= DETECT_MAX_SIDE px, then shrink for FaceMesh.
    src, src_scale, (w, h) = _decode(data, _reduction(max(raw_w, raw_h), DETECT_MAX_SIDE))
    det_scale = min(1.0, DETECT_MAX_SIDE / max(src.shape[:2]))
    det = resize(src, round(src.shape[1] * det_scale), round(src.shape[0] * det_scale))
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
    # has them, else a finer scale (down to the full size).
    if side * src_scale < size and src_scale < 1.0:
        src, src_scale, _ = _decode(data, _reduction(side, size))
    image, box, padded = crop_square(
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
        sides = padded_sides(box, src.shape[1], src.shape[0])
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


def _open(data: bytes | BinaryIO) -> Image.Image:
    """Parse the header only (Image.open is lazy) and enforce the pixel limit."""
    Image.init()  # registers all plugins, so that the filter below sees them
    formats = [f for f in _ACCEPTED_FORMATS if f in Image.OPEN]
    too_big = f"The image is larger than {MAX_PIXELS // 1_000_000} megapixels, the limit."
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        img = Image.open(source, formats=formats)
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
    """The largest scale denominator (a JPEG DCT scale) that keeps ``need_px`` of ``have_px``."""
    return next(k for k in (8, 4, 2, 1) if k == 1 or have_px / k >= need_px)


def _decode(data: bytes, reduce: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Upright RGB uint8 pixels, their scale relative to the original image, and the
    original image's upright (width, height).

    ``reduce`` > 1 asks JPEG for DCT-domain downscaling (much faster than decoding the full
    image and resizing, and the full image is never in memory); other formats are decoded at
    full size and box-reduced at once (:func:`_reduced`), so that the mode conversion and the
    copies after it work on the small image: a 40 MP RGBA PNG made ~0.8 GB of copies before.
    """
    img = _open(data)
    raw_w, raw_h = img.size
    if reduce > 1:
        img.draft(None, (max(1, raw_w // reduce), max(1, raw_h // reduce)))
    # Pillow's default, but process-global: re-asserted so that nothing else in the process
    # can make a truncated upload decode into a half-grey image instead of an error.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        img.load()
        if reduce > 1 and img.size == (raw_w, raw_h):  # draft() did nothing: not a JPEG
            img = _reduced(img, reduce)
        scale = img.size[0] / raw_w
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


def _reduced(img: Image.Image, factor: int) -> Image.Image:
    """``img`` shrunk ``factor`` times by box averaging. Palette and bilevel images are
    expanded first (averaging palette indices would be noise); a mode Pillow cannot reduce
    (16-bit greyscale) stays at full size, which the caller's scale accounts for."""
    if img.mode in ("P", "PA"):
        has_alpha = img.mode == "PA" or "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
    elif img.mode == "1":
        img = img.convert("L")
    try:
        return img.reduce(factor)
    except ValueError:  # "image has wrong mode"
        return img


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


# --- faces ---------------------------------------------------------------------------------


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
