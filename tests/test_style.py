"""Speaking styles (contracts/style.py): parsing, the model's input, and what they do to
motion frames; the dsp generator speaks in them."""

from __future__ import annotations

import time

import numpy as np
import pytest

from contracts import motion_frame
from contracts.style import (
    NEUTRAL,
    STYLE_DIM,
    STYLES,
    Style,
    articulation,
    express,
    head_energy,
)
from engines.dsp_motion import DspMotionGenerator
from engines.motion_stream import MotionStream

IDX = motion_frame.INDEX


def test_parse_names_and_intensities() -> None:
    assert Style.parse("happy") == Style("happy", 1.0)
    assert Style.parse(" sad:0.25 ") == Style("sad", 0.25)
    assert str(Style("angry", 0.5)) == "angry:0.5"
    assert str(NEUTRAL) == "neutral"
    for bad in ("joyful", "happy:2", "happy:-0.1", "happy:lots", ""):
        with pytest.raises(ValueError):
            Style.parse(bad)


def test_vector_is_one_weight_per_non_neutral_style() -> None:
    assert NEUTRAL.vector().tolist() == [0.0] * STYLE_DIM
    assert Style("neutral", 0.3).vector().tolist() == [0.0] * STYLE_DIM
    for k, name in enumerate(STYLES[1:]):
        v = Style(name, 0.7).vector()
        assert v.shape == (STYLE_DIM,) and v[k] == pytest.approx(0.7) and v.sum() == v[k]


def _speech(n: int = 50) -> np.ndarray:
    frames = motion_frame.neutral(n)
    t = np.arange(n)
    frames[:, IDX["jawOpen"]] = 0.3 + 0.25 * np.sin(t / 3)
    frames[:, IDX["headYaw"]] = 0.1 * np.sin(t / 7)
    frames[10:13, IDX["jawOpen"]] = 0.08  # a p/b/m: sealed
    frames[10:13, IDX["mouthClose"]] = 0.08
    frames[20:24, IDX["mouthPucker"]] = 0.7  # an "oo"
    return frames


def test_neutral_changes_nothing() -> None:
    frames = _speech()
    np.testing.assert_array_equal(express(frames, NEUTRAL), frames)
    np.testing.assert_array_equal(express(frames, Style("happy", 0.0)), frames)


@pytest.mark.parametrize("name", STYLES[1:])
def test_styles_keep_closures_sealed_and_stay_in_limits(name: str) -> None:
    frames = _speech()
    out = express(frames, Style(name, 1.0))
    np.testing.assert_array_equal(out, motion_frame.clip(out))
    sealed = out[10:13, IDX["jawOpen"]] - out[10:13, IDX["mouthClose"]]
    assert np.abs(sealed).max() < 1e-6  # mouthClose still cancels the jaw
    yaw = out[:, IDX["headYaw"]]
    assert yaw.std() == pytest.approx(frames[:, IDX["headYaw"]].std() * head_energy(Style(name)))
    jaw = out[30:, IDX["jawOpen"]] - (0.08 if name == "surprised" else 0.0)
    assert jaw == pytest.approx(frames[30:, IDX["jawOpen"]] * articulation(Style(name)), abs=1e-5)


def test_each_style_reads_in_its_features() -> None:
    frames = motion_frame.neutral(5)
    happy, sad = express(frames, Style("happy")), express(frames, Style("sad"))
    angry, surprised = express(frames, Style("angry")), express(frames, Style("surprised"))
    assert happy[0, IDX["mouthSmileLeft"]] > 0.3 and happy[0, IDX["eyeSquintLeft"]] > 0.2
    assert sad[0, IDX["browInnerUp"]] > 0.4 and sad[0, IDX["headPitch"]] > 0.05
    assert angry[0, IDX["browDownLeft"]] > 0.5
    assert surprised[0, IDX["eyeWideLeft"]] > 0.4 and surprised[0, IDX["browOuterUpLeft"]] > 0.5
    half = express(frames, Style("happy", 0.5))
    assert half[0, IDX["mouthSmileLeft"]] == pytest.approx(0.5 * happy[0, IDX["mouthSmileLeft"]])


def test_the_smile_gives_way_to_rounded_lips() -> None:
    out = express(_speech(), Style("happy"))
    assert out[21, IDX["mouthSmileLeft"]] < 0.5 * out[40, IDX["mouthSmileLeft"]]


def _run(style: Style | None, audio: np.ndarray, switch_at: int | None = None) -> np.ndarray:
    generator = DspMotionGenerator(seed=1)
    stream = MotionStream(generator)
    frames: list[np.ndarray] = []
    for start in range(0, len(audio), 320):
        if style is not None and (switch_at is None or start >= switch_at * 640):
            generator.set_style(style)
        frames.extend(f for _, f in stream.push(audio[start : start + 320]))
    return np.stack(frames)


def test_dsp_speaks_in_the_style_and_glides_into_it() -> None:
    t = np.arange(16_000 * 3) / 16_000
    audio = (0.3 * np.sin(2 * np.pi * 140 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    plain = _run(None, audio)
    angry = _run(Style("angry"), audio)
    assert angry[-10:, IDX["browDownLeft"]].mean() > plain[-10:, IDX["browDownLeft"]].mean() + 0.4
    switched = _run(Style("angry"), audio, switch_at=40)
    brow = switched[:, IDX["browDownLeft"]]
    assert brow[:38].max() < 0.05  # neutral before the switch
    steps = np.diff(brow[38:])
    assert steps.max() < 0.35  # eased in, not a jump
    assert brow[-5:].mean() > 0.5


def test_a_session_hands_its_style_to_the_generator_between_hops() -> None:
    from stream_server.metrics import Metrics
    from stream_server.session import Session

    generator = DspMotionGenerator()
    face = np.zeros((512, 512, 3), np.uint8)
    session = Session("s", "a", lambda motion: face, generator, Metrics(), style=Style("sad"))
    assert generator.style == Style("sad")  # from the first frame
    session.set_style(Style("angry", 0.5))
    assert session.style == Style("angry", 0.5)
    assert generator.style == Style("sad")  # not under the worker's feet
    session.start()
    try:
        deadline = time.monotonic() + 5.0
        while generator.style != Style("angry", 0.5):
            assert time.monotonic() < deadline, "the worker never applied the style"
            time.sleep(0.02)
    finally:
        session.stop()
        session.join()
