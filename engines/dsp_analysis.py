"""Audio analysis for the DSP motion generator: 10 ms frames -> band levels, voicing, formants.

Analysis frame j covers ``audio[160 j : 160 j + 400]`` (a 25 ms window every 10 ms, centred
on sample 160 j + 80). For each frame :func:`analyse` measures

* band levels (dB re a full-scale sine) below 400 Hz (voice bar, nasal murmur), 400-3000 Hz
  (open-vowel F1 and F2) and 3000-7000 Hz (frication);
* periodicity: voicing strength and F0 from a normalized autocorrelation (70-400 Hz);
* F1 and F2 as the strongest peaks of a pre-emphasized LPC envelope.

Each row depends only on its own window, so features are the same whatever the hop that
computes them. The mapping to motion lives in ``engines.dsp_motion``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contracts.clock import SAMPLE_RATE, SAMPLES_PER_FRAME

# --- analysis grid -----------------------------------------------------------------------
HOP = 160  # 10 ms analysis frames
WIN = 400  # 25 ms window
NFFT = 512  # spectrum, band levels and LPC (31 Hz bins)
ROWS_PER_FRAME = SAMPLES_PER_FRAME // HOP  # 4
# Analysis frame j is centred on sample 160 j + 80, so video frame k (centre 640 k + 320)
# sits at analysis position 4 k + 1.5.
WIN_BEFORE = WIN // 2 - HOP // 2  # window of frame j starts at 160 j - 120
WIN_AFTER = WIN - WIN_BEFORE  # and ends at 160 j + 280

MIN_LAG = SAMPLE_RATE // 400  # F0 search 70..400 Hz
MAX_LAG = SAMPLE_RATE // 70
_RUMBLE_TAPS = 32  # moving average whose removal high-passes the pitch analysis at ~100 Hz
# Pitch FFT: at least the frame plus the longest lag, so the autocorrelation does not wrap.
PITCH_NFFT = 768
assert WIN - _RUMBLE_TAPS + MAX_LAG + 1 <= PITCH_NFFT
LPC_ORDER = 14

_FREQS = np.fft.rfftfreq(NFFT, 1.0 / SAMPLE_RATE)
_HANN = np.hanning(WIN + 2)[1:-1]
# Power of a full-scale sine through the window, so levels read roughly as dBFS.
_LEVEL_NORM = float(_HANN.sum() ** 2) / 4.0


# Band edges (Hz), one column each of a 0/1 matrix so all band powers are one product:
# low = voice bar, nasal murmur, closed-vowel F1; mid = open-vowel F1 and F2, the "mouth is
# open" band; high = frication.
def _band_matrix(edges: tuple[tuple[float, float], ...]) -> np.ndarray:
    freqs = _FREQS
    return np.stack([(freqs >= lo) & (freqs < hi) for lo, hi in edges], axis=1).astype(float)


_BANDS = _band_matrix(((80, 400), (400, 3000), (3000, 7000)))
_F1_BAND = (_FREQS >= 200) & (_FREQS <= 1000)
# Pre-emphasis (1 - 0.97 z^-1) applied in the power domain before LPC, to flatten the
# glottal tilt so LPC spends its poles on formants.
_PREEMPH = np.abs(1.0 - 0.97 * np.exp(-2j * np.pi * _FREQS / SAMPLE_RATE)) ** 2
_TOEPLITZ = np.abs(np.arange(LPC_ORDER)[:, None] - np.arange(LPC_ORDER)[None, :])

SILENT_DB = -120.0  # the level of digital silence (the floor of _db)


def _db(power: np.ndarray) -> np.ndarray:
    return 10.0 * np.log10(power / _LEVEL_NORM + 10.0 ** (SILENT_DB / 10.0))


@dataclass
class Analysis:
    """Features of consecutive 10 ms analysis frames (one row each)."""

    low_db: np.ndarray  # 80-400 Hz level
    mid_db: np.ndarray  # 400-3000 Hz level
    high_db: np.ndarray  # 3000-7000 Hz level
    voicing: np.ndarray  # peak normalized autocorrelation in the F0 range, 0..1
    f0_st: np.ndarray  # F0 in semitones re 100 Hz (meaningful where voiced)
    f1: np.ndarray  # Hz, from the LPC envelope
    f2: np.ndarray  # Hz


def analyse(audio: np.ndarray, n_rows: int) -> Analysis:
    """Features of ``n_rows`` analysis frames; row r uses ``audio[160 r : 160 r + 400]``."""
    frames = np.lib.stride_tricks.sliding_window_view(audio.astype(np.float64), WIN)[
        : n_rows * HOP : HOP
    ]
    frames = frames - frames.mean(axis=1, keepdims=True)
    power = np.abs(np.fft.rfft(frames * _HANN, NFFT)) ** 2
    voicing, f0_st = _periodicity(frames)
    f1, f2 = _formants(power)
    low_db, mid_db, high_db = _db(power @ _BANDS).T
    return Analysis(
        low_db=low_db,
        mid_db=mid_db,
        high_db=high_db,
        voicing=voicing,
        f0_st=f0_st,
        f1=f1,
        f2=f2,
    )


def _periodicity(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Voicing strength and F0 from the normalized autocorrelation of the unwindowed frame.

    A 2 ms moving average is subtracted first: room rumble and DC drift correlate at every
    short lag and would read as voiced. Each lag is normalized by the energy of the two
    overlapping parts (not by a window's autocorrelation), which keeps 70 Hz voices, whose
    period is more than half the 25 ms window, measurable; only interior local maxima count
    as a period. The search stops at 70 Hz so that 50/60 Hz mains hum is never a voice.
    """
    csum = np.cumsum(frames, axis=1)
    moving_mean = (csum[:, _RUMBLE_TAPS:] - csum[:, :-_RUMBLE_TAPS]) / _RUMBLE_TAPS
    hp = frames[:, _RUMBLE_TAPS:] - moving_mean
    size = hp.shape[1]
    acf = np.fft.irfft(np.abs(np.fft.rfft(hp, PITCH_NFFT)) ** 2, PITCH_NFFT)[:, : MAX_LAG + 2]
    energy = np.cumsum(hp**2, axis=1)
    lags = np.arange(MIN_LAG - 1, MAX_LAG + 2)
    head = energy[:, size - 1 - lags]  # energy of hp[:-lag]
    tail = energy[:, -1:] - energy[:, lags - 1]  # energy of hp[lag:]
    norm = acf[:, lags] / np.sqrt(head * tail + 1e-20)
    inner = norm[:, 1:-1]
    peaks = np.where((inner >= norm[:, :-2]) & (inner >= norm[:, 2:]), inner, -1.0)
    best = peaks.max(axis=1)
    # The first peak within 0.05 of the best avoids picking twice the period (an octave low).
    first = np.argmax(peaks >= (best - 0.05)[:, None], axis=1)
    f0 = SAMPLE_RATE / lags[1:-1][first]
    return np.clip(best, 0.0, 1.0), 12.0 * np.log2(f0 / 100.0)


def _formants(power: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """F1 and F2 as the strongest LPC-envelope peaks in their usual ranges."""
    r = np.fft.irfft(power * _PREEMPH, NFFT)[:, : LPC_ORDER + 1]
    r[:, 0] = r[:, 0] * (1.0 + 1e-3) + 1e-12  # white-noise correction keeps R invertible
    coeffs = np.linalg.solve(r[:, _TOEPLITZ], r[:, 1:, None])[..., 0]
    inverse = np.concatenate([np.ones((len(r), 1)), -coeffs], axis=1)
    envelope = -np.log(np.abs(np.fft.rfft(inverse, NFFT)) + 1e-9)
    f1 = _FREQS[_F1_BAND][np.argmax(envelope[:, _F1_BAND], axis=1)]
    lower = np.maximum(f1 + 250.0, 700.0)
    f2_band = (_FREQS[None, :] >= lower[:, None]) & (_FREQS[None, :] <= 2800.0)
    f2 = _FREQS[np.argmax(np.where(f2_band, envelope, -np.inf), axis=1)]
    return f1, f2
