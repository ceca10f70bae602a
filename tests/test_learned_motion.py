"""The shipped learned motion graphs: streaming with the feature cache gives the frames the
uncached reference gives, for live 20 ms chunks and for whole hops."""

from __future__ import annotations

import numpy as np
import pytest

from contracts.paths import DEFAULT_SPEECH
from engines.audio_io import decode_audio
from engines.learned_motion import LearnedMotionGenerator
from engines.motion_stream import MotionStream

SPEECH = DEFAULT_SPEECH


def stream(generator: LearnedMotionGenerator, audio: np.ndarray, chunk: int) -> np.ndarray:
    motion = MotionStream(generator)
    frames = [f for i in range(0, len(audio), chunk) for _, f in motion.push(audio[i : i + chunk])]
    return np.stack(frames + [f for _, f in motion.flush()])


@pytest.mark.parametrize("chunk", [320, 1280])
def test_feature_cache_matches_the_uncached_reference(chunk: int) -> None:
    audio = decode_audio(SPEECH)[: 16_000 * 3]
    cached = LearnedMotionGenerator("student", 2, seed=1)
    reference = LearnedMotionGenerator("student", 2, seed=1)
    reference.cache_features = False
    a, b = stream(cached, audio, chunk), stream(reference, audio, chunk)
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert np.ptp(a[:, 0]) > 0.1  # the jaw moves: the comparison is not of idle frames
