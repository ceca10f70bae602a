"""Encoded video frames on their way from a session's thread to its video track.

The thread puts each encoded frame with its index; the track (event loop) takes them in
order and sends each at its due time. A frame index that never comes (the frame could not
be rendered in time) is a gap: the receiver keeps showing the frame before. Every frame
put is taken unless ``discard_unsent`` drops what is waiting (barge-in, or a track that
stopped taking); the frame encoded after a discard must be a keyframe, as the ones dropped
were the references of what follows (``Vp8Stream``).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class EncodedFrames(Generic[T]):
    """Thread-safe: ``put`` and ``discard_unsent`` from the session's thread, ``start``,
    ``peek_index``, ``pop_due`` and ``wait`` from the event loop."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._frames: deque[tuple[int, T]] = deque()
        self._taken = -1  # index of the last frame taken
        self._start: int | None = None  # the first index the track wants
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    @property
    def start_index(self) -> int | None:
        """The index of the track's first frame, once the track has begun taking frames."""
        return self._start

    @property
    def last_taken(self) -> int:
        return self._taken

    def start(self, index: int) -> None:
        """The track wants frames from ``index`` on (its first due frame)."""
        with self._lock:
            if self._start is None:
                self._start = index
                self._taken = index - 1

    def put(self, index: int, frame: T) -> bool:
        """Queue frame ``index`` (increasing). False if there is no room: the track stopped
        taking frames; the caller discards what is waiting and starts again from a keyframe."""
        with self._lock:
            if len(self._frames) >= self.capacity:
                return False
            if index <= self._taken or (self._frames and index <= self._frames[-1][0]):
                raise ValueError(f"frame {index} is not after the frames already queued")
            self._frames.append((index, frame))
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            loop, event = waiter
            loop.call_soon_threadsafe(event.set)
        return True

    def discard_unsent(self) -> int:
        """Drop the frames not yet taken; the index of the last frame taken."""
        with self._lock:
            self._frames.clear()
            return self._taken

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)

    def peek_index(self) -> int | None:
        """The index of the oldest frame waiting, if any."""
        with self._lock:
            return self._frames[0][0] if self._frames else None

    def pop_due(self, index: int) -> tuple[int, T] | None:
        """Take the oldest frame if its index is at most ``index``, else None."""
        with self._lock:
            if not self._frames or self._frames[0][0] > index:
                return None
            item = self._frames.popleft()
            self._taken = item[0]
            return item

    async def wait(self) -> None:
        """Until a frame is queued (at once if one is)."""
        event = asyncio.Event()
        with self._lock:
            if self._frames:
                return
            self._waiter = (asyncio.get_running_loop(), event)
        await event.wait()
