"""The session clock: the audio sample index at 16 kHz is the time base.

At 25 fps, video frame k covers audio samples [640k, 640(k+1)). Every artifact carries its
frame index, so latency and A/V sync are computed, not guessed.
"""

from __future__ import annotations

SAMPLE_RATE: int = 16_000
FPS: int = 25
SAMPLES_PER_FRAME: int = SAMPLE_RATE // FPS  # 640


def frame_start(frame_index: int) -> int:
    """First audio sample covered by video frame ``frame_index``."""
    return frame_index * SAMPLES_PER_FRAME


def frame_of_sample(sample_index: int) -> int:
    """The video frame whose audio span contains ``sample_index``."""
    return sample_index // SAMPLES_PER_FRAME


def ms_to_samples(ms: float) -> int:
    return round(ms * SAMPLE_RATE / 1000.0)
