"""Log-mel features of 16 kHz audio: the one function training and inference share.

Analysis frame j of a window covers samples [160 j, 160 j + 400) of that window (25 ms Hann,
zero-padded to a 512-point FFT, 10 ms hop); frames that would reach past the window's end are
not computed. So the features of a window depend only on the samples in it (nothing is padded
or carried over from outside), and two windows whose starts differ by a multiple of 160
samples share their overlapping frames exactly: the motion model reads the window
[640 k - past, 640 (k + H) + lookahead) of the session clock, which always starts on the
same 10 ms grid.

Numbers are fixed constants, not fitted at run time: power is scaled so that a full-scale
sine reads about 0 dB in the filter holding it, floored at -80 dB (below the quietest
microphone noise, so digital silence and a quiet room read nearly alike), and the log is
normalised by constants measured once on speech (``LOG_MEAN``, ``LOG_SCALE``) so that
features of speech lie roughly in [-1, 2].

Training precomputes the features of each utterance once on the 10 ms grid and slices
windows out of them (the same numbers, since a window's frames depend only on its samples);
``attenuate`` applies a gain reduction to features exactly, floor included.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SAMPLE_RATE = 16_000
N_FFT = 512
WIN = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 64
FMIN = 60.0  # below: hum and rumble; the lowest voice F0 still falls in the first filters
FMAX = 8_000.0
FLOOR_DB = -80.0
LOG_MEAN = -60.0  # dB: about the mean over ../shared/assets/speech (LibriVox, CMU ARCTIC)
LOG_SCALE = 20.0  # dB per unit: that speech then reads -1 (floor) .. +1.8 (loudest 1 %)

_WINDOW = np.hanning(WIN + 2)[1:-1]
# A full-scale sine through the window puts (sum(w) / 2)^2 into its peak bin.
_POWER_NORM = float(_WINDOW.sum() / 2.0) ** 2


def _hz_to_mel(hz: float | np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def _mel_matrix() -> np.ndarray:
    """(N_FFT // 2 + 1, N_MELS) triangular filters (HTK mel scale), each summing to 1 so
    every band reads as mean power whatever its width."""
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(FMIN), _hz_to_mel(FMAX), N_MELS + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    # The lowest filters are narrower than one FFT bin; give each at least its nearest bin.
    nearest = np.abs(freqs[None, :] - centre).argmin(axis=1)
    empty = weights.sum(axis=1) == 0.0
    weights[empty, nearest[empty]] = 1.0
    return (weights / weights.sum(axis=1, keepdims=True)).T.astype(np.float32)


MEL_MATRIX = _mel_matrix()


def num_frames(n_samples: int) -> int:
    """Analysis frames of a window of ``n_samples`` (only frames wholly inside it)."""
    return 0 if n_samples < WIN else 1 + (n_samples - WIN) // HOP


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Normalised log-mel features: ``(..., samples)`` float audio in [-1, 1] ->
    ``(..., num_frames(samples), N_MELS)`` float32."""
    audio = np.asarray(audio, np.float32)
    n = num_frames(audio.shape[-1])
    if n == 0:
        return np.zeros((*audio.shape[:-1], 0, N_MELS), np.float32)
    frames = sliding_window_view(audio, WIN, axis=-1)[..., : n * HOP : HOP, :]
    spectrum = np.fft.rfft(frames * _WINDOW.astype(np.float32), N_FFT, axis=-1)
    power = (spectrum.real**2 + spectrum.imag**2) / _POWER_NORM
    mel = power.astype(np.float32) @ MEL_MATRIX
    db = 10.0 * np.log10(np.maximum(mel, 10.0 ** (FLOOR_DB / 10.0)))
    return ((db - LOG_MEAN) / LOG_SCALE).astype(np.float32)


FLOOR = (FLOOR_DB - LOG_MEAN) / LOG_SCALE  # the feature value of silence


def attenuate(features: np.ndarray, gain_db: np.ndarray | float) -> np.ndarray:
    """Features of the same audio scaled by ``gain_db`` <= 0 (broadcast over the leading
    axes). Exact: a quieter signal only moves more bands onto the floor."""
    gain = np.asarray(gain_db, np.float32)
    if np.any(gain > 0.0):
        raise ValueError("attenuate() takes gains <= 0 dB (louder would lift the floor)")
    return np.maximum(features + gain / LOG_SCALE, np.float32(FLOOR)).astype(np.float32)
