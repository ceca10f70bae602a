"""Engine audio to the corpus format: float32 mono at 16 kHz in [-1, 1].

Engines write 8, 10, 16, 22.05 or 32 kHz. Resampling is polyphase (scipy's resample_poly),
which keeps the signal's timing exactly, so phone times in seconds stay valid unchanged.
"""

from __future__ import annotations

import warnings
from math import gcd
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

from training.tts.base import TtsError
from training.utterance import SAMPLE_RATE


def pcm_to_float(samples: np.ndarray) -> np.ndarray:
    """Integer or float PCM (mono or first channel) -> float32 in [-1, 1]."""
    if samples.ndim > 1:
        samples = samples[:, 0]
    if np.issubdtype(samples.dtype, np.integer):
        scale = float(np.iinfo(samples.dtype).max) + 1.0
        return (samples.astype(np.float32) / scale).astype(np.float32)
    return samples.astype(np.float32)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A WAV file as (float32 mono samples, sample rate); TtsError if unreadable or empty."""
    try:
        with warnings.catch_warnings():  # some engines write odd chunk sizes; data is fine
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            rate, samples = wavfile.read(str(path))
    except (OSError, ValueError) as exc:
        raise TtsError(f"cannot read {path}: {exc}") from exc
    if samples.size == 0:
        raise TtsError(f"{path} holds no audio")
    return pcm_to_float(samples), int(rate)


def to_model_rate(samples: np.ndarray, rate: int) -> np.ndarray:
    """Resample to SAMPLE_RATE and keep within [-1, 1] (filters can overshoot a little)."""
    if rate != SAMPLE_RATE:
        common = gcd(SAMPLE_RATE, rate)
        samples = resample_poly(samples, SAMPLE_RATE // common, rate // common)
    return np.clip(samples, -1.0, 1.0).astype(np.float32)
