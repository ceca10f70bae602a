"""Does the mouth stay shut in noise that is not speech? (``emote eval``, motion only)

Four seconds of white noise alone, steady and beating: its level (in dB) follows a sine at
a syllable's rate, the envelope of speech without its spectrum (a fan's flutter, typing,
breathing). A talker's mouth does not move to either. The learned model, the shipped graphs
included, opened its jaw to 0.44 in the beating noise below, where dsp stays at 0
(docs/benchmarks.md, "Mouth guidance on the inner-pause corpus"). Each row is the largest
jawOpen over the clip and the sampling seeds: one open mouth in a quiet room is what a
viewer notices.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from contracts import motion_frame
from contracts.clock import SAMPLE_RATE

SECONDS = 4.0
# (name, level dBFS, beat rate Hz, beat depth dB): speech in the real clips is at -22..-26 dBFS
NOISES: tuple[tuple[str, float, float, float], ...] = (
    ("steady", -45.0, 0.0, 0.0),
    ("beating", -30.0, 4.0, 20.0),
)


def noise_clip(level_dbfs: float, rate_hz: float, depth_db: float, seed: int = 0) -> np.ndarray:
    """White noise at ``level_dbfs`` RMS whose level in dB follows a sine of ``depth_db`` peak
    to peak at ``rate_hz`` (0: steady), float32 at SAMPLE_RATE."""
    n = round(SECONDS * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    noise = np.random.default_rng(seed).normal(0.0, 1.0, n)
    gain_db = depth_db * (0.5 + 0.5 * np.sin(2.0 * np.pi * rate_hz * t))
    noise *= 10.0 ** (gain_db / 20.0)
    noise *= 10.0 ** (level_dbfs / 20.0) / np.sqrt(np.mean(noise**2))
    return noise.astype(np.float32)


def noise_metrics(generate: Callable[[np.ndarray, int], np.ndarray], seeds: int) -> dict:
    """``{name}_jaw_max`` for each of ``NOISES``: the largest jawOpen that ``generate(audio,
    seed)`` (motion frames) gives over the clip and seeds 0..``seeds``-1."""
    jaw = motion_frame.INDEX["jawOpen"]
    out: dict[str, float] = {}
    for name, level, rate, depth in NOISES:
        audio = noise_clip(level, rate, depth)
        out[f"{name}_jaw_max"] = max(
            float(generate(audio, seed)[:, jaw].max()) for seed in range(seeds)
        )
    return out


__all__ = ["NOISES", "SECONDS", "noise_clip", "noise_metrics"]
