"""Rendering a session's motion frames against their send times.

A frame is rendered in one of the server's shared render slots (stream_server.render_slots)
only if it can still be rendered and encoded by its send time (checked before queueing for
the slot and again once the slot is ours): under overload the renderer catches up instead of
falling further behind, and the receiver keeps showing the frame before. Rendered frames go
to the session's ``FrameEncoder``. On an interrupt the frames past the one on screen are
re-rendered with the mouth closing (``close_mouth_after``). Runs on the session's worker
thread.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from contracts.clock import SAMPLE_RATE, SAMPLES_PER_FRAME
from engines import mouth_close
from engines.motion_stream import MotionStream
from engines.mouth_close import CLOSE_FRAMES
from stream_server.clock_fit import SessionClock
from stream_server.frame_encoder import FrameEncoder
from stream_server.metrics import Metrics
from stream_server.render_pool import RenderError
from stream_server.render_slots import RenderSlots

log = logging.getLogger("stream_server.session")

SHARE_WINDOW_S = 1.0  # a session's share: the frames it rendered in this last while
SHARE_BIAS_S = 0.005  # priority lost per frame of share (render_slots); 25 fps: 125 ms


class DeadlineRenderer:
    """Renders a session's frames in time, or not at all, and hands them to its encoder."""

    def __init__(
        self,
        session_id: str,
        render: Callable[[np.ndarray], np.ndarray],
        slots: RenderSlots,
        clock: SessionClock,
        encoder: FrameEncoder,
        metrics: Metrics,
        lookahead_samples: int,
    ) -> None:
        self.session_id = session_id
        # motion frame -> I420 frame, as the encoder takes it (stream_server.render_pool)
        self._render = render
        self._slots = slots  # shared by the server
        self.clock = clock
        self.encoder = encoder
        self.metrics = metrics
        self.lookahead_samples = lookahead_samples
        self._render_estimate = 0.01  # running mean of render time (s)
        self._rendered: deque[float] = deque()  # when this session's recent frames rendered

    def render_ready(self, pending: list[tuple[int, np.ndarray]]) -> None:
        """Render the generated frames ``(k, motion)`` that can be ready in time."""
        for k, motion in pending:
            # A frame that cannot be ready in time is not rendered (not sent; the video track
            # counts it): under overload the renderer catches up instead of falling further
            # behind.
            if not self.render_in_time(k, motion, self.clock.frame_due(k)):
                # Relax the estimate while skipping, so a slow spell cannot lock rendering out.
                self._render_estimate *= 0.8

    def render_in_time(self, k: int, motion: np.ndarray, due: float) -> bool:
        """Render frame k in a render slot unless it cannot be ready by ``due`` (checked
        before queueing for the slot and again once it is ours); whether it was rendered."""
        needed = self._render_estimate + self.encoder.encode_estimate
        if time.monotonic() + needed > due:
            return False
        queued = time.monotonic()
        with self._slots.slot(due, self.share_bias(queued)):
            start = time.monotonic()
            self.metrics.render_wait_ms.observe((start - queued) * 1000)
            if start + needed > due:
                return False
            try:
                yuv = self._render(motion)
            except RenderError:  # the pool replaced a dead process: this frame is not sent
                log.exception("session %s…: frame %d not rendered", self.session_id[:8], k)
                return False
            done = time.monotonic()
        spent = done - start
        self._rendered.append(done)
        self.metrics.render_ms.observe(spent * 1000)
        self._render_estimate += 0.1 * (spent - self._render_estimate)
        complete = (
            self.clock.t0 + ((k + 1) * SAMPLES_PER_FRAME + self.lookahead_samples) / SAMPLE_RATE
        )
        self.metrics.audio_to_frame_ms.observe(max(0.0, done - complete) * 1000)
        return self.encoder.store(k, yuv, motion)

    def share_bias(self, now: float) -> float:
        """This session's priority bias in the render slots: ``SHARE_BIAS_S`` per frame it
        rendered in the last ``SHARE_WINDOW_S`` (equal for sessions at the same rate)."""
        while self._rendered and self._rendered[0] < now - SHARE_WINDOW_S:
            self._rendered.popleft()
        return SHARE_BIAS_S * len(self._rendered)

    def close_mouth_after(self, shown: int, stream: MotionStream) -> None:
        """The frames past the one sent last (``shown``) belong to the interrupted speech:
        re-render the ones already generated, and at least ``CLOSE_FRAMES``, with the mouth
        closing (as fast as the generators close it); the reset generator's frames follow
        them. If the generator cannot make its first frames in time (the gap), the receiver
        keeps a closed mouth, not the open one on screen. The generator then eases on from the
        closed mouth (``stream``'s motion history ends with it)."""
        ahead = max(0, stream.next_frame - shown - 1)
        latest = stream.buffer.latest()
        motions = list(stream.buffer.last(min(ahead, len(stream.buffer))))
        motions += [latest] * (max(ahead, CLOSE_FRAMES) - len(motions))
        closing = latest
        for i, motion in enumerate(motions):
            closing = mouth_close.closing(motion, i + 1)
            k = shown + 1 + i
            with self._slots.slot(self.clock.frame_due(k)):
                yuv = self._render(closing)
            self.encoder.store(k, yuv, closing)
        stream.buffer.clear_to(closing)
