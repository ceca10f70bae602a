"""emote eval's noise rows: white noise, steady and beating at a syllable's rate."""

from __future__ import annotations

import numpy as np
import pytest

from contracts import motion_frame
from contracts.clock import SAMPLE_RATE
from engines.motion_generators import make_generator
from training.evaluate import ROWS, run_generator
from training.evaluate_noise import NOISES, SECONDS, noise_clip, noise_metrics


def _level_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2))))


def test_the_noise_has_its_level_and_beats_at_its_rate() -> None:
    steady = noise_clip(-45.0, 0.0, 0.0)
    assert len(steady) == round(SECONDS * SAMPLE_RATE) and steady.dtype == np.float32
    assert _level_db(steady) == pytest.approx(-45.0, abs=0.01)
    beating = noise_clip(-30.0, 4.0, 20.0)
    assert _level_db(beating) == pytest.approx(-30.0, abs=0.01)
    pieces = beating[: len(beating) // 400 * 400].reshape(-1, 400)  # 25 ms
    levels = np.array([_level_db(p) for p in pieces])
    assert np.ptp(levels) > 15.0  # ~20 dB deep (less the noise of 25 ms estimates)
    spectrum = np.abs(np.fft.rfft(levels - levels.mean()))
    rate = np.fft.rfftfreq(len(levels), 0.025)[spectrum.argmax()]
    assert rate == pytest.approx(4.0, abs=0.3)
    steady_levels = np.array([_level_db(p) for p in steady[: len(pieces) * 400].reshape(-1, 400)])
    assert np.ptp(steady_levels) < 3.0
    np.testing.assert_array_equal(noise_clip(-30.0, 4.0, 20.0), beating)  # seeded


def test_noise_metrics_read_the_largest_jaw_over_seeds() -> None:
    jaw = motion_frame.INDEX["jawOpen"]

    def follows_the_envelope(audio: np.ndarray, seed: int) -> np.ndarray:
        # a "model" whose jaw follows the level: opens in the beating noise, on seed 1 most
        frames = np.zeros((100, motion_frame.DIM), np.float32)
        loud = np.sqrt(np.mean(audio.astype(np.float64) ** 2))
        frames[10, jaw] = min(1.0, 10 * loud) * (1.0 if seed == 1 else 0.5)
        return frames

    out = noise_metrics(follows_the_envelope, seeds=3)
    assert set(out) == {f"{name}_jaw_max" for name, *_ in NOISES}
    assert out["beating_jaw_max"] == pytest.approx(min(1.0, 10 * 10 ** (-30 / 20)), rel=1e-3)
    assert out["steady_jaw_max"] < out["beating_jaw_max"]
    assert noise_metrics(follows_the_envelope, seeds=1)["beating_jaw_max"] < out["beating_jaw_max"]
    keys = {key for section, key, *_ in ROWS if section == "noise"}
    assert keys == set(out)


def test_dsp_keeps_the_mouth_shut_in_noise() -> None:
    out = noise_metrics(lambda audio, seed: run_generator(make_generator("dsp", seed), audio), 2)
    assert out["steady_jaw_max"] < 0.05
    assert out["beating_jaw_max"] < 0.05
