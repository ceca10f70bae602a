"""Avatar preparation: bad inputs, orientation, several faces, framing of paintings, cache."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageFile

from contracts import settings
from contracts.paths import PORTRAIT_DIRS, REPO
from engines import avatar as avatar_mod
from engines import framing
from engines.avatar import (
    Avatar,
    AvatarError,
    default_cache_dir,
    load_cached,
    prepare_avatar,
    prepare_avatar_bytes,
)

PAINTINGS = ("mona_lisa.jpg", "girl_with_a_pearl_earring.jpg", "gogol.png")

# FaceMesh landmark indices.
RIGHT_EYE, LEFT_EYE = (33, 133, 159, 145), (263, 362, 386, 374)  # corners and lids
NOSE_TIP, UPPER_LIP, LOWER_LIP, FOREHEAD, CHIN = 1, 13, 14, 10, 152


def portrait_path(name: str) -> Path:
    for folder in PORTRAIT_DIRS:
        if (folder / name).is_file():
            return folder / name
    pytest.skip(f"portrait {name} not found in {PORTRAIT_DIRS}")


def portrait(name: str) -> Image.Image:
    return Image.open(portrait_path(name)).convert("RGB")


def encode(img: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def assert_nothing_cached(cache: Path) -> None:
    assert not cache.exists() or not any(cache.rglob("*")), list(cache.rglob("*"))


def check_face_layout(landmarks: np.ndarray) -> None:
    """Upright face: eyes above the nose tip, above the mouth, above the chin."""
    y = landmarks[:, 1]
    eyes = y[list(RIGHT_EYE + LEFT_EYE)].mean()
    mouth = (y[UPPER_LIP] + y[LOWER_LIP]) / 2
    assert y[FOREHEAD] < eyes < y[NOSE_TIP] < mouth < y[CHIN]


def face_height(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[CHIN, :2] - landmarks[FOREHEAD, :2]))


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk claiming width x height RGB, and no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.fixture
def no_detector(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if FaceMesh is run."""

    def refuse(rgb: np.ndarray) -> list[np.ndarray]:
        raise AssertionError("FaceMesh must not run here")

    monkeypatch.setattr(avatar_mod, "_detect_faces", refuse)


# --- bad inputs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"Hello, this is a text file.\n" * 20, "not an image"),
        (np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes(), "not an"),
        (b"", "empty"),
        # Pillow can open EPS (through Ghostscript); an upload must not get that far.
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n", "not an image"),
    ],
    ids=["text", "random-bytes", "empty", "eps"],
)
def test_non_images_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "upload.jpg"
    path.write_bytes(content)
    cache = tmp_path / "cache"
    with pytest.raises(AvatarError, match=message):
        prepare_avatar(path, cache_dir=cache)
    assert_nothing_cached(cache)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("global_flag", [False, True])
def test_truncated_image_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, global_flag: bool
) -> None:
    # Some other module may have switched Pillow's process-global flag on.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", global_flag)
    data = encode(portrait("mona_lisa.jpg"), fmt)
    cache = tmp_path / "cache"
    with pytest.raises(AvatarError, match="truncated"):
        prepare_avatar_bytes(data[: len(data) // 2], cache_dir=cache)
    assert_nothing_cached(cache)


@pytest.mark.parametrize("kind", ["gradient", "noise"])
def test_image_without_a_face_is_refused(tmp_path: Path, kind: str) -> None:
    if kind == "gradient":
        ramp = np.linspace(0, 255, 640, dtype=np.float32)
        pixels = np.stack([np.tile(ramp, (480, 1))] * 3, axis=2).astype(np.uint8)
    else:
        pixels = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    cache = tmp_path / "cache"
    with pytest.raises(AvatarError, match="No face"):
        prepare_avatar_bytes(encode(Image.fromarray(pixels)), cache_dir=cache)
    assert_nothing_cached(cache)


def test_tiny_face_is_refused(tmp_path: Path) -> None:
    gogol = portrait("gogol.png")
    # Gogol's face (forehead to chin) is ~47% of the portrait's height: make it ~40 px.
    side = round(gogol.height * 40 / 238)
    canvas = Image.new("RGB", (240, 240), (128, 128, 128))
    canvas.paste(gogol.resize((side, side), Image.LANCZOS), ((240 - side) // 2, 60))
    cache = tmp_path / "cache"
    with pytest.raises(AvatarError, match=r"too small \((3\d|4\d) px"):
        prepare_avatar_bytes(encode(canvas), cache_dir=cache)
    assert_nothing_cached(cache)


def test_file_over_50_mb_is_refused_without_reading_it(tmp_path: Path, no_detector: None) -> None:
    path = tmp_path / "huge.jpg"
    with path.open("wb") as f:
        f.write(portrait_path("mona_lisa.jpg").read_bytes())  # a valid header...
        f.truncate(51 * 2**20)  # ...then a sparse tail: 51 MB that cost no disk
    cache = tmp_path / "cache"
    tracemalloc.start()
    try:
        with pytest.raises(AvatarError, match="50 MB"):
            prepare_avatar(path, cache_dir=cache)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, f"{peak / 2**20:.0f} MB allocated: the file was read"
    assert_nothing_cached(cache)


def test_bytes_over_50_mb_are_refused(tmp_path: Path, no_detector: None) -> None:
    data = portrait_path("mona_lisa.jpg").read_bytes().ljust(50 * 2**20 + 1, b"\0")
    with pytest.raises(AvatarError, match="50 MB"):
        prepare_avatar_bytes(data, cache_dir=tmp_path / "cache")
    assert_nothing_cached(tmp_path / "cache")


@pytest.mark.parametrize(
    ("width", "height"),
    [(8000, 6000), (20_000, 20_000)],  # the second is past Pillow's own bomb limit
)
def test_image_over_40_megapixels_is_refused_from_its_header(
    tmp_path: Path, no_detector: None, width: int, height: int
) -> None:
    # The file has no pixel data at all: decoding it would fail with another message.
    cache = tmp_path / "cache"
    with pytest.raises(AvatarError, match="40 megapixels"):
        prepare_avatar_bytes(png_header(width, height), cache_dir=cache)
    assert_nothing_cached(cache)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(AvatarError, match="not found"):
        prepare_avatar(tmp_path / "missing.jpg", cache_dir=tmp_path)
    with pytest.raises(AvatarError, match="Not a file"):
        prepare_avatar(tmp_path, cache_dir=tmp_path)
    with pytest.raises(AvatarError, match="size"):
        prepare_avatar(portrait_path("mona_lisa.jpg"), size=16, cache_dir=tmp_path)
    assert not (tmp_path / "avatars").exists()


# --- decoding ------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    # Big enough (2560 px) that the JPEG is decoded at reduced scale as well.
    upright = portrait("mona_lisa.jpg").resize((1440, 2560), Image.LANCZOS)
    # Orientation 6 means "rotate 90 degrees clockwise to display", so store it the other way.
    stored = upright.transpose(
        Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270
    )
    exif = Image.Exif()
    exif[0x0112] = orientation
    rotated = prepare_avatar_bytes(
        encode(stored, "JPEG", quality=92, exif=exif), cache_dir=tmp_path
    )
    reference = prepare_avatar_bytes(encode(upright, "JPEG", quality=92), cache_dir=tmp_path)

    check_face_layout(rotated.landmarks)
    assert np.abs(rotated.landmarks - reference.landmarks)[:, :2].mean() < 3.0
    diff = np.abs(rotated.image.astype(np.int16) - reference.image.astype(np.int16))
    assert diff.mean() < 6.0


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "L", "CMYK", "I;16"])
def test_any_mode_is_prepared_as_rgb(tmp_path: Path, mode: str) -> None:
    rgb = portrait("gogol.png")
    if mode == "I;16":
        grey = np.asarray(rgb.convert("L")).astype(np.uint16) * 257  # full 16-bit range
        img = Image.fromarray(grey)
        assert img.mode == "I;16"
    else:
        img = rgb.convert(mode)
    avatar = prepare_avatar_bytes(
        encode(img, "TIFF" if mode == "CMYK" else "PNG"), cache_dir=tmp_path
    )
    assert avatar.image.dtype == np.uint8 and avatar.image.shape == (512, 512, 3)
    check_face_layout(avatar.landmarks)
    # A 16-bit image scaled, not clipped to white.
    assert 40 < avatar.image.mean() < 200


def test_transparency_is_composited_over_white() -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[:2] = (200, 0, 0, 255)  # opaque red on top, fully transparent black below
    rgb = avatar_mod._to_rgb(Image.fromarray(rgba, "RGBA"))
    assert rgb.shape == (4, 4, 3) and rgb.dtype == np.uint8
    assert (rgb[:2] == (200, 0, 0)).all()
    assert (rgb[2:] == 255).all()
    palette = Image.fromarray(rgba, "RGBA").convert("P")
    palette.info["transparency"] = palette.getpixel((0, 3))
    assert (avatar_mod._to_rgb(palette)[2:] == 255).all()


# --- faces and framing ---------------------------------------------------------------------


@pytest.mark.parametrize("name", PAINTINGS)
def test_paintings_are_framed_around_the_face(tmp_path: Path, name: str) -> None:
    avatar = prepare_avatar(portrait_path(name), cache_dir=tmp_path)
    assert isinstance(avatar, Avatar)
    assert avatar.image.shape == (512, 512, 3) and avatar.image.dtype == np.uint8
    assert avatar.landmarks.shape == (478, 3) and avatar.landmarks.dtype == np.float32
    assert avatar.warnings == ()
    check_face_layout(avatar.landmarks)
    xy = avatar.landmarks[:, :2]
    assert (xy > 0).all() and (xy < 512).all()
    # Head, hair and neck fit: the face is about half the crop's height and centred in x.
    assert 0.4 < face_height(avatar.landmarks) / 512 < 0.55
    assert 0.4 < (xy[:, 0].min() + xy[:, 0].max()) / 2 / 512 < 0.6
    assert 0.4 < (xy[:, 1].min() + xy[:, 1].max()) / 2 / 512 < 0.6
    # z is in pixels, like x: a face is deeper than a few pixels but not deeper than wide.
    depth = np.ptp(avatar.landmarks[:, 2])
    assert 20 < depth < np.ptp(xy[:, 0]) * 1.5
    # The landmarks come from FaceMesh run on the crop itself.
    (redetected,) = avatar_mod._detect_faces(avatar.image)
    assert np.allclose(redetected, avatar.landmarks, atol=0.01)


def test_first_detection_is_mapped_when_the_crop_detection_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = portrait_path("mona_lisa.jpg").read_bytes()
    precise = prepare_avatar_bytes(data, cache_dir=tmp_path / "a")
    detect = avatar_mod._detect_faces
    calls: list[tuple[int, ...]] = []

    def only_first_call(rgb: np.ndarray) -> list[np.ndarray]:
        calls.append(rgb.shape)
        return detect(rgb) if len(calls) == 1 else []

    monkeypatch.setattr(avatar_mod, "_detect_faces", only_first_call)
    mapped = prepare_avatar_bytes(data, cache_dir=tmp_path / "b")
    assert calls[1] == (512, 512, 3)  # the second run is on the crop
    assert np.array_equal(mapped.image, precise.image)
    # Detected at a lower resolution, so a little less precise, but the same face.
    error = np.linalg.norm(mapped.landmarks[:, :2] - precise.landmarks[:, :2], axis=1)
    assert 0 < error.mean() < 4.0
    check_face_layout(mapped.landmarks)


def test_largest_of_several_faces_is_used(tmp_path: Path) -> None:
    gogol = portrait("gogol.png")
    canvas = Image.new("RGB", (880, 520), (90, 90, 90))
    canvas.paste(gogol.resize((300, 300), Image.LANCZOS), (20, 110))  # small one on the left
    canvas.paste(gogol, (360, 8))  # full size (504 px) on the right
    avatar = prepare_avatar_bytes(encode(canvas), cache_dir=tmp_path)
    assert avatar.warnings == ("2 faces found; using the largest",)
    meta = json.loads((tmp_path / "avatars" / avatar.avatar_id / "meta.json").read_text())
    x0, _, x1, _ = meta["face_box"]
    assert 360 < x0 < x1 < 360 + 504
    assert 220 < meta["face_height"] < 260  # Gogol's face at full size is ~238 px
    check_face_layout(avatar.landmarks)


def crop_pads(avatar: Avatar, cache: Path) -> tuple[int, int, int, int]:
    """(left, top, right, bottom): how many crop pixels lie beyond the photo on each side."""
    meta = json.loads((cache / "avatars" / avatar.avatar_id / "meta.json").read_text())
    x0, y0, x1, y1 = meta["crop_box"]
    width, height = meta["source_size"]
    k = avatar.image.shape[0] / (x1 - x0)
    return (
        round(max(0, -x0) * k),
        round(max(0, -y0) * k),
        round(max(0, x1 - width) * k),
        round(max(0, y1 - height) * k),
    )


def fine_detail(band: np.ndarray) -> np.ndarray:
    """The band's luma less its 2 px blur: texture and grain, without the shading."""
    luma = band.astype(np.float32).mean(axis=2)
    return luma - cv2.GaussianBlur(luma, (0, 0), 2.0)


def streakiness(band: np.ndarray, axis: int) -> float:
    """Mean absolute step of the band's fine detail across ``axis`` (perpendicular to the
    image edge) over its step along the edge. Edge replication makes lines perpendicular to
    the edge: well below 1, even blurred; texture, real or synthesized, steps about as much
    either way: ~1."""
    detail = fine_detail(band)
    across = np.abs(np.diff(detail, axis=axis)).mean()
    along = np.abs(np.diff(detail, axis=1 - axis)).mean()
    return float(across / along)


def test_tightly_cropped_portrait_is_synthesized_without_streaks(tmp_path: Path) -> None:
    tight = portrait("gogol.png").crop((120, 110, 420, 420))  # forehead to collar
    avatar = prepare_avatar_bytes(encode(tight), cache_dir=tmp_path)
    (warning,) = avatar.warnings
    # The synthesized share and where it is, as computed from the crop box.
    left, top, right, bottom = crop_pads(avatar, tmp_path)
    real = (512 - left - right) * (512 - top - bottom) / 512**2
    assert f"{1 - real:.0%} of the frame was synthesized beyond the photo's edge" in warning
    assert warning.endswith("(all sides)") and "cropped tightly" in warning
    check_face_layout(avatar.landmarks)
    image = avatar.image
    # Texture, not a blur, far from the photo too (the old fill: 0.15 beside 2.25).
    real_detail = np.abs(fine_detail(image[150:350, left + 5 : left + 60])).mean()
    for far in (image[150:350, 5 : left - 40], image[5 : top - 40, 150:350]):
        assert np.abs(fine_detail(far)).mean() > 0.25 * real_detail
    assert 0.7 < streakiness(image[150:350, left - 30 : left - 3], axis=1) < 1.5
    assert 0.7 < streakiness(image[top - 30 : top - 3, 150:350], axis=0) < 1.5
    # No mirrored face: FaceMesh finds one face in the crop, the one of the landmarks.
    (face,) = avatar_mod._detect_faces(image)
    assert np.abs(face[:, :2] - avatar.landmarks[:, :2]).mean() < 0.5


def test_a_dark_border_line_is_not_extended(tmp_path: Path) -> None:
    """A dark line along the photo's edge (a scan's or JPEG's border, vignetting) used to be
    replicated into dark bands; the fill looks past it."""
    tight = portrait("gogol.png").crop((120, 110, 420, 420))
    lined = tight.copy()
    lined.paste((0, 0, 0), (0, 0, tight.width, 2))  # 2 px black top and left borders
    lined.paste((0, 0, 0), (0, 0, 2, tight.height))
    plain = prepare_avatar_bytes(encode(tight), cache_dir=tmp_path / "plain")
    dark = prepare_avatar_bytes(encode(lined), cache_dir=tmp_path / "lined")
    left, top, _, _ = crop_pads(dark, tmp_path / "lined")
    luma = dark.image.astype(np.float32).mean(axis=2)
    inside = luma[150:350, left + 4 : left + 30].mean()  # real pixels past the line
    fill = luma[150:350, left - 30 : left - 3].mean()
    assert abs(fill - inside) < 10, (fill, inside)  # the old fill: ~4 beside ~26
    plain_luma = plain.image.astype(np.float32).mean(axis=2)
    for region in (np.s_[150:350, : left - 3], np.s_[: top - 3, 150:350]):
        assert abs(luma[region].mean() - plain_luma[region].mean()) < 3


def test_no_dark_smear_above_a_head_cut_by_the_photo(tmp_path: Path) -> None:
    """The issue's case: the hair reaches the photo's top edge against a light wall. Edge
    replication carried the hair's row up into a dark grey smear; the fill above the head
    is the wall's colour, not the hair's."""
    photo = portrait("photo_stableavatar_case3.png").crop((60, 100, 663, 650))
    avatar = prepare_avatar_bytes(encode(photo), cache_dir=tmp_path)
    left, top, right, _ = crop_pads(avatar, tmp_path)
    assert top > 40
    luma = avatar.image.astype(np.float32).mean(axis=2)
    x0, x1 = (int(v) for v in (avatar.landmarks[:, 0].min(), avatar.landmarks[:, 0].max()))
    above = luma[top - 30 : top - 3, x0:x1].mean()
    hair = luma[top + 3 : top + 30, x0:x1].mean()
    wall = np.concatenate(
        [
            luma[top + 3 : top + 30, left + 3 : x0 - 20],
            luma[top + 3 : top + 30, x1 + 20 : -right - 3],
        ],
        axis=1,
    ).mean()
    assert wall - hair > 60  # the scene: dark hair, light wall
    assert abs(above - wall) < abs(above - hair) / 2, (above, wall, hair)  # old: 109, 198, 96
    # No streaks: the old fill's were 0.43 (texture steps ~1 across and along).
    assert streakiness(avatar.image[top - 30 : top - 3, x0:x1], axis=0) > 0.8


def test_real_pixels_are_kept_exactly() -> None:
    rng = np.random.default_rng(3)
    scene = rng.integers(64, 192, (400, 400, 3), dtype=np.uint8)
    photo = scene[100:300, 120:320]  # the scene as a photo: the crop leaves it on 3 sides
    face = np.array([[40.0, 60.0], [90.0, 130.0]])  # a face box, in the photo's pixels
    cut, box, padded = framing.crop_square(photo, 60, 80, 260, 256, face)
    whole, _, unpadded = framing.crop_square(scene, 180, 180, 260, 256, face + np.array([120, 100]))
    assert box == (-70, -50, 190, 210) and unpadded == 0
    assert padded == pytest.approx(1 - 190 * 200 / 260**2)
    # The photo spans x >= 70 * 256/260 = 68.9, 49.2 <= y < 246.2 in the crop; 3 px less
    # leave out the pixels whose resampling reaches past it.
    assert np.array_equal(cut[53:243, 72:], whole[53:243, 72:])
    assert not np.array_equal(cut[:45], whole[:45])


def test_mirror_copies_only_a_band_at_the_edge() -> None:
    n = 500  # crop side: the edge's 3 px are skipped, the band is 25 px deep
    index = framing._mirror_index(100, 80, 60, n)
    assert len(index) == 240 and np.array_equal(index[80:180], np.arange(100))
    before, after = index[:80], index[180:]
    assert before.min() == 3 and before.max() == 27  # never the edge's 3 px, never deeper
    assert after.max() == 96 and after.min() == 72
    assert index[79] == 7 and index[180] == 92  # the mirror image about the skipped edge


def test_padded_sides_are_named() -> None:
    sides = framing.padded_sides
    assert sides((-50, 0, 450, 500), 600, 500) == "left"
    assert sides((-50, -30, 450, 470), 400, 500) == "top, left, right"
    assert sides((-2, -50, 498, 450), 600, 400) == "top, bottom"  # 2 of 500 px: not named
    assert sides((-10, -10, 110, 110), 100, 100) == "all sides"


def test_framing_version_is_in_the_avatar_id(monkeypatch: pytest.MonkeyPatch) -> None:
    before = avatar_mod._avatar_id(b"image", 512)
    monkeypatch.setattr(avatar_mod, "FRAMING_VERSION", avatar_mod.FRAMING_VERSION + 1)
    assert avatar_mod._avatar_id(b"image", 512) != before


# --- cache ---------------------------------------------------------------------------------


def test_cache_hit_skips_face_mesh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = portrait_path("mona_lisa.jpg")
    first = prepare_avatar(path, cache_dir=tmp_path)
    entry = tmp_path / "avatars" / first.avatar_id
    assert sorted(p.name for p in entry.iterdir()) == ["crop.png", "landmarks.npy", "meta.json"]
    assert [p.name for p in (tmp_path / "avatars").iterdir()] == [first.avatar_id]  # no temp

    monkeypatch.setattr(avatar_mod, "_detect_faces", _refuse)
    for again in (prepare_avatar(path, cache_dir=tmp_path), load_cached(first.avatar_id, tmp_path)):
        assert again is not None
        assert again.avatar_id == first.avatar_id and again.warnings == first.warnings
        assert np.array_equal(again.image, first.image)
        assert np.array_equal(again.landmarks, first.landmarks)
        assert again.landmarks.dtype == np.float32


def _refuse(rgb: np.ndarray) -> list[np.ndarray]:
    raise AssertionError("FaceMesh must not run on a cache hit")


def test_cache_hit_does_not_import_mediapipe(tmp_path: Path) -> None:
    path = portrait_path("mona_lisa.jpg")
    avatar_id = prepare_avatar(path, cache_dir=tmp_path).avatar_id
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from engines.avatar import load_cached, prepare_avatar\n"
        f"a = prepare_avatar({str(path)!r}, cache_dir=Path({str(tmp_path)!r}))\n"
        f"assert a.avatar_id == {avatar_id!r}\n"
        f"assert load_cached({avatar_id!r}, Path({str(tmp_path)!r})) is not None\n"
        "print('mediapipe' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_avatar_id_depends_on_content_and_size(tmp_path: Path) -> None:
    data = portrait_path("mona_lisa.jpg").read_bytes()
    big = prepare_avatar_bytes(data, cache_dir=tmp_path)
    small = prepare_avatar_bytes(data, size=256, cache_dir=tmp_path)
    assert len(big.avatar_id) == 16 and int(big.avatar_id, 16) >= 0
    assert small.avatar_id != big.avatar_id
    assert small.image.shape == (256, 256, 3)
    # Same framing at half the size.
    assert np.abs(small.landmarks[:, :2] * 2 - big.landmarks[:, :2]).mean() < 3.0
    other = prepare_avatar_bytes(data + b"\0", cache_dir=tmp_path)  # trailing byte: new id
    assert other.avatar_id != big.avatar_id
    assert {p.name for p in (tmp_path / "avatars").iterdir()} == {
        big.avatar_id,
        small.avatar_id,
        other.avatar_id,
    }


def test_load_cached_misses(tmp_path: Path) -> None:
    assert load_cached("0123456789abcdef", tmp_path) is None
    assert load_cached("../../etc/passwd", tmp_path) is None
    avatar = prepare_avatar(portrait_path("mona_lisa.jpg"), cache_dir=tmp_path)
    (tmp_path / "avatars" / avatar.avatar_id / "meta.json").write_text("{not json")
    assert load_cached(avatar.avatar_id, tmp_path) is None
    # A broken entry is rebuilt, not trusted, and replaced.
    again = prepare_avatar(portrait_path("mona_lisa.jpg"), cache_dir=tmp_path)
    assert np.array_equal(again.image, avatar.image)
    assert load_cached(avatar.avatar_id, tmp_path) is not None


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EMOTE_CACHE_DIR", str(tmp_path / "c"))
    settings.current.cache_clear()  # the process reads its settings once
    try:
        assert default_cache_dir() == tmp_path / "c"
        monkeypatch.delenv("EMOTE_CACHE_DIR")
        settings.current.cache_clear()
        assert default_cache_dir() == Path.home() / ".cache" / "emote"
    finally:
        settings.current.cache_clear()
