"""A bounded ring buffer of mono 16 kHz audio stamped on the session clock."""

from __future__ import annotations

import numpy as np

from contracts.clock import SAMPLE_RATE


class AudioRing:
    """Holds the most recent ``capacity`` samples; absolute sample indices never reset.

    ``read(start, stop)`` returns zeros for any part before the first sample ever written
    (the session starts in silence) and raises if the span was already overwritten or has not
    arrived yet, so a caller can never silently read stale or future audio.
    """

    def __init__(self, capacity_seconds: float = 10.0) -> None:
        self.capacity = int(capacity_seconds * SAMPLE_RATE)
        self._data = np.zeros(self.capacity, np.float32)
        self._end = 0  # absolute index one past the newest sample

    @property
    def end(self) -> int:
        """Absolute index one past the newest sample written."""
        return self._end

    def write(self, samples: np.ndarray) -> None:
        samples = np.asarray(samples, np.float32).reshape(-1)
        n = samples.shape[0]
        if n == 0:
            return
        if n >= self.capacity:
            samples = samples[-self.capacity :]
            self._end += n - self.capacity
            n = self.capacity
        pos = self._end % self.capacity
        first = min(n, self.capacity - pos)
        self._data[pos : pos + first] = samples[:first]
        self._data[: n - first] = samples[first:]
        self._end += n

    def read(self, start: int, stop: int) -> np.ndarray:
        if stop > self._end:
            raise ValueError(f"audio [{start}, {stop}) not yet received (end={self._end})")
        if stop - start > self.capacity:
            raise ValueError("span longer than the ring")
        oldest = max(0, self._end - self.capacity)
        if start < oldest and stop > 0 and start >= 0:
            raise ValueError(f"audio at {start} already overwritten (oldest={oldest})")
        out = np.zeros(stop - start, np.float32)
        lo = max(start, 0)
        if stop <= lo:
            return out
        idx = np.arange(lo, stop) % self.capacity
        out[lo - start :] = self._data[idx]
        return out
