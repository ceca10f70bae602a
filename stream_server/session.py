"""One live session: microphone audio in, the avatar's video and the same audio out.

Timing (all on one clock, ``time.monotonic``): session sample i (16 kHz) belongs to wall time
``t0 + i / 16000``; video frame k (made from samples 640k..640k+639) is sent at
``t0 + k / 25 + latency`` and the returned audio sample i at ``t0 + (i - 320) / 16000 +
latency``, so each frame goes out with the middle of its own audio: the two tracks are
aligned by construction, whatever the session's length (the audio as the receiver decodes
it: each packet holds its sound 6.5 ms early, Opus's own delay, see ``OPUS_DELAY``).
``latency`` = one frame of audio + the motion generator's lookahead + one input packet (the
audio completing a frame's lookahead comes with the 20 ms packet that holds it, up to 20 ms
later) + a compute margin.
Arriving audio is placed at its arrival time: a gap (session start, a stall, a slow sender
clock, a steady offset) is filled with silence, audio running ahead (a burst, a fast sender
clock) is trimmed, each beyond a tolerance (see ``Session._append_arrival``), so queues
cannot grow and the delay stays what it was at the start.

Threads: the event loop receives and sends media; one worker thread per session runs the
motion generator, hands frames to the server's render processes (stream_server.render_pool)
through shared render slots, and encodes each rendered frame (VP8, stream_server.video_codec)
ahead of its send time, so the video track only hands the encoded frame to aiortc when it is
due. Queues are bounded; a frame that cannot be ready by its send time is not rendered or
not encoded, never queued late (the receiver shows the one before); missing audio becomes
silence (idle animation) so the clock never stalls.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import math
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from contracts import motion_frame as mf
from contracts.clock import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from engines.audio_io import OUTPUT_RATE, mono_resampler, resample_mono
from engines.audio_ring import AudioRing
from engines.motion_stream import MotionGenerator, MotionStream
from stream_server.encoded_frames import EncodedFrames
from stream_server.metrics import Metrics
from stream_server.render_pool import RenderError
from stream_server.render_slots import RenderSlots
from stream_server.video_codec import EncodedVideoFrame, Vp8Stream

log = logging.getLogger(__name__)

OUTPUT_CHUNK = OUTPUT_RATE // 50  # 20 ms, as WebRTC packetizes Opus
# Render (~10 ms on the CPU path) + wake-up + slack, for one session per core. Sessions that
# share a core stretch each other's render wall time, so the default scales with the load.
MARGIN_PER_LOAD_S = 0.03
INPUT_PACKET_S = 0.02  # WebRTC's Opus packets (browsers and aiortc send 20 ms)
# libopus delays the sound it encodes by 6.5 ms at 48 kHz (2.5 ms lookahead + 4 ms delay
# compensation; aiortc's encoder, as browsers'); the returned audio is sent that much early.
OPUS_DELAY = 312


def default_margin_s(max_sessions: int, cpus: int | None = None) -> float:
    """The compute margin of a server of ``max_sessions``: 30 ms per session per core
    (``emote serve --margin-ms`` overrides it; docs/benchmarks.md has the measurements)."""
    cpus = max(1, cpus or os.cpu_count() or 1)
    return MARGIN_PER_LOAD_S * math.ceil(max(1, max_sessions) / cpus)


# Audio late by up to STALL_FILL_S is waited for; after that much time without any, the
# clock goes on in silence up to the present (idle frames on time), the worker checking
# every IDLE_POLL_S, and the next audio lands at its arrival time.
STALL_FILL_S = 0.10
IDLE_POLL_S = 0.01
JITTER_S = 0.04  # arrivals up to this much early are left alone; later ones are a stall
LATE_S = 0.005  # audio persistently this much late (over LATE_WINDOW chunks) is re-anchored
LATE_WINDOW = 25  # 0.5 s of 20 ms chunks
INPUT_QUEUE_CHUNKS = 100  # 2 s of 20 ms chunks; beyond that the oldest are dropped
FRAME_STORE = 12  # rendered frames kept until the video track starts; encoded frames queued
MOUTH_FIELDS = [i for i, n in enumerate(mf.BLENDSHAPES) if n.startswith(("jaw", "mouth"))]
MOUTH_CLOSE_RATE = 0.15  # mouth openness left after each frame of closing (dsp: 1 - 0.85)
CLOSE_FRAMES = 3  # closing frames rendered past the screen on an interrupt (0.15^3: shut)


@dataclass
class SessionStats:
    frames_sent: int = 0
    frames_dropped: int = 0
    audio_chunks_in: int = 0
    interrupts: int = 0
    # The input audio fitted to the session clock (Session._append_arrival), in 16 kHz
    # samples: silence put in for late audio or a stall, and early audio cut.
    audio_inserted_samples: int = 0
    audio_trimmed_samples: int = 0

    def as_json(self) -> dict[str, int]:
        return dict(vars(self))


class SessionClock:
    """Maps session samples to wall time: sample i belongs to ``t0 + i / 16000``. ``t0`` is
    fixed at the session's start, so pacing never jumps; the audio is fitted to the clock
    instead (see ``Session._append_arrival``)."""

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s
        self.t0 = time.monotonic()

    def samples_due(self, now: float) -> int:
        """Session samples that belong to times up to ``now``."""
        return int((now - self.t0) * SAMPLE_RATE)

    def frame_due(self, k: int) -> float:
        return self.t0 + k / FPS + self.latency_s

    def next_frame(self, now: float) -> int:
        """The first frame due at or after ``now``."""
        return max(0, int(np.ceil((now - self.t0 - self.latency_s) * FPS)))

    def audio_due(self, sample: int) -> float:
        """Sample i goes out with the frame whose audio it is the middle of."""
        return self.t0 + (sample - SAMPLES_PER_FRAME // 2) / SAMPLE_RATE + self.latency_s


class Session:
    """Owns the clock, the motion stream, the rendered frames and the output audio."""

    def __init__(
        self,
        session_id: str,
        avatar_id: str,
        render: Callable[[np.ndarray], np.ndarray],
        generator: MotionGenerator,
        metrics: Metrics,
        margin_s: float = MARGIN_PER_LOAD_S,
        slots: RenderSlots | None = None,
    ) -> None:
        self.id = session_id
        self.avatar_id = avatar_id
        self.metrics = metrics
        self.stats = SessionStats()
        self.created = time.monotonic()
        lookahead_s = generator.lookahead_samples / SAMPLE_RATE
        self.clock = SessionClock(1.0 / FPS + lookahead_s + INPUT_PACKET_S + margin_s)
        self._stream = MotionStream(generator, hop_frames=2)
        # motion frame -> I420 frame, as the encoder takes it (stream_server.render_pool)
        self._render = render
        self._slots = slots if slots is not None else RenderSlots(1)  # shared by the server
        self._vp8 = Vp8Stream()
        self._encoded: EncodedFrames[EncodedVideoFrame] = EncodedFrames(FRAME_STORE)
        self._last_encoded = -1  # index of the newest frame encoded (worker thread)
        self._input: queue.Queue[tuple[float, np.ndarray, np.ndarray]] = queue.Queue(
            INPUT_QUEUE_CHUNKS
        )
        self._frames: dict[int, np.ndarray] = {}  # rendered before the video track started
        self._out_audio = AudioRing(capacity_seconds=3.0 * OUTPUT_RATE / SAMPLE_RATE)
        self._out_lock = threading.Lock()
        self._muted_before = 0  # output samples (48 kHz) silenced by an interrupt
        self._written = 0  # session samples handed to the motion stream
        self._pending: list[tuple[int, np.ndarray]] = []  # generated, not yet rendered
        self._need_anchor = True  # the first audio lands exactly at its arrival time
        self._last_arrival = -math.inf  # monotonic time of the newest input chunk
        self._lateness: deque[int] = deque(maxlen=LATE_WINDOW)  # samples, per chunk
        self._render_estimate = 0.01  # running mean of render time (s)
        self._encode_estimate = 0.003  # running mean of encoding time (s)
        self._interrupt = threading.Event()
        self._interrupted_at = -1.0  # monotonic time of the last interrupt
        self._sender_offset: float | None = None  # our clock - the sender's audio clock
        self._last_sent = 0.0
        self._stop = threading.Event()
        self._worker = threading.Thread(
            target=self._work, name=f"session-{session_id[:8]}", daemon=True
        )
        self.video = AvatarVideoTrack(self)
        self.audio = DelayedAudioTrack(self)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._stop.set()
        self.video.stop()
        self.audio.stop()

    def join(self, timeout: float = 2.0) -> None:
        self._worker.join(timeout)

    @property
    def alive(self) -> bool:
        return self._worker.is_alive()

    # -- input (event loop) ------------------------------------------------------------------

    async def consume(self, track: MediaStreamTrack) -> None:
        """Read the client's audio until it ends; decoded 48 kHz frames from aiortc."""
        # The same resampling (and stereo downmix level) as offline rendering.
        to_session, to_output = mono_resampler(SAMPLE_RATE), mono_resampler(OUTPUT_RATE)
        while not self._stop.is_set():
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if self._sent_before_interrupt(frame):
                continue  # interrupted speech still on its way when the interrupt came
            frame.pts = None
            session = resample_mono(to_session, frame)
            output = resample_mono(to_output, frame)
            self.stats.audio_chunks_in += 1
            item = (time.monotonic(), session, output)
            try:
                self._input.put_nowait(item)
            except queue.Full:  # the worker is stalled: drop the oldest, keep the newest
                with contextlib.suppress(queue.Empty):
                    self._input.get_nowait()
                self._input.put_nowait(item)

    def _sent_before_interrupt(self, frame: av.AudioFrame) -> bool:
        """Whether the client sent this frame before the last interrupt: its capture time
        (pts on the sender's clock, mapped to ours by the lowest arrival - pts seen, i.e.
        the fastest delivery) predates the interrupt. Such frames were decoded or in flight
        when the interrupt came (aiortc queues decoded audio in the track)."""
        if frame.pts is None or frame.time_base is None:
            return False
        sent = float(frame.pts * frame.time_base)
        if self._sender_offset is None or sent < self._last_sent - 3600.0:  # start, wrap
            self._sender_offset = time.monotonic() - sent
        self._sender_offset = min(self._sender_offset, time.monotonic() - sent)
        self._last_sent = sent
        return sent + self._sender_offset < self._interrupted_at

    def interrupt(self) -> None:
        """Barge-in: drop queued audio and motion; the face eases back to idle. Audio the
        client sent before now is dropped on arrival too (event loop: same thread as
        ``consume``)."""
        self.stats.interrupts += 1
        self._interrupted_at = time.monotonic()
        self._interrupt.set()

    # -- worker thread ---------------------------------------------------------------------

    def _work(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    item: tuple[float, np.ndarray, np.ndarray] | None = self._input.get(
                        timeout=IDLE_POLL_S
                    )
                except queue.Empty:
                    item = None
                if self._interrupt.is_set():
                    self._handle_interrupt()
                    item = None  # taken before the interrupt was seen: it is interrupted speech
                if item is None:
                    self._fill_silence()
                else:
                    self._append_arrival(*item)
                self._render_ready()
                self._encode_stored()
        except Exception:  # a broken session must not take the server down
            log.exception("session %s worker failed", self.id)
            self._stop.set()

    def _fill_silence(self) -> None:
        """No audio (lost packets, a stalled or silent sender, no mic at all): the clock goes
        on in silence, ``STALL_FILL_S`` behind while audio may still come, then up to now."""
        now = time.monotonic()
        stalled = now - self._last_arrival > STALL_FILL_S
        gap = self.clock.samples_due(now if stalled else now - STALL_FILL_S) - self._written
        if stalled:
            self._need_anchor = True  # the next audio lands at its arrival, not after this
        if gap > 0:
            self.stats.audio_inserted_samples += gap
            self._append(np.zeros(gap, np.float32), np.zeros(gap * 3, np.float32))

    def _append_arrival(self, arrival: float, session: np.ndarray, output: np.ndarray) -> None:
        """Place a chunk so that its end belongs to its arrival time, within tolerances.

        The first chunk, and the first after a stall, lands exactly at its arrival: silence
        before it, or the part overlapping the silence filled during the stall cut. Late
        audio makes late frames (the compute margin is small), so lateness is corrected:
        at once beyond ``JITTER_S`` (a stall), and when every chunk of
        the last ``LATE_WINDOW`` was more than ``LATE_S`` late (a steady offset, e.g. the
        sender's first packet left early), by the smallest of those delays; single late
        chunks (jitter) are left alone. Audio placed later than its arrival adds delay to
        everything after it: it is cut at once beyond ``JITTER_S`` (a burst), and when every
        chunk of the last ``LATE_WINDOW`` was more than ``LATE_S`` early (a steady offset, e.g.
        the first chunk arrived late and anchored the session late), by the smallest of those
        leads. Each correction is a short silence or cut in the returned audio."""
        self._last_arrival = arrival
        behind = self.clock.samples_due(arrival) - (self._written + len(session))
        self._lateness.append(behind)
        full = len(self._lateness) == LATE_WINDOW
        steady_late = min(self._lateness) if full else 0
        steady_early = -max(self._lateness) if full else 0
        insert = trim = 0
        if behind > int(JITTER_S * SAMPLE_RATE) or (self._need_anchor and behind > 0):
            insert = behind
        elif self._need_anchor and behind < 0:  # overlaps the silence filled in a stall
            trim = -behind
        elif steady_late > int(LATE_S * SAMPLE_RATE):
            insert = steady_late
        elif -behind > int(JITTER_S * SAMPLE_RATE):  # running ahead: trim the oldest part
            trim = -behind
        elif steady_early > int(LATE_S * SAMPLE_RATE):
            trim = steady_early
        if trim:
            trim = min(len(session), trim)
            session, output = session[trim:], output[trim * 3 :]
            self.stats.audio_trimmed_samples += trim
            self._lateness.clear()
        if insert:
            self.stats.audio_inserted_samples += insert
            self._append(np.zeros(insert, np.float32), np.zeros(insert * 3, np.float32))
            self._lateness.clear()
        self._need_anchor = False
        if len(session):
            self._append(session, output)

    def _append(self, session: np.ndarray, output: np.ndarray) -> None:
        t0 = time.perf_counter()
        ready = self._stream.push(session)
        self.metrics.motion_ms.observe((time.perf_counter() - t0) * 1000)
        with self._out_lock:
            self._out_audio.write(output)
        self._written += len(session)
        self._pending.extend(ready)

    def _render_ready(self) -> None:
        pending, self._pending = self._pending, []
        for k, motion in pending:
            # A frame that cannot be ready in time is not rendered (not sent; the video track
            # counts it): under overload the renderer catches up instead of falling further
            # behind.
            if not self._render_in_time(k, motion, self.clock.frame_due(k)):
                # Relax the estimate while skipping, so a slow spell cannot lock rendering out.
                self._render_estimate *= 0.8

    def _render_in_time(self, k: int, motion: np.ndarray, due: float) -> bool:
        """Render frame k in a render slot unless it cannot be ready by ``due`` (checked
        before queueing for the slot and again once it is ours); whether it was rendered."""
        needed = self._render_estimate + self._encode_estimate
        if time.monotonic() + needed > due:
            return False
        queued = time.monotonic()
        with self._slots.slot(due):
            start = time.monotonic()
            self.metrics.render_wait_ms.observe((start - queued) * 1000)
            if start + needed > due:
                return False
            try:
                yuv = self._render(motion)
            except RenderError:  # the pool replaced a dead process: this frame is not sent
                log.exception("session %s: frame %d not rendered", self.id, k)
                return False
            done = time.monotonic()
        spent = done - start
        self.metrics.render_ms.observe(spent * 1000)
        self._render_estimate += 0.1 * (spent - self._render_estimate)
        complete = (
            self.clock.t0
            + ((k + 1) * SAMPLES_PER_FRAME + self._stream.generator.lookahead_samples) / SAMPLE_RATE
        )
        self.metrics.audio_to_frame_ms.observe(max(0.0, done - complete) * 1000)
        return self._store(k, yuv)

    def _store(self, k: int, yuv: np.ndarray) -> bool:
        """Encode and queue rendered frame k for the video track, or keep it until the track
        starts; False if it came too late to be sent."""
        start = self._encoded.start_index
        if start is None:
            self._frames[k] = yuv  # a later frame of the same index replaces it
            for old in [i for i in self._frames if i < k - FRAME_STORE]:
                del self._frames[old]
            return True
        return k >= start and self._encode(k, yuv)

    def _encode_stored(self) -> None:
        """Once the video track has started, send it the frames rendered before."""
        if self._frames and self._encoded.start_index is not None:
            frames, self._frames = self._frames, {}
            for k in sorted(frames):
                self._store(k, frames[k])

    def _encode(self, k: int, yuv: np.ndarray) -> bool:
        """Encode frame k and queue it, unless a frame of its index was queued already (a
        closing frame of an interrupt); False if it would be late, or the track stopped."""
        due = self.clock.frame_due(k)
        if k <= self._last_encoded:
            return True
        if time.monotonic() + self._encode_estimate > due:
            return False
        start = time.perf_counter()
        encoded = self._vp8.encode(yuv, k)
        spent = time.perf_counter() - start
        self.metrics.encode_ms.observe(spent * 1000)
        self._encode_estimate += 0.1 * (spent - self._encode_estimate)
        self.metrics.ready_margin_ms.observe((due - time.monotonic()) * 1000)
        self._last_encoded = k
        if not self._encoded.put(k, encoded):  # the track stopped taking frames
            self._encoded.discard_unsent()
            self._vp8.request_keyframe()  # the dropped frames were the references
            return False
        return True

    def _handle_interrupt(self) -> None:
        self._interrupt.clear()
        while True:
            try:
                self._input.get_nowait()
            except queue.Empty:
                break
        self._stream.generator.reset()
        self._pending = []
        # The frames past the one sent last belong to the interrupted speech; those already
        # encoded were the references of what follows, so the next frame is a keyframe.
        shown = self._encoded.discard_unsent()
        if self._last_encoded > shown:
            self._vp8.request_keyframe()
            self._last_encoded = shown
        for k in [i for i in self._frames if i > shown]:
            del self._frames[k]
        with self._out_lock:
            self._muted_before = self._out_audio.end
        # The audio dropped above (and in ``consume``) leaves a gap: the next chunk lands at
        # its arrival time, or every frame after it would be late by the gap.
        self._need_anchor = True
        self._lateness.clear()
        self._close_mouth_after(shown)

    def _close_mouth_after(self, shown: int) -> None:
        """The frames past the one sent last belong to the interrupted speech: re-render the
        ones already generated, and at least ``CLOSE_FRAMES``, with the mouth closing (as
        fast as the generators close it); the reset generator's frames follow them. If the
        generator cannot make its first frames in time (the gap), the receiver keeps a closed
        mouth, not the open one on screen. The generator then eases on from the closed
        mouth."""
        ahead = max(0, self._stream.next_frame - shown - 1)
        latest = self._stream.buffer.latest()
        motions = list(self._stream.buffer.last(min(ahead, len(self._stream.buffer))))
        motions += [latest] * (max(ahead, CLOSE_FRAMES) - len(motions))
        closing = latest
        for i, motion in enumerate(motions):
            closing = motion.copy()
            closing[MOUTH_FIELDS] *= MOUTH_CLOSE_RATE ** (i + 1)
            k = shown + 1 + i
            with self._slots.slot(self.clock.frame_due(k)):
                yuv = self._render(closing)
            self._store(k, yuv)
        self._stream.buffer.clear_to(closing)

    # -- output (event loop) ------------------------------------------------------------------

    def output_audio(self, start: int, count: int) -> np.ndarray:
        """Output samples [start, start + count) at 48 kHz; silence where there are none."""
        with self._out_lock:
            try:
                chunk = self._out_audio.read(start, start + count)
            except ValueError:
                return np.zeros(count, np.float32)
            if start < self._muted_before:
                chunk[: min(count, self._muted_before - start)] = 0.0
            return chunk


class AvatarVideoTrack(MediaStreamTrack):
    """The avatar's encoded frames, each handed to aiortc at its send time (25 fps on the
    session clock); aiortc only packetizes them (stream_server.video_codec)."""

    kind = "video"

    def __init__(self, session: Session) -> None:
        super().__init__()
        self._session = session

    def request_keyframe(self) -> None:
        """The receiver lost a frame (PLI/FIR): the next one encoded is a keyframe."""
        self._session._vp8.request_keyframe()

    async def recv(self) -> EncodedVideoFrame:  # type: ignore[override]
        session, frames = self._session, self._session._encoded
        clock = session.clock
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
        session.metrics.send_late_ms.observe((time.monotonic() - clock.frame_due(k)) * 1000)
        if k - previous > 1:  # frames that could not be ready in time
            session.stats.frames_dropped += k - previous - 1
            session.metrics.frames_dropped.inc(k - previous - 1)
        session.stats.frames_sent += 1
        session.metrics.frames_delivered.inc()
        return encoded


class DelayedAudioTrack(MediaStreamTrack):
    """The client's audio, returned at the same delay as the video (48 kHz, 20 ms frames).

    Packet n (pts 960 n) is sent when its first sample is due (``SessionClock.audio_due``)
    and holds the output samples from ``OPUS_DELAY`` on: Opus delays what it encodes by that
    much and RTP does not say so (no pre-skip), so the receiver's decoded sound is on time."""

    kind = "audio"

    def __init__(self, session: Session) -> None:
        super().__init__()
        self._session = session
        self._next: int | None = None  # output chunk index (20 ms)

    def due(self, n: int) -> float:
        """When packet ``n`` is sent."""
        return self._session.clock.audio_due(n * SAMPLE_RATE // 50)

    def packet(self, n: int) -> av.AudioFrame:
        """Packet ``n``: its 20 ms of output audio, advanced by Opus's delay."""
        samples = self._session.output_audio(n * OUTPUT_CHUNK + OPUS_DELAY, OUTPUT_CHUNK)
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = OUTPUT_RATE
        frame.pts = n * OUTPUT_CHUNK
        frame.time_base = fractions.Fraction(1, OUTPUT_RATE)
        return frame

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        clock = self._session.clock
        if self._next is None:
            self._next = max(0, int(np.ceil((time.monotonic() - clock.t0 - clock.latency_s) * 50)))
        n = self._next
        now = time.monotonic()
        if now - self.due(n) > 0.1:  # fell behind: skip ahead rather than queue delay
            n += int((now - self.due(n)) * 50)
        await asyncio.sleep(max(0.0, self.due(n) - time.monotonic()))
        self._session.metrics.send_late_ms.observe((time.monotonic() - self.due(n)) * 1000)
        self._next = n + 1
        return self.packet(n)
