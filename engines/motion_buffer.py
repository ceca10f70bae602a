"""The rolling motion-frame buffer: the last generated frames condition the next ones."""

from __future__ import annotations

from collections import deque

import numpy as np

from contracts import motion_frame


class MotionBuffer:
    """The newest ``capacity`` motion frames with their frame indices (bounded)."""

    def __init__(self, capacity: int = 50) -> None:
        self._frames: deque[np.ndarray] = deque(maxlen=capacity)
        self._next_index = 0

    @property
    def next_index(self) -> int:
        """Frame index of the next frame to be appended."""
        return self._next_index

    def __len__(self) -> int:
        return len(self._frames)

    def append(self, frame_index: int, frame: np.ndarray) -> None:
        if frame_index != self._next_index:
            raise ValueError(f"expected frame {self._next_index}, got {frame_index}")
        if frame.shape != (motion_frame.DIM,):
            raise ValueError(f"bad motion frame shape {frame.shape}")
        self._frames.append(np.asarray(frame, np.float32).copy())
        self._next_index += 1

    def last(self, n: int) -> np.ndarray:
        """The newest ``n`` frames, oldest first, ``(n, DIM)``; padded at the front with the
        oldest frame held (or neutral when empty), so a fresh session starts at rest."""
        have = list(self._frames)[-n:] if n > 0 else []
        pad_frame = have[0] if have else motion_frame.neutral()
        pad = [pad_frame] * (n - len(have))
        return (
            np.stack(pad + have).astype(np.float32)
            if n > 0
            else np.zeros((0, motion_frame.DIM), np.float32)
        )

    def latest(self) -> np.ndarray:
        return self.last(1)[0]

    def clear_to(self, frame: np.ndarray) -> None:
        """Replace the history with one held frame (used on interrupt)."""
        self._frames.clear()
        self._frames.append(np.asarray(frame, np.float32).copy())
