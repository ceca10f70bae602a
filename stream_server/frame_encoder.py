"""A session's rendered frames on their way to its video track: kept until the track starts,
then encoded (VP8) ahead of their send time and queued for it.

Used from the session's worker thread, but for what the video track reads: ``queue``
(``EncodedFrames``, thread-safe) and ``request_keyframe`` (any thread).
"""

from __future__ import annotations

import time

import numpy as np

from stream_server.clock_fit import SessionClock
from stream_server.encoded_frames import EncodedFrames
from stream_server.metrics import Metrics
from stream_server.video_codec import EncodedVideoFrame, Vp8Stream

FRAME_STORE = 12  # rendered frames kept until the video track starts; encoded frames queued


class FrameEncoder:
    """Owns the session's ``Vp8Stream``, its queue of encoded frames and the frames rendered
    before the video track started."""

    def __init__(self, clock: SessionClock, metrics: Metrics) -> None:
        self.clock = clock
        self.metrics = metrics
        self._vp8 = Vp8Stream()
        self._queue: EncodedFrames[EncodedVideoFrame] = EncodedFrames(FRAME_STORE)
        # rendered before the video track started: (I420, the motion it shows)
        self._frames: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
        self._last_encoded = -1  # index of the newest frame encoded
        self._encode_estimate = 0.003  # running mean of encoding time (s)

    @property
    def queue(self) -> EncodedFrames[EncodedVideoFrame]:
        """The encoded frames, in order, for the video track."""
        return self._queue

    @property
    def encode_estimate(self) -> float:
        """The running mean of the encoding time (s), which a frame's deadline must allow."""
        return self._encode_estimate

    def close(self) -> None:
        """The session ended: free the encoder and the frames kept (``Vp8Stream.close``)."""
        self._queue.discard_unsent()
        self._frames.clear()
        self._vp8.close()

    def request_keyframe(self) -> None:
        """The next frame encoded is a keyframe (a receiver lost one: PLI/FIR)."""
        self._vp8.request_keyframe()

    def store(self, k: int, yuv: np.ndarray, motion: np.ndarray | None = None) -> bool:
        """Encode and queue rendered frame k (showing ``motion``) for the video track, or keep
        it until the track starts; False if it came too late to be sent."""
        start = self._queue.start_index
        if start is None:
            self._frames[k] = (yuv, motion)  # a later frame of the same index replaces it
            for old in [i for i in self._frames if i < k - FRAME_STORE]:
                del self._frames[old]
            return True
        return k >= start and self._encode(k, yuv, motion)

    def encode_stored(self) -> None:
        """Once the video track has started, send it the frames rendered before."""
        if self._frames and self._queue.start_index is not None:
            frames, self._frames = self._frames, {}
            for k in sorted(frames):
                self.store(k, *frames[k])

    def discard_unsent(self) -> int:
        """Drop the frames not sent yet (an interrupt); the index of the last one sent. Those
        already encoded were the references of what follows: the next frame is a keyframe."""
        shown = self._queue.discard_unsent()
        if self._last_encoded > shown:
            self._vp8.request_keyframe()
            self._last_encoded = shown
        for k in [i for i in self._frames if i > shown]:
            del self._frames[k]
        return shown

    def _encode(self, k: int, yuv: np.ndarray, motion: np.ndarray | None) -> bool:
        """Encode frame k and queue it, unless a frame of its index was queued already (a
        closing frame of an interrupt); False if it would be late, or the track stopped."""
        due = self.clock.frame_due(k)
        if k <= self._last_encoded:
            return True
        if time.monotonic() + self._encode_estimate > due:
            return False
        start = time.perf_counter()
        encoded = self._vp8.encode(yuv, k, motion)
        spent = time.perf_counter() - start
        self.metrics.encode_ms.observe(spent * 1000)
        self._encode_estimate += 0.1 * (spent - self._encode_estimate)
        self.metrics.ready_margin_ms.observe((due - time.monotonic()) * 1000)
        self._last_encoded = k
        if not self._queue.put(k, encoded):  # the track stopped taking frames
            self._queue.discard_unsent()
            self._vp8.request_keyframe()  # the dropped frames were the references
            return False
        return True
