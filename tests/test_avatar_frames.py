"""The push core (engines/avatar_frames.py): audio in at any pace, frames out in order with
exactly the audio they show; silence, segment ends and barge-in on one timeline."""

from __future__ import annotations

import numpy as np
import pytest

from contracts import motion_frame as mf
from contracts.paths import DEFAULT_SPEECH
from engines.audio_io import decode_audio
from engines.avatar_frames import AvatarFrame, AvatarFrames, as_int16
from engines.dsp_motion import DspMotionGenerator
from engines.mouth_close import MOUTH_FIELDS

RATE = 24_000
P = RATE // 25
JAW = mf.BLENDSHAPES.index("jawOpen")


class Recorder:
    """A renderer double that keeps the motion it was asked to draw (the frames' pixels
    are its index in the batch stream, so the test sees what was rendered in which order)."""

    def __init__(self) -> None:
        self.motions: list[np.ndarray] = []

    def __call__(self, motion: np.ndarray) -> np.ndarray:
        self.motions.extend(motion)
        return np.zeros((len(motion), 8, 8, 3), np.uint8)


def speech_24k(seconds: float) -> np.ndarray:
    audio16 = decode_audio(DEFAULT_SPEECH)[: int(seconds * 16_000)]
    t = np.arange(int(len(audio16) * 1.5)) / 1.5
    return as_int16(np.interp(t, np.arange(len(audio16)), audio16).astype(np.float32))


def core() -> tuple[AvatarFrames, Recorder]:
    rec = Recorder()
    return AvatarFrames(rec, DspMotionGenerator(seed=0), rate=RATE), rec


def test_frames_in_order_with_their_audio() -> None:
    frames_core, _ = core()
    speech = speech_24k(2.0)
    out: list[AvatarFrame] = []
    for start in range(0, len(speech), 2400):  # 100 ms pushes, as livekit's receiver sends
        out += frames_core.push_audio(speech[start : start + 2400])
    out += frames_core.end_segment()
    assert [f.index for f in out] == list(range(len(out)))
    spoken = [f for f in out if f.audio is not None]
    assert len(spoken) == len(speech) // P  # 2.0 s: exactly 50 frames, none lost or doubled
    joined = np.concatenate([f.audio for f in spoken])
    np.testing.assert_array_equal(joined, speech)  # each frame carries its own samples
    # the frames after the speech (the lookahead's silence) are idle
    assert all(f.audio is None for f in out[len(spoken) :])


def test_idle_and_speech_share_one_timeline() -> None:
    frames_core, _ = core()
    first = frames_core.idle()
    assert len(first) == 1 and first[0].index == 0 and first[0].audio is None
    for _ in range(4):
        assert len(frames_core.idle()) == 1
    speech = speech_24k(0.4)
    out = frames_core.push_audio(speech) + frames_core.end_segment()
    assert [f.index for f in out] == list(range(5, 5 + len(out)))
    spoken = [f for f in out if f.audio is not None]
    # speech starts on a frame, after the idle frames' lookahead of silence (<= 2 frames)
    assert 5 <= spoken[0].index <= 7
    assert all(f.audio is None for f in out if f.index < spoken[0].index)
    assert len(spoken) == 10
    np.testing.assert_array_equal(np.concatenate([f.audio for f in spoken]), speech)
    after = frames_core.idle()
    assert after[-1].index == out[-1].index + 1


def test_barge_in_shuts_the_mouth_and_drops_unshown_audio() -> None:
    frames_core, rec = core()
    speech = speech_24k(3.0)
    out = frames_core.push_audio(speech[: int(1.5 * RATE)])
    assert max(m[JAW] for m in rec.motions) > 0.2  # speaking
    shown = out[-1].index
    frames_core.clear_buffer()
    closing = [f for _ in range(6) for f in frames_core.idle()]
    assert closing[0].index == shown + 1
    assert all(f.audio is None for f in closing)  # the interrupted speech is not played
    jaws = [m[JAW] for m in rec.motions[-len(closing) :]]
    assert jaws[0] <= 0.15 * max(rec.motions[len(out) - 1][JAW], 1e-6) + 1e-6
    assert max(jaws[2:]) < 0.05  # shut from the third frame on, and it stays shut
    mouth = np.abs(np.stack(rec.motions[-3:])[:, MOUTH_FIELDS]).max()
    assert mouth < 0.1
    # new speech after the barge-in starts on the next frame and plays in full
    more = frames_core.push_audio(speech[int(1.5 * RATE) :]) + frames_core.end_segment()
    assert more[0].index == closing[-1].index + 1
    spoken = [f for f in more if f.audio is not None]
    assert spoken[0].index <= closing[-1].index + 3
    np.testing.assert_array_equal(
        np.concatenate([f.audio for f in spoken])[: len(speech) - int(1.5 * RATE)],
        speech[int(1.5 * RATE) :],
    )


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="multiple of 25"):
        AvatarFrames(Recorder(), DspMotionGenerator(), rate=11_111)
    with pytest.raises(ValueError, match="int16 or float"):
        as_int16(np.zeros(10, np.int32))
    frames_core, _ = core()
    assert frames_core.push_audio(np.zeros(0, np.int16)) == []
    assert frames_core.next_index == 0
