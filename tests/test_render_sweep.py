"""The renderer sweep's instrument (measure/render_sweep.py and its sweep_* modules): its
programs command what they claim, its pose fit recovers known rotations, its SSIM behaves, and
(slow) one run on the bundled portrait produces every reading."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from contracts import motion_frame as mf
from measure import render_sweep as rs
from measure import sweep_blendshapes as sb
from measure import sweep_frames as sf
from measure import sweep_pose as sp
from measure import sweep_programs as sg
from measure import sweep_sheet as sh

HEAD = [mf.INDEX[n] for n in ("headYaw", "headPitch", "headRoll")]


def test_the_head_sweep_covers_the_commanded_ranges_smoothly() -> None:
    motion, segments = sg.head_sweep()
    assert len(motion) == len(segments)
    pose = motion[:, HEAD]
    np.testing.assert_allclose(pose.min(0), [-0.45, -0.3, -0.25], atol=1e-6)
    np.testing.assert_allclose(pose.max(0), [0.45, 0.3, 0.25], atol=1e-6)
    assert np.all(motion[0] == 0) and np.allclose(motion[-1], 0, atol=1e-6)
    others = np.delete(motion, HEAD, axis=1)
    assert np.all(others == 0), "no expression (jawOpen 0) anywhere in the head sweep"
    steps = np.abs(np.diff(pose, axis=0)).max()
    assert steps <= sg.STEP * math.pi / 2 + 1e-6, steps
    np.testing.assert_array_equal(mf.clip(motion), motion)  # inside the motion limits
    assert {"yaw", "pitch", "roll", "yaw+pitch", "yaw+pitch+roll"} <= set(segments)
    # combinations: yaw and pitch both far from 0 in one frame
    assert np.any((np.abs(pose[:, 0]) > 0.4) & (np.abs(pose[:, 1]) > 0.25))


def test_the_expression_sweep_and_the_blink() -> None:
    motion, labels = sg.expression_sweep()
    assert len(motion) == len(sg.EXPRESSIONS) * len(sg.EXPRESSION_POSES)
    jaws = {
        name: float(m[mf.INDEX["jawOpen"]]) for (pose, name), m in zip(labels, motion, strict=True)
    }
    assert [jaws[n] for n in ("neutral", "jaw 0.3", "jaw 0.6", "jaw 0.9")] == pytest.approx(
        [0.0, 0.3, 0.6, 0.9]
    )
    turned = [m for (pose, _), m in zip(labels, motion, strict=True) if pose == "turned"]
    assert all(m[mf.INDEX["headYaw"]] == pytest.approx(0.3) for m in turned)
    blink, values = sg.blink()
    left, right = blink[:, mf.INDEX["eyeBlinkLeft"]], blink[:, mf.INDEX["eyeBlinkRight"]]
    np.testing.assert_array_equal(left, right)
    np.testing.assert_allclose(left, values)
    assert values[0] == 0 and values[-1] == 0 and np.sum(values == 1.0) == sg.BLINK_HOLD
    posed = sg.posed_blink()
    assert len(posed) == 2 * len(sg.BLINK_POSES)
    shut = posed[:, mf.INDEX["eyeBlinkLeft"]]
    np.testing.assert_array_equal(shut, posed[:, mf.INDEX["eyeBlinkRight"]])
    np.testing.assert_array_equal(shut, np.tile([0.0, 1.0], len(sg.BLINK_POSES)))
    np.testing.assert_array_equal(posed[0::2, HEAD], posed[1::2, HEAD])  # open, shut: one pose
    assert np.abs(posed[:, HEAD]).max(0) == pytest.approx([0.45, 0.3, 0.25])
    # pitch down with roll, and yaw with pitch, together
    assert np.any((posed[:, HEAD[1]] > 0.25) & (np.abs(posed[:, HEAD[2]]) > 0.2))
    assert np.any((posed[:, HEAD[1]] > 0.25) & (np.abs(posed[:, HEAD[0]]) > 0.4))


def test_the_rotation_follows_the_motion_frame_convention() -> None:
    nose = np.array([0.0, 0.0, -1.0])  # nearer the camera than the head's centre
    assert (sp.rotation(0.2, 0, 0) @ nose)[0] > 0, "positive yaw turns the face to the right"
    assert (sp.rotation(0, 0.2, 0) @ nose)[1] > 0, "positive pitch nods down"
    right = np.array([1.0, 0.0, 0.0])
    assert (sp.rotation(0, 0, 0.2) @ right)[1] > 0, "positive roll turns clockwise (y down)"
    for angles in [(0.3, -0.2, 0.1), (-0.45, 0.3, -0.25), (0.0, 0.0, 0.0)]:
        assert sp.euler(sp.rotation(*angles)) == pytest.approx(angles, abs=1e-12)


@pytest.mark.parametrize("angles", [(0.3, -0.2, 0.1), (-0.45, 0.3, 0.0), (0.05, 0.0, -0.25)])
def test_the_rigid_fits_recover_a_known_rotation(angles: tuple[float, float, float]) -> None:
    rng = np.random.default_rng(0)
    rest = rng.normal(size=(len(sf.STABLE), 3)) * [60.0, 80.0, 40.0] + [256.0, 256.0, 0.0]
    posed = 1.07 * (rest - rest.mean(0)) @ sp.rotation(*angles).T + [270.0, 240.0, 5.0]
    assert sp.euler(sp.rigid_rotation(rest, posed)) == pytest.approx(angles, abs=1e-9)
    # the 2D fit sees only x, y of the (orthographic) projection and no scale change
    flat = (rest - rest.mean(0)) @ sp.rotation(*angles).T + [270.0, 240.0, 0.0]
    fitted = sp.euler(sp.projected_rotation(rest, flat[:, :2]))
    assert fitted == pytest.approx(angles, abs=0.01)


def test_ssim() -> None:
    rng = np.random.default_rng(1)
    image = np.asarray(np.clip(np.cumsum(rng.normal(size=(64, 80)), 1) * 8 + 128, 0, 255), np.uint8)
    assert sf.ssim(image, image) == pytest.approx(1.0)
    scores = []
    for sigma in (5, 20, 60):
        noisy = np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)
        scores.append(sf.ssim(image, noisy))
    assert 1.0 > scores[0] > scores[1] > scores[2], scores
    rgb = np.stack([image] * 3, -1)
    assert sf.ssim(rgb, rgb) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        sf.ssim(image, image[1:])


def test_iris_hidden_reads_a_lid_over_the_iris() -> None:
    refined = np.zeros((478, 3))
    rest = np.full((60, 100, 3), 200, np.uint8)  # skin
    for centre, ring, x in ((468, range(469, 473), 30.0), (473, range(474, 478), 70.0)):
        refined[centre, :2] = (x, 35.0)
        for i, (dx, dy) in zip(ring, ((6, 0), (0, -6), (-6, 0), (0, 6)), strict=True):
            refined[i, :2] = (x + dx, 35.0 + dy)
        yy, xx = np.mgrid[:60, :100]
        rest[(xx - x) ** 2 + (yy - 35) ** 2 <= 36] = 40  # a dark iris
    assert sf.iris_hidden(rest, rest, refined) == 0.0
    shut = np.full_like(rest, 200)  # the lid's skin over both irises
    assert sf.iris_hidden(rest, shut, refined) == 1.0
    half = rest.copy()
    half[:35] = 200  # the upper half covered
    assert 0.3 < sf.iris_hidden(rest, half, refined) < 0.7


def test_erased_eyes_paints_skin_over_the_eye_and_a_lash_line() -> None:
    """A synthetic face: skin, two dark almond eyes with white sclera. Erased, the eyes'
    insides are skin-coloured, the lower lids carry a dark line, the skin far away is
    untouched and the input is not changed."""
    refined = np.zeros((478, 3))
    rest = np.full((80, 140, 3), (200, 160, 140), np.uint8)
    for outline, lower, cx in zip(sf.EYE_OUTLINES, sf.LOWER_LIDS, (40.0, 100.0), strict=True):
        angles = np.linspace(np.pi, -np.pi, len(outline), endpoint=False)  # 0 and 8: corners
        for i, a in zip(outline, angles, strict=True):
            refined[i, :2] = (cx + 15 * np.cos(a), 40 - 6 * np.sin(a))
        pts = np.round(refined[list(outline), :2]).astype(np.int32)
        cv2.fillPoly(rest, [pts], (240, 240, 240))
        cv2.circle(rest, (int(cx), 40), 5, (30, 20, 10), -1)
        assert set(lower) <= set(outline)
    before = rest.copy()
    out = sf.erased_eyes(rest, refined)
    assert np.array_equal(rest, before)
    for cx in (40, 100):
        inside = out[37:41, cx - 8 : cx + 8].astype(float)  # above the lower lid's line
        assert np.abs(inside - (200, 160, 140)).max() < 25  # skin, no iris, no sclera
        assert out[46, cx].mean() < 120  # the lash line along the lower lid
    assert np.array_equal(out[:15, :], rest[:15, :])  # far from the eyes, untouched


def test_fold_fraction_finds_a_mirrored_strip() -> None:
    yy, xx = np.mgrid[:40, :40].astype(np.float64)
    identity = np.stack([xx, yy])
    assert sf.fold_fraction(identity, (0, 0, 40, 40)) == 0.0
    folded = identity.copy()
    folded[0, :, 10:20] = 30 - xx[:, 10:20]  # columns 10-19 sampled right to left
    assert 0.2 <= sf.fold_fraction(folded, (0, 0, 40, 40)) <= 0.3


def test_statistics_and_verdicts() -> None:
    x = np.linspace(-1, 1, 21)
    assert sp.pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert sp.slope(x, 0.5 * x) == pytest.approx(0.5)
    assert math.isnan(sp.pearson(x, np.zeros_like(x)))
    passing = {
        "face_found": 1.0,
        "yaw_r": 0.99,
        "mouth_excess": 0.0,
        "blink_peak_fraction": 0.1,
        "blendshapes_visible": 1.0,
    }
    assert all(rs.verdicts(passing).values())
    failing = {
        "face_found": 0.9,
        "yaw_r": None,
        "mouth_excess": 0.05,
        "blink_peak_fraction": 0.6,
        "blendshapes_visible": 0.9,
    }
    assert not any(rs.verdicts(failing).values())


def test_the_blendshape_audit_checks_every_shape_and_gaze() -> None:
    checked = {n for c in sb.CHECKS.values() for n in c.values}
    assert set(mf.BLENDSHAPES) | set(mf.GAZE) <= checked
    for name, check in sb.CHECKS.items():
        assert set(check.baseline) <= set(check.values), name
        assert check.side == "" or name.endswith(("Left", "Right")), name


def test_the_audit_features_read_what_they_name() -> None:
    """Move single landmarks of a synthetic face and read each feature's change: the mouth
    corner up, the brow up, the upper lid up, both irises to the image's right."""
    rng = np.random.default_rng(0)
    lm = np.zeros((478, 2))
    lm[:, 0] = rng.uniform(100, 400, 478)
    lm[:, 1] = rng.uniform(100, 400, 478)
    lm[10], lm[152] = (250, 100), (250, 400)  # face height 300
    base = sb.features(lm, lm)

    def moved(index: int, dx: float, dy: float) -> dict[str, float]:
        out = lm.copy()
        out[index] += (dx, dy)
        return sb.features(out, out)

    assert moved(61, 0, -6)["corner_up_R"] - base["corner_up_R"] == pytest.approx(0.02)
    assert moved(61, 0, -6)["corner_up_L"] == base["corner_up_L"]
    assert moved(291, 6, 0)["corner_out_L"] - base["corner_out_L"] == pytest.approx(0.02)
    assert moved(336, 0, -3)["brow_inner_L"] - base["brow_inner_L"] == pytest.approx(0.01)
    assert moved(37, 0, -3)["upper_R"] - base["upper_R"] == pytest.approx(-0.01)
    assert moved(159, 0, -2)["eye_R"] != base["eye_R"]
    both = lm.copy()
    both[[468, 473]] += (3, 0)
    assert sb.features(both, both)["gaze_x"] > base["gaze_x"]


@pytest.mark.slow
def test_a_sweep_on_the_bundled_portrait(tmp_path: Path) -> None:
    from contracts.paths import DEFAULT_PORTRAIT
    from measure.facemesh import FaceTracker, face_measures
    from measure.mouth import portrait_renderer

    renderer = portrait_renderer(DEFAULT_PORTRAIT, tmp_path / "cache")
    result = rs.run_sweep(renderer, step=0.1)
    record = result.record
    assert set(record) == {
        "summary",
        "targets",
        "head_sweep",
        "expressions",
        "blink",
        "blink_posed",
        "blendshapes",
    }
    summary = record["summary"]
    assert set(rs.TARGETS) <= set(summary) and set(record["targets"]) == set(rs.TARGETS)
    frame = record["head_sweep"]["per_frame"]
    assert frame["face"][0] and frame["pose_3d"][0] == [0.0, 0.0, 0.0]  # rest vs itself
    # where the renderer is clean, the pose readings agree in sign with what was commanded
    checks = record["head_sweep"]["checks"]
    for axis in ("yaw_small", "pitch_small"):
        assert all(checks[axis][f"r_{m}"] > 0.9 for m in ("3d", "2d", "content")), checks
    assert 0 < summary["blink_peak_fraction"] < 1
    # what FaceMesh reads on this face with the eyes erased, over the open eye
    assert 0 < summary["blink_erased_fraction"] < 1
    # shut at the head's extremes: read at every pose; pitched down and rolled the lids
    # close (0.57 of the open eye there; 0.82 when the lid was drawn only inside the eye
    # window of the frame at rest, before bea7449)
    posed = record["blink_posed"]
    assert posed["found"] == 1.0 and set(posed["per_pose"]) == {p[0] for p in sg.BLINK_POSES}
    assert posed["per_pose"]["p+.3 r+.25"]["read"] < 0.7, posed
    assert summary["blink_posed_worst"] == max(p["read"] for p in posed["per_pose"].values())
    turned = posed["per_pose"]["yaw -0.45"]
    assert turned["read"] == turned["near_eye"] != turned["fraction"]
    shapes = record["blendshapes"]["shapes"]
    assert set(shapes) == set(sb.CHECKS)
    assert shapes["jawOpen"]["visible"] and shapes["eyeBlinkLeft"]["visible"]
    # the warp's shapes carry the rig's command and the warp's reading; the eye window's none
    assert shapes["mouthSmileLeft"]["commanded"] > 0 and shapes["mouthSmileLeft"]["realized"] > 0
    assert shapes["gazeX+"]["commanded"] is None
    assert frame["fold"][0] == 0.0  # the rest frame's warp does not fold
    assert summary["eye_ssim_mouth"] <= 1.0
    sheet = tmp_path / "sheet.png"
    sh.contact_sheet(result, "mona_lisa", sheet)
    assert 0 < sheet.stat().st_size < 1_000_000
    # face_measures reads a frame exactly as FaceTracker.track does
    rgb = renderer.render(mf.from_dict({"jawOpen": 0.5, "headYaw": 0.1}))[0]
    tracker = FaceTracker(static=True, refine=False)
    try:
        track = tracker.track([rgb])
        lm = tracker.landmarks_3d(rgb)
    finally:
        tracker.close()
    assert lm is not None and lm.shape == (468, 3)
    assert face_measures(lm) == pytest.approx(
        (track.mouth[0], track.width[0], track.eyes[0]), abs=1e-6
    )
