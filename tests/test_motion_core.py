"""The motion-frame contract, the session clock, the audio ring and the motion stream driver."""

from __future__ import annotations

import json

import numpy as np
import pytest

from contracts import clock
from contracts import motion_frame as mf
from engines.audio_ring import AudioRing
from engines.motion_buffer import MotionBuffer
from engines.motion_stream import MotionStream


def test_motion_frame_layout_uses_arkit_names_and_unique_fields() -> None:
    assert len(set(mf.FIELDS)) == mf.DIM
    for name in (
        "jawOpen",
        "mouthFunnel",
        "mouthPucker",
        "mouthSmileLeft",
        "eyeBlinkLeft",
        "browInnerUp",
    ):
        assert name in mf.BLENDSHAPES
    assert mf.FIELDS[mf.HEAD_SLICE] == (
        "headYaw",
        "headPitch",
        "headRoll",
        "headTx",
        "headTy",
        "headScale",
    )
    assert mf.FIELDS[mf.GAZE_SLICE] == ("gazeX", "gazeY")


def test_motion_frame_json_round_trip() -> None:
    frame = mf.from_dict({"jawOpen": 0.5, "headYaw": -0.1, "gazeX": 0.25})
    index, back = mf.from_json(mf.to_json(frame, 42))
    assert index == 42
    np.testing.assert_allclose(back, frame, atol=1e-5)
    payload = json.loads(mf.to_json(frame, 7))
    assert payload["motion"]["jawOpen"] == 0.5 and payload["frame"] == 7


def test_motion_frame_rejects_unknown_names_and_clips_limits() -> None:
    with pytest.raises(KeyError):
        mf.from_dict({"jawOpenWide": 1.0})
    clipped = mf.clip(mf.from_dict({"jawOpen": 3.0, "headYaw": 2.0, "gazeY": -5.0}))
    assert clipped[mf.INDEX["jawOpen"]] == 1.0
    assert clipped[mf.INDEX["headYaw"]] == pytest.approx(0.6)
    assert clipped[mf.INDEX["gazeY"]] == -1.0


def test_session_clock_maps_frames_to_samples() -> None:
    assert clock.SAMPLES_PER_FRAME == 640
    assert clock.frame_start(3) == 1920
    assert clock.frame_of_sample(1919) == 2 and clock.frame_of_sample(1920) == 3
    assert clock.ms_to_samples(40) == 640


def test_audio_ring_reads_absolute_spans_and_refuses_stale_or_future_audio() -> None:
    ring = AudioRing(capacity_seconds=0.1)  # 1600 samples
    data = np.arange(4000, dtype=np.float32)
    for start in range(0, 4000, 300):
        ring.write(data[start : start + 300])
    assert ring.end == 4000
    np.testing.assert_array_equal(ring.read(3000, 4000), data[3000:4000])
    with pytest.raises(ValueError):
        ring.read(1000, 1100)  # overwritten
    with pytest.raises(ValueError):
        ring.read(3900, 4100)  # not yet received
    fresh = AudioRing(0.1)
    fresh.write(np.ones(10, np.float32))
    np.testing.assert_array_equal(fresh.read(-5, 5), [0] * 5 + [1] * 5)  # silence before start


def test_motion_buffer_is_bounded_and_ordered() -> None:
    buf = MotionBuffer(capacity=4)
    np.testing.assert_array_equal(buf.last(2), np.zeros((2, mf.DIM)))  # rest pose when empty
    for k in range(10):
        buf.append(k, np.full(mf.DIM, k, np.float32))
    assert len(buf) == 4 and buf.next_index == 10
    assert buf.last(6)[:, 0].tolist() == [6, 6, 6, 7, 8, 9]
    with pytest.raises(ValueError):
        buf.append(12, np.zeros(mf.DIM, np.float32))


class _EnergyGenerator:
    """A toy generator: jawOpen = mean |audio| of the window, eased from the last frame."""

    past_samples = 320
    lookahead_samples = 960
    history_frames = 2

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []

    def generate(self, audio, history, first_frame, n_frames):
        assert len(audio) == self.past_samples + n_frames * 640 + self.lookahead_samples
        self.calls.append((first_frame, n_frames, len(audio)))
        out = np.zeros((n_frames, mf.DIM), np.float32)
        previous = history[-1, 0]
        for i in range(n_frames):
            start = self.past_samples + i * 640
            level = float(np.abs(audio[start : start + 640 + self.lookahead_samples]).mean())
            previous = 0.5 * previous + 0.5 * level
            out[i, 0] = previous
        return out

    def reset(self) -> None:
        pass


@pytest.mark.parametrize("chunk", [160, 320, 999, 16000, 200_000])
def test_motion_stream_output_does_not_depend_on_chunking(chunk: int) -> None:
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(48_000) * np.linspace(0, 1, 48_000)).astype(np.float32)
    reference = MotionStream(_EnergyGenerator(), hop_frames=1)
    expected = reference.push(audio) + reference.flush()
    stream = MotionStream(_EnergyGenerator(), hop_frames=2)
    got = []
    for start in range(0, len(audio), chunk):
        got += stream.push(audio[start : start + chunk])
    got += stream.flush()
    assert [k for k, _ in got] == list(range(75))  # 3 s at 25 fps, every frame once, in order
    np.testing.assert_allclose(
        np.stack([f for _, f in got]), np.stack([f for _, f in expected]), atol=1e-6
    )


def test_motion_stream_waits_for_lookahead_and_hops_at_most_two_frames() -> None:
    gen = _EnergyGenerator()
    stream = MotionStream(gen, hop_frames=2)
    assert stream.push(np.zeros(640 + 959, np.float32)) == []  # frame 0 needs 640 + 960 samples
    assert [k for k, _ in stream.push(np.zeros(1, np.float32))] == [0]
    stream.push(np.zeros(640 * 10, np.float32))
    assert max(n for _, n, _ in gen.calls) <= 2


def test_heads_are_kept_inside_the_renderers_clean_range() -> None:
    for name, limit in mf.CLEAN_HEAD_RANGE.items():
        values = np.linspace(-3 * limit, 3 * limit, 601, dtype=np.float32)
        frames = np.zeros((len(values), mf.DIM), np.float32)
        frames[:, mf.INDEX[name]] = values
        kept = mf.keep_head_in_range(frames)[:, mf.INDEX[name]]
        inside = np.abs(values) <= 0.7 * limit
        np.testing.assert_array_equal(kept[inside], values[inside])  # small turns untouched
        assert np.abs(kept).max() <= limit + 1e-6
        steps = np.diff(kept)
        assert (steps >= 0).all()  # still monotonic: a turn further stays further
        assert np.abs(np.diff(steps)).max() < 0.05 * np.abs(steps).max()  # no kink
    other = mf.neutral(1)
    other[0, mf.INDEX["jawOpen"]] = 0.9
    np.testing.assert_array_equal(mf.keep_head_in_range(other), other)
