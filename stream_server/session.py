"""One live session: microphone audio in, the avatar's video and the same audio out.

Timing (all on one clock, ``time.monotonic``): session sample i (16 kHz) belongs to wall time
``t0 + i / 16000``; video frame k (made from samples 640k..640k+639) is sent at
``t0 + k / 25 + latency`` and the returned audio sample i at ``t0 + (i - 320) / 16000 +
latency``, so each frame goes out with the middle of its own audio: the two tracks are
aligned by construction, whatever the session's length (the audio as the receiver decodes
it: each packet holds its sound 6.5 ms early, Opus's own delay, see ``tracks.OPUS_DELAY``).
``latency`` = one frame of audio + the motion generator's lookahead + a 1 ms guard + a compute
margin: the audio completing a frame's lookahead comes with the 20 ms packet that holds it,
and the packets are aligned to the frames so that this sample is one of the packet's last
(``clock_fit``, "Aligned to the frames"); unaligned, the latency would need a whole packet.
Arriving audio is placed at its arrival time: a gap (session start, a stall, a slow sender
clock, a steady offset) is filled with silence, audio running ahead (a burst, a fast sender
clock) is trimmed, each beyond a tolerance (``clock_fit.ArrivalFitter``), so queues cannot
grow and the delay stays what it was at the start.

Threads: the event loop receives and sends media; one worker thread per session runs the
motion generator, hands frames to the server's render processes (stream_server.render_pool)
through shared render slots (``deadline_render``), and encodes each rendered frame (VP8,
``frame_encoder``) ahead of its send time, so the video track (``tracks``) only hands the
encoded frame to aiortc when it is due. Queues are bounded; a frame that cannot be ready by
its send time is not rendered or not encoded, never queued late (the receiver shows the one
before); missing audio becomes silence (idle animation) so the clock never stalls.

The session's face: ``push_audio`` (audio in), ``clear_buffer`` (barge-in), and ``video`` /
``audio`` (the output tracks); ``consume`` reads an aiortc track into ``push_audio``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import cast

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCDataChannel
from aiortc.mediastreams import MediaStreamError

from contracts.clock import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from contracts.motion_channel import Puppet
from contracts.style import NEUTRAL, Style
from engines.audio_io import OUTPUT_RATE, mono_resampler, resample_mono
from engines.motion_stream import MotionGenerator, MotionStream
from stream_server.clock_fit import ALIGN_GUARD, ArrivalFitter, SessionClock
from stream_server.deadline_render import DeadlineRenderer
from stream_server.encoded_frames import EncodedFrames
from stream_server.frame_encoder import FRAME_STORE as FRAME_STORE
from stream_server.frame_encoder import FrameEncoder
from stream_server.metrics import Metrics
from stream_server.motion_channel import MotionChannel
from stream_server.render_slots import RenderSlots
from stream_server.session_stats import SessionStats as SessionStats
from stream_server.tracks import OPUS_DELAY as OPUS_DELAY
from stream_server.tracks import OUTPUT_CHUNK as OUTPUT_CHUNK
from stream_server.tracks import AvatarVideoTrack, DelayedAudioTrack, OutputAudio
from stream_server.video_codec import EncodedVideoFrame

log = logging.getLogger(__name__)

# Render (~10 ms on the CPU path) + wake-up + slack, for one session per core. Sessions that
# share a core stretch each other's render wall time, so the default scales with the load.
MARGIN_PER_LOAD_S = 0.03
IDLE_POLL_S = 0.01  # the worker checks this often for audio, and fills silence without it
INPUT_QUEUE_CHUNKS = 100  # 2 s of 20 ms chunks; beyond that the oldest are dropped


def default_margin_s(max_sessions: int, cpus: int | None = None) -> float:
    """The compute margin of a server of ``max_sessions``: 30 ms per session per core
    (``emote serve --margin-ms`` overrides it; docs/benchmarks.md has the measurements)."""
    cpus = max(1, cpus or os.cpu_count() or 1)
    return MARGIN_PER_LOAD_S * math.ceil(max(1, max_sessions) / cpus)


class Session:
    """Owns the clock, the motion stream, and the parts that render, encode and send."""

    def __init__(
        self,
        session_id: str,
        avatar_id: str,
        render: Callable[[np.ndarray], np.ndarray],
        generator: MotionGenerator,
        metrics: Metrics,
        margin_s: float = MARGIN_PER_LOAD_S,
        slots: RenderSlots | None = None,
        style: Style = NEUTRAL,
    ) -> None:
        self.id = session_id
        self.avatar_id = avatar_id
        self.metrics = metrics
        self.stats = SessionStats()
        self.created = time.monotonic()
        lookahead_s = generator.lookahead_samples / SAMPLE_RATE
        guard_s = ALIGN_GUARD / SAMPLE_RATE  # the packets are aligned to the frames
        self.clock = SessionClock(1.0 / FPS + lookahead_s + guard_s + margin_s)
        self.fitter = ArrivalFitter(self.clock, SAMPLES_PER_FRAME + generator.lookahead_samples)
        self._stream = MotionStream(generator, hop_frames=2)
        self.encoder = FrameEncoder(self.clock, metrics)
        self._renderer = DeadlineRenderer(
            session_id,
            render,
            slots if slots is not None else RenderSlots(1),  # shared by the server
            self.clock,
            self.encoder,
            metrics,
            generator.lookahead_samples,
        )
        self._input: queue.Queue[tuple[float, np.ndarray, np.ndarray]] = queue.Queue(
            INPUT_QUEUE_CHUNKS
        )
        self._out_audio = OutputAudio(capacity_seconds=3.0 * OUTPUT_RATE / SAMPLE_RATE)
        self._pending: list[tuple[int, np.ndarray]] = []  # generated, not yet rendered
        self._interrupt = threading.Event()
        self._interrupted_at = -1.0  # monotonic time of the last interrupt
        generator.set_style(style)
        self.style = style  # as last set; the worker hands it to the generator between hops
        self._style_applied = style
        self._sender_offset: float | None = None  # our clock - the sender's audio clock
        self._last_sent = 0.0
        self._stop = threading.Event()
        self._worker = threading.Thread(
            target=self._work, name=f"session-{session_id[:8]}", daemon=True
        )
        self.video = AvatarVideoTrack(
            self.encoder.queue, self.encoder.request_keyframe, self.clock, self.stats, metrics
        )
        self.audio = DelayedAudioTrack(self._out_audio, self.clock, metrics)
        self.motion_channel: MotionChannel | None = None
        self.mic_muted = False  # the avatar speaks text (stream_server.speaker): mic dropped
        # (fields a client set on the motion channel, until when): one tuple, replaced whole
        self._puppet: tuple[Puppet, float] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker (the server does when the peer connects: a session that is
        still connecting costs no CPU). The clock starts now: no audio can have been placed
        before, and frames for the time spent connecting would only be dropped."""
        self.clock.t0 = time.monotonic()
        self._worker.start()

    def stop(self) -> None:
        self._stop.set()
        self.video.stop()
        self.audio.stop()

    def join(self, timeout: float = 2.0) -> None:
        """Wait for the worker to end (after ``stop``), then free the encoder, whatever holds
        on to the session's objects (the peer connection's reference cycles keep them until
        the garbage collector runs). A worker never started has nothing to wait for."""
        if self._worker.ident is not None:
            self._worker.join(timeout)
        if not self._worker.is_alive():
            self.encoder.close()

    @property
    def alive(self) -> bool:
        return self._worker.is_alive()

    # -- input (event loop) ------------------------------------------------------------------

    def push_audio(
        self, samples: np.ndarray, output: np.ndarray, arrival: float | None = None
    ) -> None:
        """Queue a chunk of input audio for the worker: ``samples`` mono 16 kHz, ``output``
        the same audio mono at 48 kHz (what the audio track returns), ``arrival`` its arrival
        time (``time.monotonic``; now if not given). One caller thread at a time."""
        self.stats.audio_chunks_in += 1
        item = (time.monotonic() if arrival is None else arrival, samples, output)
        try:
            self._input.put_nowait(item)
        except queue.Full:  # the worker is stalled: drop the oldest, keep the newest
            with contextlib.suppress(queue.Empty):
                self._input.get_nowait()
            self._input.put_nowait(item)

    async def consume(self, track: MediaStreamTrack) -> None:
        """Read the client's audio until it ends; decoded 48 kHz frames from aiortc."""
        # The same resampling (and stereo downmix level) as offline rendering.
        to_session, to_output = mono_resampler(SAMPLE_RATE), mono_resampler(OUTPUT_RATE)
        while not self._stop.is_set():
            try:
                frame = cast(av.AudioFrame, await track.recv())  # an audio track
            except MediaStreamError:
                return
            if self._sent_before_interrupt(frame):
                continue  # interrupted speech still on its way when the interrupt came
            if self.mic_muted:
                continue  # the avatar is saying text: the microphone is not heard
            frame.pts = None
            self.push_audio(resample_mono(to_session, frame), resample_mono(to_output, frame))

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

    def clear_buffer(self) -> None:
        """Barge-in: drop queued audio and motion; the face eases back to idle. Audio the
        client sent before now is dropped on arrival too (event loop: same thread as
        ``consume``)."""
        self.stats.interrupts += 1
        self._interrupted_at = time.monotonic()
        self._interrupt.set()

    interrupt = clear_buffer  # the HTTP API's name (POST /api/sessions/{id}/interrupt)

    def attach_motion_channel(self, channel: RTCDataChannel) -> None:
        """Serve the client's ``motion`` data channel: each sent frame's motion out, puppet
        messages in (stream_server/motion_channel.py). The event loop's side."""
        self.motion_channel = MotionChannel(channel, self.set_puppet)
        self.video.frame_listeners.append(self.motion_channel.frame_sent)

    def set_puppet(self, puppet: Puppet) -> None:
        """Frames made from now until ``puppet.hold_s`` from now take the puppet's fields."""
        self._puppet = (puppet, time.monotonic() + puppet.hold_s)

    def set_style(self, style: Style) -> None:
        """Speak in ``style`` from the next hop on (the worker applies it between hops, so
        a hop never mixes two styles)."""
        self.style = style

    @property
    def interrupt_pending(self) -> bool:
        """An interrupt the worker has not handled yet."""
        return self._interrupt.is_set()

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
                style = self.style  # one read: the latest style set wins
                if style is not self._style_applied:
                    self._stream.generator.set_style(style)
                    self._style_applied = style
                if item is None:
                    self._fill_silence()
                else:
                    self.place_audio(*item)
                pending, self._pending = self._pending, []
                self._renderer.render_ready(pending)
                self.encoder.encode_stored()
        except Exception:  # a broken session must not take the server down
            log.exception("session %s… worker failed", self.id[:8])
            self._stop.set()

    def _fill_silence(self) -> None:
        """No audio: the clock goes on in silence (``ArrivalFitter.idle``)."""
        gap = self.fitter.idle(time.monotonic())
        if gap > 0:
            self.stats.audio_inserted_samples = self.fitter.inserted
            self._append(np.zeros(gap, np.float32), np.zeros(gap * 3, np.float32))

    def place_audio(self, arrival: float, samples: np.ndarray, output: np.ndarray) -> None:
        """(The worker's step for each chunk ``push_audio`` queued.) Place the chunk on the
        clock as ``ArrivalFitter.arrive`` decides: silence before it, or its start cut; feed
        it to the motion stream and the returned audio."""
        # Until the first frame is made, the clock may move to align the frames with the
        # packets (clock_fit): nothing was made from it yet.
        fit = self.fitter.arrive(arrival, len(samples), movable=self._stream.next_frame == 0)
        self.stats.audio_trimmed_samples = self.fitter.trimmed
        self.stats.audio_inserted_samples = self.fitter.inserted
        if fit.trim:
            samples, output = samples[fit.trim :], output[fit.trim * 3 :]
        if fit.insert:
            self._append(np.zeros(fit.insert, np.float32), np.zeros(fit.insert * 3, np.float32))
        if len(samples):
            self._append(samples, output)

    def _append(self, samples: np.ndarray, output: np.ndarray) -> None:
        t0 = time.perf_counter()
        ready = self._stream.push(samples)
        self.metrics.motion_ms.observe((time.perf_counter() - t0) * 1000)
        # One read: the worker never sees half an update. An expired puppet is left in place
        # (clearing it here could drop one the event loop set meanwhile).
        held = self._puppet
        if held is not None and ready and time.monotonic() < held[1]:
            ready = [(k, held[0].apply(m)) for k, m in ready]
        self._out_audio.write(output)
        self._pending.extend(ready)

    def _handle_interrupt(self) -> None:
        self._interrupt.clear()
        while True:
            try:
                self._input.get_nowait()
            except queue.Empty:
                break
        self._stream.generator.reset()
        self._pending = []
        # The frames past the one sent last belong to the interrupted speech (re-rendered
        # below with the mouth closing); the next frame encoded is a keyframe.
        shown = self.encoder.discard_unsent()
        self._out_audio.mute_written()
        # The audio dropped above (and in ``consume``) leaves a gap: the next chunk lands at
        # its arrival time, or every frame after it would be late by the gap.
        self.fitter.reanchor()
        self._renderer.close_mouth_after(shown, self._stream)

    @property
    def samples_placed(self) -> int:
        """Session samples (16 kHz, silence included) handed to the motion stream so far."""
        return self._stream.ring.end

    # -- output (event loop) ------------------------------------------------------------------

    @property
    def encoded(self) -> EncodedFrames[EncodedVideoFrame]:
        """The encoded frames on their way to the video track, in order."""
        return self.encoder.queue

    @property
    def output_audio_buffer(self) -> OutputAudio:
        """The returned audio's samples, for more readers on the same clock (viewers)."""
        return self._out_audio

    def output_audio(self, start: int, count: int) -> np.ndarray:
        """Output samples [start, start + count) at 48 kHz; silence where there are none."""
        return self._out_audio.read(start, count)
