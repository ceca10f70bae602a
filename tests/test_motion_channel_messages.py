"""The motion data channel's messages (contracts/motion_channel.py): what the server sends
for a frame, and what a client may send to drive the face."""

from __future__ import annotations

import json

import numpy as np
import pytest

from contracts import motion_frame as mf
from contracts.motion_channel import (
    ALWAYS_ZERO,
    ARKIT_52,
    MAX_MESSAGE,
    MotionMessageError,
    arkit_values,
    frame_message,
    parse_message,
)


def test_frame_message_names_the_frame_and_all_52_arkit_shapes() -> None:
    frame = mf.from_dict({"jawOpen": 0.6, "eyeBlinkLeft": 1.0, "headYaw": -0.2, "gazeX": 0.5})
    msg = json.loads(frame_message(37, frame))
    assert (msg["type"], msg["frame"], msg["rtp_timestamp"]) == ("motion", 37, 37 * 3600)
    assert msg["t"] == pytest.approx(37 / 25)
    assert len(ARKIT_52) == 52 and sorted(msg["arkit"]) == sorted(ARKIT_52)
    assert msg["arkit"]["jawOpen"] == pytest.approx(0.6)
    assert msg["arkit"]["eyeBlinkLeft"] == 1.0
    assert msg["head"]["yaw"] == pytest.approx(-0.2)
    assert msg["gaze"] == {"x": 0.5, "y": 0.0}
    assert all(msg["arkit"][name] == 0.0 for name in ALWAYS_ZERO)


def test_gaze_becomes_eye_look() -> None:
    right = arkit_values(mf.from_dict({"gazeX": 0.4, "gazeY": -0.3}))
    assert right["eyeLookOutLeft"] == right["eyeLookInRight"] == pytest.approx(0.4)
    assert right["eyeLookInLeft"] == right["eyeLookOutRight"] == 0.0
    assert right["eyeLookUpLeft"] == right["eyeLookUpRight"] == pytest.approx(0.3)
    assert right["eyeLookDownLeft"] == 0.0


def test_puppet_sets_only_the_fields_given() -> None:
    puppet = parse_message('{"type": "motion", "motion": {"jawOpen": 0.8, "headYaw": 0.2}}')
    assert puppet.hold_s == pytest.approx(0.5)
    generated = mf.from_dict({"jawOpen": 0.1, "eyeBlinkLeft": 0.7, "headYaw": -0.1})
    out = puppet.apply(np.stack([generated, generated]))
    assert out.shape == (2, mf.DIM)
    assert out[0, mf.INDEX["jawOpen"]] == pytest.approx(0.8)
    assert out[0, mf.INDEX["headYaw"]] == pytest.approx(0.2)
    assert out[0, mf.INDEX["eyeBlinkLeft"]] == pytest.approx(0.7)  # the generator's
    assert parse_message('{"type":"motion","motion":{"jawOpen":0},"hold_ms":2000}').hold_s == 2.0


@pytest.mark.parametrize(
    ("message", "says"),
    [
        (b"\x00\x01", "binary"),
        ("x" * (MAX_MESSAGE + 1), "longer than"),
        ("{nope", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"type": "hello"}', "unknown message type"),
        ('{"type": "motion", "motion": {}, "extra": 1}', "unknown keys: extra"),
        ('{"type": "motion", "motion": {"jawOpen": 2}}', "jawOpen = 2 is outside"),
        ('{"type": "motion", "motion": {"nose": 1}}', "unknown motion field 'nose'"),
        ('{"type": "motion", "motion": {"jawOpen": "wide"}}', "must be a number"),
        ('{"type": "motion", "motion": {"jawOpen": NaN}}', "outside"),
        ('{"type": "motion", "motion": [1]}', "must be an object"),
        ('{"type": "motion", "motion": {"cheekPuff": 1}}', "sets no field"),
        ('{"type": "motion", "motion": {"jawOpen": 1}, "hold_ms": 0}', "hold_ms must be"),
        ('{"type": "motion", "motion": {"jawOpen": 1}, "hold_ms": 1e9}', "hold_ms must be"),
    ],
)
def test_bad_messages_are_refused_with_a_reason(message: str | bytes, says: str) -> None:
    with pytest.raises(MotionMessageError, match=says):
        parse_message(message)
