"""How far the mouth follows the sound: the lag that maximizes the correlation of a mouth
track with an audio level, refined between steps by a parabola through the peak and its
neighbours.

* ``best_lag``: frame-aligned tracks (one value per video frame, 40 ms steps), for a clip
  rendered offline (measure.lipsync). Negative: the lips lead the sound.
* ``xcorr_lag``: tracks on their own clocks (frame arrival times, 20 ms audio packets),
  pooled over sessions, in 5 ms steps, for the live bench (measure.latency). Positive: the
  mouth follows the audio.
"""

from __future__ import annotations

import numpy as np

from contracts.clock import FPS


def best_lag(track: np.ndarray, envelope: np.ndarray, max_ms: float = 200.0) -> tuple[float, float]:
    """(lag in ms, correlation) maximizing corr(track[k], envelope[k + lag]); negative lag =
    the track (lips) leads the envelope (sound). The peak is refined between frames with a
    parabola through the best lag and its neighbours (frames are 40 ms apart)."""
    max_lag = round(max_ms / 1000 * FPS)

    def corr_at(lag: int) -> float:
        if lag >= 0:
            a, b = track[: len(track) - lag], envelope[lag:]
        else:
            a, b = track[-lag:], envelope[: len(envelope) + lag]
        if len(a) < 10 or a.std() < 1e-9 or b.std() < 1e-9:
            return -2.0
        return float(np.corrcoef(a, b)[0, 1])

    lags = list(range(-max_lag, max_lag + 1))
    corrs = [corr_at(lag) for lag in lags]
    i = int(np.argmax(corrs))
    offset = 0.0
    if 0 < i < len(lags) - 1:
        left, mid, right = corrs[i - 1], corrs[i], corrs[i + 1]
        denom = left - 2 * mid + right
        if denom < 0:
            offset = float(np.clip(0.5 * (left - right) / denom, -0.5, 0.5))
    return -(lags[i] + offset) * 1000.0 / FPS, corrs[i]


XCORR_LAGS_S = np.arange(-0.2, 0.8001, 0.005)


def xcorr_lag(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[float | None, float | None]:
    """(lag ms, correlation) maximizing the correlation of the mouth with the audio level
    ``lag`` earlier, pooled over ``parts`` of (frame times, openings, level times, levels).
    Positive: the mouth follows the audio."""
    parts = [p for p in parts if len(p[0]) >= 10 and len(p[2]) >= 10]
    if not parts:
        return None, None
    mouth = np.concatenate([p[1] for p in parts])
    if mouth.std() < 1e-9:
        return None, None
    corrs = []
    for lag in XCORR_LAGS_S:
        level = np.concatenate([np.interp(t - lag, te, e) for t, _, te, e in parts])
        corrs.append(np.corrcoef(mouth, level)[0, 1] if level.std() > 1e-9 else -1.0)
    best = int(np.nanargmax(corrs))
    lag = float(XCORR_LAGS_S[best])
    if 0 < best < len(corrs) - 1:  # between steps: the peak of a parabola through 3 points
        a, b, c = corrs[best - 1], corrs[best], corrs[best + 1]
        if a - 2 * b + c < 0:
            lag += 0.5 * (a - c) / (a - 2 * b + c) * float(XCORR_LAGS_S[1] - XCORR_LAGS_S[0])
    return round(lag * 1000, 1), round(float(corrs[best]), 3)
