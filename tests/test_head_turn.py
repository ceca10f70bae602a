"""The portrait's own yaw and the limit on the total turn (engines/head_turn.py)."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from contracts import motion_frame as mf
from engines import head_turn
from engines.avatar import Avatar, prepare_avatar_bytes
from engines.frame_renderer import FrameRenderer
from engines.renderer_models import create_renderer
from engines.rig import Rig
from measure.sweep_pose import rotation


def _frontal_landmarks() -> np.ndarray:
    """478 points with every symmetric pair of head_turn's at mirrored x, same depth."""
    rng = np.random.default_rng(0)
    lm = rng.normal(0.0, 1.0, (478, 3))
    for k, (right, left) in enumerate(head_turn._PAIRS):
        x, y, z = 20.0 + 7.0 * k, rng.normal(0, 30), rng.normal(0, 10)
        lm[right], lm[left] = (-x, y, z), (x, y, z)
    return lm


@pytest.mark.parametrize("yaw", [-0.6, -0.3, 0.0, 0.2, 0.5])
def test_own_yaw_recovers_a_turned_face(yaw: float) -> None:
    turned = _frontal_landmarks() @ rotation(yaw, 0.0, 0.0).T
    assert head_turn.own_yaw(turned) == pytest.approx(yaw, abs=1e-6)


def test_a_frontal_portrait_is_drawn_as_commanded() -> None:
    yaw = np.linspace(-0.6, 0.6, 121)  # the motion frame's whole range
    np.testing.assert_allclose(head_turn.limit_total_yaw(yaw, 0.0), yaw, atol=1e-6)
    inside = np.abs(yaw) <= 0.55
    np.testing.assert_allclose(head_turn.limit_total_yaw(yaw[inside], 0.05), yaw[inside], atol=1e-6)


@pytest.mark.parametrize("own", [-1.1, -0.58, -0.31, 0.2, 0.7])
def test_the_total_turn_bends_smoothly_and_stays_in_the_limit(own: float) -> None:
    yaw = np.linspace(-0.6, 0.6, 1201)
    drawn = head_turn.limit_total_yaw(yaw, own)
    total = own + drawn
    start = max(head_turn._KNEE, abs(own))
    assert np.all(np.abs(total) <= max(head_turn.TOTAL_YAW_LIMIT, abs(own)) + 1e-6)
    assert np.all(np.diff(drawn) >= -1e-7)  # monotonic: more commanded is never less drawn
    steps = np.abs(np.diff(drawn))
    assert steps.max() <= (yaw[1] - yaw[0]) * 1.0001  # continuous, slope <= 1
    untouched = np.abs(own + yaw) <= start
    np.testing.assert_allclose(drawn[untouched], yaw[untouched], atol=1e-6)
    # Turning back toward the camera is never limited.
    back = np.sign(yaw) != np.sign(own)
    np.testing.assert_allclose(drawn[back], yaw[back], atol=1e-6)


@pytest.mark.parametrize("own", [-0.9, -0.57, -0.41, 0.45, 0.7])
def test_the_revealed_side_bends_smoothly_and_stays_in_the_limit(own: float) -> None:
    yaw = np.linspace(-0.6, 0.6, 1201)
    drawn = head_turn.limit_reveal(yaw, own)
    toward = -np.sign(own)
    back, drawn_back = yaw * toward, drawn * toward
    assert np.all(np.diff(drawn) >= -1e-7)  # monotonic
    assert np.abs(np.diff(drawn)).max() <= (yaw[1] - yaw[0]) * 1.0001  # continuous, slope <= 1
    # Away from the camera, and back up to the knee: as commanded.
    plain = back <= head_turn.REVEAL_KNEE
    np.testing.assert_allclose(drawn[plain], yaw[plain], atol=1e-6)
    # Turned back, it never reveals more than the limit, and stays on its own side.
    assert drawn_back.max() <= head_turn.REVEAL_LIMIT + 1e-6 < abs(own)
    at = np.argmin(np.abs(back - 0.45))  # the sweep's turn back: bent, not stopped
    assert head_turn.REVEAL_KNEE < drawn_back[at] < head_turn.REVEAL_LIMIT


@pytest.mark.parametrize("own", [0.0, 0.1, -0.25, 0.31, -0.34])
def test_a_portrait_turned_less_than_the_limit_turns_back_as_commanded(own: float) -> None:
    yaw = np.linspace(-0.6, 0.6, 121)
    np.testing.assert_array_equal(head_turn.limit_reveal(yaw, own), yaw.astype(np.float32))


def test_both_limits_apply_to_motion_frames() -> None:
    own = -0.57  # the Vermeer
    motion = np.stack([mf.neutral()] * 3)
    motion[:, mf.INDEX["headYaw"]] = (-0.5, 0.1, 0.5)  # away, a little back, far back
    out = head_turn.limit_motion(motion, own)
    yaw = out[:, mf.INDEX["headYaw"]]
    assert own + yaw[0] > -head_turn.TOTAL_YAW_LIMIT and yaw[0] > -0.5  # away: total limited
    assert yaw[1] == pytest.approx(0.1)
    assert head_turn.REVEAL_KNEE < yaw[2] < head_turn.REVEAL_LIMIT  # back: reveal limited
    inside = motion.copy()
    inside[:, mf.INDEX["headYaw"]] = (0.0, 0.02, 0.15)
    assert head_turn.limit_motion(inside, own) is inside  # nothing to limit: the same array


def test_the_renderer_draws_the_limited_turn(mona_rig: Rig) -> None:
    own = float(mona_rig.own_yaw[0])
    assert -0.45 < own < -0.15  # the Mona Lisa looks a little to the viewer's left
    engine = create_renderer("onnxruntime", "cpu", 1)
    renderer = FrameRenderer(engine, mona_rig)
    unlimited = FrameRenderer(engine, replace(mona_rig, own_yaw=np.zeros(1, np.float32)))
    far = mf.neutral()
    far[mf.INDEX["headYaw"]] = -0.6  # on top of her own turn
    limited = head_turn.limit_motion(far[None], own)[0]
    assert limited[mf.INDEX["headYaw"]] > -0.55
    np.testing.assert_array_equal(renderer.render(far[None]), unlimited.render(limited[None]))
    # Away from the limit the frame is exactly the commanded one.
    near = mf.neutral()
    near[mf.INDEX["headYaw"]] = 0.3
    np.testing.assert_array_equal(head_turn.limit_motion(near[None], own), near[None])


@pytest.mark.slow
def test_a_mirrored_portrait_faces_the_other_way(mona_avatar: Avatar, tmp_path: Path) -> None:
    """FaceMesh on the mirrored image: the own yaw changes sign (within FaceMesh's noise)."""
    buf = io.BytesIO()
    Image.fromarray(mona_avatar.image[:, ::-1].copy()).save(buf, format="PNG")
    mirrored = prepare_avatar_bytes(buf.getvalue(), cache_dir=tmp_path)
    own = head_turn.own_yaw(mona_avatar.landmarks)
    assert head_turn.own_yaw(mirrored.landmarks) == pytest.approx(-own, abs=0.05)
