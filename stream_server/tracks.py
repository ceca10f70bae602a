"""A session's output: its two aiortc media tracks, and the returned audio the audio track
reads.

Both tracks run on the event loop and pace themselves by the session clock
(``clock_fit.SessionClock``): video frame k is sent at ``frame_due(k)``, returned audio
sample i at ``audio_due(i)`` (each frame goes out with the middle of its own audio).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import threading
import time
from collections.abc import Callable

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from contracts.clock import SAMPLE_RATE
from engines.audio_io import OUTPUT_RATE
from engines.audio_ring import AudioRing
from stream_server.clock_fit import SessionClock
from stream_server.encoded_frames import EncodedFrames
from stream_server.metrics import Metrics
from stream_server.session_stats import SessionStats
from stream_server.video_codec import EncodedVideoFrame

OUTPUT_CHUNK = OUTPUT_RATE // 50  # 20 ms, as WebRTC packetizes Opus
# libopus delays the sound it encodes by 6.5 ms at 48 kHz (2.5 ms lookahead + 4 ms delay
# compensation; aiortc's encoder, as browsers'); the returned audio is sent that much early.
OPUS_DELAY = 312


class OutputAudio:
    """The returned audio (48 kHz), on the session clock: written by the session's worker,
    read by the audio track; an interrupt mutes what was written before it."""

    def __init__(self, capacity_seconds: float) -> None:
        self._ring = AudioRing(capacity_seconds=capacity_seconds)
        self._lock = threading.Lock()
        self._muted_before = 0  # output samples silenced by an interrupt

    def write(self, samples: np.ndarray) -> None:
        with self._lock:
            self._ring.write(samples)

    def mute_written(self) -> None:
        """Silence every sample written so far (barge-in)."""
        with self._lock:
            self._muted_before = self._ring.end

    def read(self, start: int, count: int) -> np.ndarray:
        """Output samples [start, start + count); silence where there are none."""
        with self._lock:
            try:
                chunk = self._ring.read(start, start + count)
            except ValueError:
                return np.zeros(count, np.float32)
            if start < self._muted_before:
                chunk[: min(count, self._muted_before - start)] = 0.0
            return chunk


class AvatarVideoTrack(MediaStreamTrack):
    """The avatar's encoded frames (``frames``), each handed to aiortc at its send time
    (25 fps on the session clock); aiortc only packetizes them (stream_server.video_codec).
    A receiver's keyframe request goes to ``keyframe``; frames sent and frames never made
    are counted in ``stats`` and ``metrics``."""

    kind = "video"

    def __init__(
        self,
        frames: EncodedFrames[EncodedVideoFrame],
        keyframe: Callable[[], None],
        clock: SessionClock,
        stats: SessionStats,
        metrics: Metrics,
    ) -> None:
        super().__init__()
        self._frames = frames
        self._keyframe = keyframe
        self._clock = clock
        self._stats = stats
        self._metrics = metrics
        # Called on the event loop with each frame as it is handed to aiortc: the motion data
        # channel sends the frame's motion then, WHEP viewers get the same encoded frame.
        self.frame_listeners: list[Callable[[int, EncodedVideoFrame], None]] = []

    def request_keyframe(self) -> None:
        """The receiver lost a frame (PLI/FIR): the next one encoded is a keyframe."""
        self._keyframe()

    async def recv(self) -> EncodedVideoFrame:  # type: ignore[override]
        frames, clock = self._frames, self._clock
        if frames.start_index is None:  # the next frame due is the first
            frames.start(clock.next_frame(time.monotonic()))
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            k = frames.peek_index()
            if k is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(frames.wait(), 0.1)
                continue
            await asyncio.sleep(max(0.0, clock.frame_due(k) - time.monotonic()))
            previous = frames.last_taken  # only this track takes frames
            item = frames.pop_due(k)  # None: an interrupt discarded it meanwhile
            if item is not None:
                break
        k, encoded = item
        self._metrics.send_late_ms.observe((time.monotonic() - clock.frame_due(k)) * 1000)
        if k - previous > 1:  # frames that could not be ready in time
            self._stats.frames_dropped += k - previous - 1
            self._metrics.frames_dropped.inc(k - previous - 1)
        self._stats.frames_sent += 1
        self._metrics.frames_delivered.inc()
        for listener in self.frame_listeners:
            listener(k, encoded)
        return encoded


class DelayedAudioTrack(MediaStreamTrack):
    """The client's audio (``audio``), returned at the same delay as the video (48 kHz, 20 ms
    frames).

    Packet n (pts 960 n) is sent when its first sample is due (``SessionClock.audio_due``)
    and holds the output samples from ``OPUS_DELAY`` on: Opus delays what it encodes by that
    much and RTP does not say so (no pre-skip), so the receiver's decoded sound is on time."""

    kind = "audio"

    def __init__(self, audio: OutputAudio, clock: SessionClock, metrics: Metrics) -> None:
        super().__init__()
        self._audio = audio
        self._clock = clock
        self._metrics = metrics
        self._next: int | None = None  # output chunk index (20 ms)

    def due(self, n: int) -> float:
        """When packet ``n`` is sent."""
        return self._clock.audio_due(n * SAMPLE_RATE // 50)

    def packet(self, n: int) -> av.AudioFrame:
        """Packet ``n``: its 20 ms of output audio, advanced by Opus's delay."""
        samples = self._audio.read(n * OUTPUT_CHUNK + OPUS_DELAY, OUTPUT_CHUNK)
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = OUTPUT_RATE
        frame.pts = n * OUTPUT_CHUNK
        frame.time_base = fractions.Fraction(1, OUTPUT_RATE)
        return frame

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        clock = self._clock
        if self._next is None:
            self._next = max(0, int(np.ceil((time.monotonic() - clock.t0 - clock.latency_s) * 50)))
        n = self._next
        now = time.monotonic()
        if now - self.due(n) > 0.1:  # fell behind: skip ahead rather than queue delay
            n += int((now - self.due(n)) * 50)
        await asyncio.sleep(max(0.0, self.due(n) - time.monotonic()))
        self._metrics.send_late_ms.observe((time.monotonic() - self.due(n)) * 1000)
        self._next = n + 1
        return self.packet(n)
