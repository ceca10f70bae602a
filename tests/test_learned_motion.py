"""The shipped learned motion graphs: streaming with the feature cache gives the frames the
uncached reference gives, for live 20 ms chunks and for whole hops; the jaw the model
remembers is compressed above the knee, and a held sung note does not ratchet it open."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from contracts import motion_frame as mf
from contracts.clock import SAMPLES_PER_FRAME
from contracts.paths import DEFAULT_SPEECH
from engines.audio_io import decode_audio
from engines.learned_motion import (
    DEFAULT_TURN_TEMPERATURE,
    HISTORY_JAW_KNEE,
    LearnedMotionGenerator,
)
from engines.motion_stream import MotionStream

SPEECH = DEFAULT_SPEECH
JAW = mf.INDEX["jawOpen"]


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


class Recording:
    """An engine that records the inputs it is given and runs the real one."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.inputs = engine, []  # type: ignore[var-annotated]
        self.output_names = engine.output_names

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.inputs.append({k: v.copy() for k, v in feeds.items()})
        return dict(self.engine.run(feeds))


def first_encoder_inputs(
    generator: LearnedMotionGenerator, history: np.ndarray, first_frame: int
) -> dict[str, np.ndarray]:
    """What the encoder is given for one hop of silence after ``history``."""
    recording = Recording(generator.encoder)
    generator.encoder = recording
    samples = generator.past_samples + 2 * SAMPLES_PER_FRAME + generator.lookahead_samples
    generator.generate(np.zeros(samples, np.float32), history, first_frame, n_frames=2)
    return recording.inputs[0]


def neutral_history(generator: LearnedMotionGenerator) -> np.ndarray:
    return np.tile(mf.neutral(), (generator.history_frames, 1)).astype(np.float32)


@pytest.mark.parametrize("knee", [HISTORY_JAW_KNEE, None])
def test_the_model_reads_its_jaw_compressed_above_the_knee(knee: float | None) -> None:
    generator = LearnedMotionGenerator("student", 2, seed=0, history_jaw_knee=knee)
    history = neutral_history(generator)
    history[:, JAW] = [0.0, 0.3, 0.5, 0.6, 0.8, 1.0]
    history[:, mf.INDEX["mouthFunnel"]] = 0.7  # not the jaw: read as it is
    seen = first_encoder_inputs(generator, history, first_frame=20)["history"][0]
    expected = history.copy()
    if knee is not None:
        expected[:, JAW] = [0.0, 0.3, 0.5, 0.55, 0.65, 0.75]
    np.testing.assert_allclose(seen, expected, atol=1e-6)


def sung_vowel(seconds: float, f0: float = 196.0, rms: float = 0.05) -> np.ndarray:
    """An open vowel ("ah": formants 730, 1090, 2440 Hz) sung on one note with vibrato."""
    t = np.arange(int(seconds * 16_000)) / 16_000
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.01 * np.sin(2 * np.pi * 5.5 * t))) / 16_000
    voice = np.zeros_like(t)
    for h in range(1, 30):
        formants = ((730, 120), (1090, 150), (2440, 200))
        gain = sum(np.exp(-((((h * f0) - f) / b) ** 2)) for f, b in formants) + 0.02
        voice += gain * np.sin(h * phase) / np.sqrt(h)
    voice *= rms / np.sqrt((voice**2).mean())
    fade = np.minimum(1.0, np.minimum(t / 0.05, (seconds - t) / 0.05))
    return (voice * fade).astype(np.float32)


def test_a_held_sung_vowel_holds_the_jaw_open_without_running_away() -> None:
    """On a 3 s held note the jaw opens and stays open; fed back its own wide-open frames
    unread, the student ratcheted it toward 1.0 (module docstring)."""
    silence = np.zeros(8000, np.float32)
    audio = np.concatenate([silence, sung_vowel(3.0), silence])
    held = {}
    for knee in (HISTORY_JAW_KNEE, None):
        frames = stream(
            LearnedMotionGenerator("student", 2, seed=0, history_jaw_knee=knee), audio, 320
        )
        held[knee] = frames[25 + 15 : 25 + 75, JAW]  # the note, its first 0.6 s left out
    assert held[HISTORY_JAW_KNEE].mean() > 0.25 and held[HISTORY_JAW_KNEE].max() < 0.88
    assert held[None].max() > held[HISTORY_JAW_KNEE].max() + 0.05  # the knee is what holds it


def test_the_head_turns_and_tilts_at_its_own_temperature() -> None:
    """Yaw and roll are sampled at ``turn_temperature``, the rest of the head at
    ``head_temperature`` (the encoder's noise input, the same seed)."""
    noises = {}
    for turn in (DEFAULT_TURN_TEMPERATURE, 0.8):
        generator = LearnedMotionGenerator("student", 2, seed=3, turn_temperature=turn)
        history = neutral_history(generator)
        noises[turn] = first_encoder_inputs(generator, history, first_frame=0)["noise"][0]
    ratio = noises[DEFAULT_TURN_TEMPERATURE] / noises[0.8]
    for name in ("headYaw", "headRoll"):
        np.testing.assert_allclose(ratio[:, mf.INDEX[name]], DEFAULT_TURN_TEMPERATURE / 0.8)
    for name in ("headPitch", "jawOpen", "eyeBlinkLeft"):
        np.testing.assert_allclose(ratio[:, mf.INDEX[name]], 1.0)
