"""The rig and the warping renderer: geometry checked with FaceMesh on rendered frames,
and parity between engine backends."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from PIL import Image

from contracts import motion_frame as mf
from contracts.render_spec import (
    EYE_WINDOW,
    JAW_MOUTH_CHANNELS,
    MOUTH_WINDOW,
    NUM_CONTROLS,
    SKULL_MOUTH_CHANNELS,
    window_pixels,
)
from engines.avatar import prepare_avatar
from engines.backends import create_engine
from engines.compose import Compositor
from engines.frame_renderer import FrameRenderer
from engines.head_turn import limit_motion
from engines.renderer_models import create_renderer, renderer_name
from engines.rig import build_rig
from measure.facemesh import FaceTracker

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def ort_engine():
    """The CPU renderer users get: the split graph, finished by engines.compose."""
    return create_renderer()


@pytest.fixture(scope="module")
def full_engine():
    """The whole-frame graph (GPUs; the reference)."""
    return create_engine("renderer")


@pytest.fixture(scope="module")
def tracker():
    t = FaceTracker(static=True)
    yield t
    t.close()


def render(engine, rig, **motion: float) -> np.ndarray:
    return FrameRenderer(engine, rig).render(mf.from_dict(motion)[None])[0]


def mouth_opening(tracker: FaceTracker, frame: np.ndarray) -> float:
    lm = tracker.landmarks(frame)
    assert lm is not None, "FaceMesh lost the face"
    return float(np.linalg.norm(lm[13] - lm[14]) / np.linalg.norm(lm[10] - lm[152]))


def eye_opening(tracker: FaceTracker, frame: np.ndarray) -> float:
    lm = tracker.landmarks(frame)
    assert lm is not None
    return float(np.linalg.norm(lm[159] - lm[145]) + np.linalg.norm(lm[386] - lm[374]))


def test_rig_shapes_are_static_for_every_avatar(mona_rig) -> None:
    inputs = mona_rig.inputs()
    assert inputs["controls"].shape == (1, NUM_CONTROLS, 3)
    assert inputs["basis"].shape == (1, mf.NUM_BLENDSHAPES + 2, NUM_CONTROLS, 3)
    assert inputs["image_quads"].shape == (1, 512, 512, 12)
    assert inputs["image_quads"].dtype == np.float32
    assert inputs["eye_quads"].dtype == np.float16
    assert inputs["image_quads"].flags["C_CONTIGUOUS"]
    assert np.isfinite(inputs["warp"]).all()


def test_the_head_turns_on_a_smoothed_depth(mona_avatar, mona_rig) -> None:
    """The rig rotates the head on FaceMesh's depth smoothed (a quartic surface plus half the
    detail), and the ring around the head lies as deep as the face's edge beside it."""
    from engines import facemesh_topology as topo
    from engines.rig_warp import head_depth

    lm = mona_avatar.landmarks.astype(np.float64)
    assert np.allclose(head_depth(lm, detail=1.0), lm[:, 2])
    smooth = head_depth(lm, detail=0.0)
    half = head_depth(lm)
    assert np.allclose(half, 0.5 * (smooth + lm[:, 2]))
    nose_bump = lm[1, 2] - smooth[1]  # the nose tip stands out of the smooth surface
    assert nose_bump < 0.0
    controls = mona_rig.controls
    oval_z = controls[list(topo.FACE_OVAL), 2]
    ring = controls[len(lm) : len(lm) + 20]
    assert ring[:, 2].min() >= oval_z.min() - 1e-6  # not in front of the face's edge


def test_neutral_motion_reproduces_the_portrait(ort_engine, mona_rig, mona_avatar) -> None:
    frame = render(ort_engine, mona_rig)
    diff = np.abs(frame.astype(int) - mona_avatar.image.astype(int))
    top, bottom, left, right = window_pixels(MOUTH_WINDOW, 512)
    outside_mouth = np.ones(diff.shape[:2], bool)
    outside_mouth[top:bottom, left:right] = False
    assert diff[outside_mouth].max() <= 1
    assert np.mean(diff[~outside_mouth]) < 1.0  # the lips may be closed a little at rest


def test_jaw_opens_the_mouth_monotonically(ort_engine, mona_rig, tracker) -> None:
    openings = [
        mouth_opening(tracker, render(ort_engine, mona_rig, jawOpen=j)) for j in (0, 0.3, 0.6, 0.9)
    ]
    assert openings[0] < 0.02
    assert all(b > a for a, b in itertools.pairwise(openings)), openings
    # FaceMesh places the inner lips on the teeth's edges, the lower teeth's too since the
    # interior has them (0.029 at 0.9; the warp before the depth-tested inversion read 0.053,
    # a fold at the lip corner that FaceMesh took for an open mouth; the interior's height in
    # pixels is the same within 2 px).
    assert openings[-1] > 0.02


def test_open_mouth_shows_a_dark_interior(ort_engine, mona_rig, tracker) -> None:
    frame = render(ort_engine, mona_rig, jawOpen=0.8)
    lm = tracker.landmarks(frame)
    inside = ((lm[13] + lm[14]) / 2 + lm[14]) / 2  # lower half of the gap: cavity and tongue
    x, y = np.round(inside).astype(int)
    lips = frame[
        int(lm[0][1]) - 1 : int(lm[0][1]) + 2, int(lm[0][0]) - 1 : int(lm[0][0]) + 2
    ].mean()
    assert frame[y - 1 : y + 2, x - 1 : x + 2].mean() < 0.6 * lips


def test_the_gum_and_the_wet_lip_edge_show_only_on_a_real_opening(ort_engine, mona_rig) -> None:
    # The same rig with the two bands blanked: frames must match exactly at rest and on a
    # sealed closure (mouthClose over an open jaw), and differ on an open mouth, where the
    # bands add the tongue's pink between the lips and the teeth.
    gum = SKULL_MOUTH_CHANNELS.index("gum")
    lip = JAW_MOUTH_CHANNELS.index("lip_inner")
    skull, jaw = mona_rig.skull_mouth_quads.copy(), mona_rig.jaw_mouth_quads.copy()
    skull[..., gum :: len(SKULL_MOUTH_CHANNELS)] = 0.0  # the channel in each of the 4 quads
    jaw[..., lip :: len(JAW_MOUTH_CHANNELS)] = 0.0
    blank = dataclasses.replace(mona_rig, skull_mouth_quads=skull, jaw_mouth_quads=jaw)
    for shut in ({}, {"jawOpen": 0.4, "mouthClose": 0.4}, {"jawOpen": 0.1}):
        expected = render(ort_engine, blank, **shut)
        assert np.array_equal(render(ort_engine, mona_rig, **shut), expected)
    with_bands = render(ort_engine, mona_rig, jawOpen=0.6).astype(int)
    without = render(ort_engine, blank, jawOpen=0.6).astype(int)
    changed = np.abs(with_bands - without).sum(-1) > 6
    assert 30 < changed.sum() < 0.01 * changed.size  # thin strips along the lips

    def redness(frame: np.ndarray) -> float:
        return float((frame[..., 0] - frame[..., 1])[changed].mean())

    assert redness(with_bands) > redness(without) + 5


def test_bilabial_shapes_keep_the_lips_closed(ort_engine, mona_rig, tracker) -> None:
    pressed = render(
        ort_engine, mona_rig, jawOpen=0.3, mouthClose=0.3, mouthPressLeft=1, mouthPressRight=1
    )
    assert mouth_opening(tracker, pressed) < 0.02


def test_a_smile_lifts_the_mouth_corners_visibly(ort_engine, mona_rig, tracker) -> None:
    # FaceMesh on rendered pixels: the outer corners rise by 2.1% of the face height with the
    # old smile (0.11 mouth widths up), 2.9% with today's (0.2).
    rest = tracker.landmarks(render(ort_engine, mona_rig))
    smile = tracker.landmarks(render(ort_engine, mona_rig, mouthSmileLeft=0.8, mouthSmileRight=0.8))
    assert rest is not None and smile is not None
    face_height = np.linalg.norm(rest[10] - rest[152])
    rise = [(rest[i][1] - smile[i][1]) / face_height for i in (61, 291)]
    assert min(rise) > 0.015 and np.mean(rise) > 0.025


def test_blink_closes_both_eyes(ort_engine, mona_rig, tracker) -> None:
    open_eyes = eye_opening(tracker, render(ort_engine, mona_rig))
    closed = eye_opening(tracker, render(ort_engine, mona_rig, eyeBlinkLeft=1, eyeBlinkRight=1))
    # FaceMesh's lid points never fully meet, even on shut eyes: ~45% of the open gap remains.
    assert closed < 0.7 * open_eyes


def test_blink_closes_both_eyes_with_the_head_pitched_down(ort_engine, mona_rig, tracker) -> None:
    """At headPitch +0.3 the eyes sit below the old eye window's lower edge (0.54 of the
    frame), where the lid was not drawn: the lower half of a shut eye showed open."""
    for roll in (0.0, 0.25):
        pose = {"headPitch": 0.3, "headRoll": roll}
        open_eyes = eye_opening(tracker, render(ort_engine, mona_rig, **pose))
        shut = render(ort_engine, mona_rig, eyeBlinkLeft=1, eyeBlinkRight=1, **pose)
        assert eye_opening(tracker, shut) < 0.7 * open_eyes


def test_gaze_moves_the_irises_between_the_lids(ort_engine, mona_rig, tracker) -> None:
    """gazeX slides both irises along the eye line (the subject's left, the image's right, for
    +), gazeY down; the lids stay where they are."""

    def irises(**motion: float) -> np.ndarray:
        lm = tracker.landmarks(render(ort_engine, mona_rig, **motion))
        assert lm is not None and len(lm) == 478
        return np.asarray(lm[[468, 473], :2], np.float64)

    ahead, right, left = irises(), irises(gazeX=0.8), irises(gazeX=-0.8)
    assert np.all(right[:, 0] > ahead[:, 0] + 1.0) and np.all(left[:, 0] < ahead[:, 0] - 1.0)
    frame = render(ort_engine, mona_rig, gazeX=0.8)
    still = render(ort_engine, mona_rig)
    lids = tracker.landmarks(frame)
    assert lids is not None
    ahead_lm = tracker.landmarks(still)
    assert ahead_lm is not None
    upper = [159, 386]
    assert np.abs(np.asarray(lids)[upper, 1] - np.asarray(ahead_lm)[upper, 1]).max() < 1.5


def test_a_downward_look_lowers_the_upper_lids(ort_engine, mona_rig, tracker) -> None:
    """The lids follow the eye down (composite.LID_FOLLOW): FaceMesh reads the eyes 9-11%
    narrower at gazeY 0.8 on the five portraits; looking up leaves the lids as they are."""
    ahead = eye_opening(tracker, render(ort_engine, mona_rig))
    down = eye_opening(tracker, render(ort_engine, mona_rig, gazeY=0.8))
    up = eye_opening(tracker, render(ort_engine, mona_rig, gazeY=-0.8))
    assert down < 0.95 * ahead
    assert up > 0.97 * ahead


def test_head_yaw_turns_the_face(ort_engine, mona_rig, tracker) -> None:
    noses = []
    for yaw in (-0.15, 0.0, 0.15):
        lm = tracker.landmarks(render(ort_engine, mona_rig, headYaw=yaw))
        noses.append(lm[1][0] - (lm[234][0] + lm[454][0]) / 2)  # nose relative to the cheeks
    assert noses[0] < noses[1] < noses[2]


def test_wide_head_turns_keep_the_face_whole(ort_engine, mona_rig, tracker) -> None:
    """Issue 14's head range: to +-0.45 yaw and +-0.3 pitch the face turns as a head (the
    nose keeps moving the commanded way) and does not tear (a tear or fold reads as an open
    mouth at jawOpen 0); the old warp shattered from |yaw| 0.3."""
    rest = mouth_opening(tracker, render(ort_engine, mona_rig))
    noses = []
    for yaw in (-0.45, -0.3, 0.0, 0.3, 0.45):
        lm = tracker.landmarks(render(ort_engine, mona_rig, headYaw=yaw))
        assert lm is not None, yaw
        noses.append(lm[1][0] - (lm[234][0] + lm[454][0]) / 2)
        assert (
            float(np.linalg.norm(lm[13] - lm[14]) / np.linalg.norm(lm[10] - lm[152])) < rest + 0.01
        )
    assert all(b > a for a, b in itertools.pairwise(noses)), noses
    for yaw, pitch in ((0.45, 0.3), (-0.45, -0.3), (-0.45, 0.3), (0.45, -0.3)):
        turned = render(ort_engine, mona_rig, headYaw=yaw, headPitch=pitch)
        assert mouth_opening(tracker, turned) < rest + 0.01, (yaw, pitch)


def test_eye_and_mouth_windows_contain_the_features(mona_avatar) -> None:
    lm = mona_avatar.landmarks / 512
    top, bottom, left, right = EYE_WINDOW
    eyes = lm[[33, 133, 159, 145, 362, 263, 386, 374]]
    assert (eyes[:, 1] > top).all() and (eyes[:, 1] < bottom).all()
    assert (eyes[:, 0] > left).all() and (eyes[:, 0] < right).all()
    top, bottom, left, right = MOUTH_WINDOW
    assert top < lm[0, 1] and lm[152, 1] + 0.08 < bottom


@pytest.fixture(scope="module")
def open_mouthed(ort_engine, mona_rig, tracker, tmp_path_factory):
    """An open-mouthed portrait (the bundled one rendered at jawOpen 1: dark interior, upper
    teeth), prepared and rigged as a user's upload would be: (its source opening, avatar, rig)."""
    opened = render(ort_engine, mona_rig, jawOpen=1.0)
    folder = tmp_path_factory.mktemp("open_mouth")
    path = folder / "open.png"
    Image.fromarray(opened).save(path)
    source_opening = mouth_opening(tracker, opened)
    avatar = prepare_avatar(path, cache_dir=folder / "cache")
    return source_opening, avatar, build_rig(avatar.image, avatar.landmarks)


def test_an_open_mouth_portrait_closes_at_rest(ort_engine, tracker, open_mouthed) -> None:
    # Animate an open-mouthed portrait from its own rig.
    source_opening, _, rig = open_mouthed
    assert source_opening > 0.02  # FaceMesh puts the inner lips on the teeth: see above
    rest = mouth_opening(tracker, render(ort_engine, rig))
    assert rest < 0.5 * source_opening
    assert mouth_opening(tracker, render(ort_engine, rig, jawOpen=1.0)) > rest + 0.015


def test_an_open_mouth_portraits_own_gap_stays_out_of_the_jaw_layer(open_mouthed) -> None:
    # The jaw layer starts at the lower inner lip: the portrait's own teeth and dark between
    # the lips are not dragged down (and stretched into a streak) as the jaw opens.
    _, avatar, rig = open_mouthed
    lm = avatar.landmarks
    jaw = rig.jaw_mouth_quads[..., 0].astype(np.float32)  # the jaw mask (own values first)

    def at(point: np.ndarray) -> float:
        x, y = np.rint(point).astype(int)
        return float(jaw[y, x])

    upper, lower = lm[13, :2], lm[14, :2]  # inner lips at the middle of the mouth
    assert np.linalg.norm(lower - upper) > 6.0  # a real gap, in pixels
    # The jaw mask rises over the gap's lower half (its soft edge reaches under the lower
    # lip's edge); before, it covered the whole gap (1.0 from the upper lip down).
    assert at(upper + 0.25 * (lower - upper)) < 0.15
    assert at(upper + 1.2 * (lower - upper)) > 0.9
    assert at(0.5 * (lm[17, :2] + lm[152, :2])) > 0.9  # the chin moves with the jaw


MOTIONS = [
    {},
    {"jawOpen": 0.8, "mouthFunnel": 0.4},
    {"mouthSmileLeft": 0.9, "mouthSmileRight": 0.6, "browInnerUp": 0.7},
    {"eyeBlinkLeft": 1.0, "eyeBlinkRight": 0.5, "gazeX": 0.5},
    {
        "headYaw": 0.12,
        "headPitch": -0.08,
        "headRoll": 0.05,
        "headTx": 0.05,
        "headScale": 0.04,
        "jawOpen": 0.4,
    },
    {"headYaw": -0.45, "headPitch": 0.3, "jawOpen": 0.3},  # folds: the depth test decides
    {
        "mouthPucker": 1.0,
        "mouthRollLower": 0.5,
        "mouthUpperUpLeft": 0.6,
        "mouthLowerDownRight": 0.7,
    },
]


def test_onnxruntime_matches_torch_reference(full_engine, mona_rig) -> None:
    from export.torch_engines import create_torch_engine

    reference = create_torch_engine("renderer")
    for motion in MOTIONS:
        inputs = {**mona_rig.inputs(), "motion": mf.from_dict(motion)[None]}
        a = full_engine.run(inputs)["frame"].astype(int)
        b = reference.run(inputs)["frame"].astype(int)
        assert np.abs(a - b).max() <= 2, motion


def test_the_cpu_path_matches_the_whole_frame_reference(ort_engine, mona_rig) -> None:
    """Split graph + OpenCV remap + the shared compositing formulas vs the torch module's
    whole frame (given the turn the frame renderer draws, engines/head_turn.py): remap rounds
    positions to 1/32 px, so a level or two on sharp edges, and a few more on a handful of
    pixels where the lid's lift (x64 px) amplifies it."""
    assert renderer_name("onnxruntime", "cpu") == "renderer_split"
    assert renderer_name("onnxruntime", "cuda") == renderer_name("tensorrt", "cpu") == "renderer"
    from export.torch_engines import create_torch_engine

    reference = create_torch_engine("renderer")
    split_torch = FrameRenderer(create_torch_engine("renderer_split"), mona_rig)
    cpu = FrameRenderer(ort_engine, mona_rig)
    for motion in [*MOTIONS, {"eyeBlinkLeft": 0.4, "jawOpen": 0.6, "mouthFunnel": 0.5}]:
        m = mf.from_dict(motion)[None]
        drawn = limit_motion(m, float(mona_rig.own_yaw[0]))  # what FrameRenderer draws
        want = reference.run({**mona_rig.inputs(), "motion": drawn})["frame"][0].astype(int)
        for got in (cpu.render(m)[0], split_torch.render(m)[0]):
            diff = np.abs(got.astype(int) - want)
            assert diff.max() <= 16, (motion, diff.max())
            assert (diff.max(2) > 3).sum() <= 20, motion
            assert np.percentile(diff, 99.9) <= 1, motion
            assert diff.mean() < 0.2, motion


def test_compositor_rejects_maps_of_another_size(mona_rig) -> None:
    with pytest.raises(ValueError, match="does not match"):
        Compositor(mona_rig).frames(
            np.zeros((1, 2, 256, 256), np.float32),
            np.zeros((1, 2, 10, 10), np.float32),
            np.zeros((1, mf.DIM), np.float32),
        )


@pytest.mark.parametrize("graph", ["full", "split"])
def test_a_batch_renders_like_single_frames(graph, full_engine, ort_engine, mona_rig) -> None:
    renderer = FrameRenderer(full_engine if graph == "full" else ort_engine, mona_rig)
    motions = np.stack([mf.from_dict(m) for m in MOTIONS[:3]])
    batch = renderer.render(motions)
    for i in range(3):
        np.testing.assert_array_equal(batch[i], renderer.render(motions[i : i + 1])[0])


def test_raised_brows_lift_the_lids_a_little_not_the_eye_open(mona_avatar) -> None:
    """The surprised style raises inner and outer brows together; the upper lids follow each
    brow shape by at most LID_FOLLOW_MAX of the eye's opening (before, the two together lifted
    the lid by about its whole opening and the warp drew the iris twice as tall)."""
    from engines import facemesh_topology as topo
    from engines.rig_basis import LID_FOLLOW_MAX, blendshape_basis, face_frame

    lm = np.asarray(mona_avatar.landmarks, np.float64)
    basis = blendshape_basis(lm, face_frame(lm))
    surprised = basis["browInnerUp"] + basis["browOuterUpLeft"] + basis["browOuterUpRight"]
    for upper, lower in (
        (topo.RIGHT_EYE_UPPER, topo.RIGHT_EYE_LOWER),
        (topo.LEFT_EYE_UPPER, topo.LEFT_EYE_LOWER),
    ):
        opening = float(np.max(lm[list(lower), 1]) - np.min(lm[list(upper), 1]))
        lift = -surprised[list(upper[1:-1]), 1]  # up is -y
        assert lift.max() <= 2 * LID_FOLLOW_MAX * opening + 0.5
        assert lift.max() > 0.0  # the lids still follow the brows
        brow_rise = -surprised[list(topo.RIGHT_BROW + topo.LEFT_BROW), 1].max()
        assert brow_rise > 5 * lift.max()
