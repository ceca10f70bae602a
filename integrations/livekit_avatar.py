"""The avatar as a LiveKit Agents avatar worker (docs/integrations/livekit.md).

LiveKit Agents' avatar protocol, as ``livekit.agents.voice.avatar`` implements it: the agent
streams its TTS audio to the avatar participant on the byte-stream topic ``lk.audio_stream``
(one stream per speech segment, attributes ``sample_rate`` and ``num_channels``), calls the
RPC ``lk.clear_buffer`` on barge-in, and is told ``lk.playback_started`` and
``lk.playback_finished`` (``playback_position``, ``interrupted``); the avatar publishes video
and audio tracks on the agent's behalf (its token carries ``lk.publish_on_behalf``). All of
that wire format is livekit-agents' own code (``DataStreamAudioReceiver``, ``AvatarRunner``
with its ``AVSynchronizer``); this module adds the face: ``EmoteVideoGenerator``, their
``VideoGenerator`` over the push core ``engines.avatar_frames`` (the same motion stream,
renderer and barge-in mouth closing as `emote serve`).

``run_avatar`` runs it in a connected room; ``serve_worker`` registers a worker with a LiveKit
server (explicit dispatch by agent name, load reported as sessions / capacity), and each
job joins its room with a token of its own: kind agent, the identity the dispatch names,
``lk.publish_on_behalf`` the agent's identity.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import cv2
import numpy as np
from livekit import api, rtc
from livekit.agents.voice.avatar import (
    AudioSegmentEnd,
    AvatarOptions,
    AvatarRunner,
    DataStreamAudioReceiver,
    VideoGenerator,
)

from contracts.clock import FPS
from contracts.style import Style
from engines.avatar_frames import AvatarFrame, AvatarFrames
from integrations.avatar_setup import AvatarSettings, make_core

log = logging.getLogger(__name__)

PUBLISH_ON_BEHALF = "lk.publish_on_behalf"  # livekit.agents.types.ATTRIBUTE_PUBLISH_ON_BEHALF
AUDIO_RATE = 24_000  # the tracks' rate (TTS engines mostly speak 24 kHz; others resampled)
QUEUE_MS = 100  # AvatarRunner's synchronizer queue: what plays out after a barge-in at most
INPUT_QUEUE = 100  # audio frames (livekit's receiver cuts 100 ms ones: 10 s) before backpressure
IDENTITY = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")

T = TypeVar("T")


class WorkerConfigError(ValueError):
    """A job's configuration (its dispatch metadata, the worker's options) is unusable; the
    message is one line for the user."""


# -- the face -----------------------------------------------------------------------------


class EmoteVideoGenerator(VideoGenerator):
    """livekit-agents' ``VideoGenerator`` drawing the emote face: audio frames in (any rate,
    any channel count), 25 fps RGBA video frames and 24 kHz audio frames out, idle frames
    (blinking, breathing) while no audio comes, ``AudioSegmentEnd`` after each segment.

    The core runs on one worker thread; a barge-in (``clear_buffer``) drops the queued audio,
    frames not yet handed to the synchronizer and the synchronizer's own queue, and the next
    frames shut the mouth."""

    def __init__(self, core: AvatarFrames, size: int) -> None:
        self._core = core
        self.options = AvatarOptions(
            video_width=size,
            video_height=size,
            video_fps=FPS,
            audio_sample_rate=core.rate,
            audio_channels=1,
        )
        # (epoch when queued, item): an item queued before a barge-in is never drawn, even
        # when the barge-in runs between the queue handing it over and the loop reading it
        self._queue: asyncio.Queue[tuple[int, np.ndarray | AudioSegmentEnd]] = asyncio.Queue(
            INPUT_QUEUE
        )
        self._resampler: rtc.AudioResampler | None = None
        self._resampler_rate = 0
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="emote-livekit")
        self._av_sync: rtc.AVSynchronizer | None = None
        self._epoch = 0  # bumped by each barge-in: work started before it is dropped
        self._in_segment = False  # audio of a segment came, its AudioSegmentEnd not yet
        self._discarding = False  # after a barge-in: the interrupted segment's stragglers
        self.frames_out = 0
        self.clears = 0

    def attach(self, av_sync: rtc.AVSynchronizer) -> None:
        """The runner's synchronizer: idle frames wait while it holds frames, and a barge-in
        empties it."""
        self._av_sync = av_sync

    def set_style(self, style: Style) -> None:
        self._executor.submit(self._core.generator.set_style, style)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def push_audio(self, frame: rtc.AudioFrame | AudioSegmentEnd) -> None:
        if isinstance(frame, AudioSegmentEnd):
            self._in_segment = self._discarding = False
        else:
            self._in_segment = True
            if self._discarding:  # in flight when the barge-in came (the receiver still
                return  # ends the interrupted segment with an AudioSegmentEnd)
        if isinstance(frame, AudioSegmentEnd):
            if self._resampler is not None:
                for tail in self._resampler.flush():
                    await self._queue.put((self._epoch, _mono(tail)))
                self._resampler = None
            await self._queue.put((self._epoch, frame))
            return
        if frame.sample_rate == self._core.rate:
            await self._queue.put((self._epoch, _mono(frame)))
            return
        if self._resampler is None or self._resampler_rate != frame.sample_rate:
            self._resampler = rtc.AudioResampler(
                input_rate=frame.sample_rate, output_rate=self._core.rate, num_channels=1
            )
            self._resampler_rate = frame.sample_rate
        mono = _mono(frame)
        as_frame = rtc.AudioFrame(mono.tobytes(), frame.sample_rate, 1, len(mono))
        for out in self._resampler.push(as_frame):
            await self._queue.put((self._epoch, _mono(out)))

    async def clear_buffer(self) -> None:
        self.clears += 1
        self._epoch += 1
        self._discarding = self._in_segment
        while not self._queue.empty():
            self._queue.get_nowait()
        self._resampler = None
        if self._av_sync is not None:  # first: the runner's audio push in flight returns now
            await self._av_sync.clear_queue()
        await self._run(self._core.clear_buffer)
        if self._av_sync is not None:  # and what that push put in meanwhile
            await self._av_sync.clear_queue()

    def __aiter__(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        return self._frames()

    async def _frames(self) -> AsyncIterator[rtc.VideoFrame | rtc.AudioFrame | AudioSegmentEnd]:
        while True:
            item: np.ndarray | AudioSegmentEnd | None
            try:
                queued_at, item = await asyncio.wait_for(self._queue.get(), timeout=0.5 / FPS)
            except TimeoutError:
                if self._av_sync is not None and self._av_sync._video_queue.qsize() > 1:
                    continue  # frames are waiting: no idle frame in between
                queued_at, item = self._epoch, None
            epoch = self._epoch
            if queued_at != epoch:
                continue  # queued before a barge-in
            if item is None:
                frames = await self._run(self._core.idle)
            elif isinstance(item, AudioSegmentEnd):
                frames = await self._run(self._core.end_segment)
            else:
                frames = await self._run(self._core.push_audio, item)
            if epoch != self._epoch:
                continue  # a barge-in came while these were drawn: interrupted speech
            for frame in frames:
                if epoch != self._epoch:
                    break  # a barge-in came while these were handed on
                yield self._video(frame)
                if frame.audio is not None and epoch == self._epoch:
                    yield rtc.AudioFrame(
                        frame.audio.tobytes(), self._core.rate, 1, len(frame.audio)
                    )
                self.frames_out += 1
            if isinstance(item, AudioSegmentEnd):
                yield item

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @staticmethod
    def _video(frame: AvatarFrame) -> rtc.VideoFrame:
        rgba = cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2RGBA)
        height, width = rgba.shape[:2]
        return rtc.VideoFrame(width, height, rtc.VideoBufferType.RGBA, rgba.tobytes())


def _mono(frame: rtc.AudioFrame) -> np.ndarray:
    pcm = np.frombuffer(frame.data, np.int16).reshape(-1, frame.num_channels)
    if frame.num_channels == 1:
        return pcm[:, 0].copy()
    return pcm.mean(axis=1).astype(np.int16)


def make_video_generator(settings: AvatarSettings) -> EmoteVideoGenerator:
    """A fresh generator for one session (its own motion state and clock)."""
    core, size = make_core(settings, AUDIO_RATE)
    return EmoteVideoGenerator(core, size)


async def run_avatar(
    room: rtc.Room,
    video_gen: EmoteVideoGenerator,
    sender_identity: str | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve one agent in a connected ``room`` until it leaves, the room disconnects or
    ``stop`` is set: livekit-agents' receiver and runner around ``video_gen``."""
    stop = stop if stop is not None else asyncio.Event()
    receiver = DataStreamAudioReceiver(room, sender_identity=sender_identity)
    runner = AvatarRunner(
        room,
        audio_recv=receiver,
        video_gen=video_gen,
        options=video_gen.options,
        _queue_size_ms=QUEUE_MS,
    )
    video_gen.attach(runner.av_sync)

    def on_left(participant: rtc.RemoteParticipant) -> None:
        if sender_identity is None or participant.identity == sender_identity:
            stop.set()

    room.on("participant_disconnected", on_left)
    room.on("disconnected", lambda *_: stop.set())
    try:
        await runner.start()
        await stop.wait()
    finally:
        room.off("participant_disconnected", on_left)
        await runner.aclose()
        video_gen.close()


# -- the worker -----------------------------------------------------------------------------


@dataclass(frozen=True)
class JobRequest:
    """A dispatch's metadata (JSON): ``agent_identity`` (required: whom the avatar speaks
    for), ``avatar_identity`` (default ``emote-avatar-<agent_identity>``), ``avatar`` (a
    prepared avatar's id; default the worker's portrait), ``style`` (``name[:intensity]``)."""

    agent_identity: str
    avatar_identity: str
    avatar: str | None = None
    style: Style | None = None

    @classmethod
    def parse(cls, metadata: str) -> JobRequest:
        try:
            data = json.loads(metadata or "{}")
        except json.JSONDecodeError as e:
            raise WorkerConfigError(f"dispatch metadata is not JSON: {e.msg}") from e
        if not isinstance(data, dict):
            raise WorkerConfigError("dispatch metadata must be a JSON object")
        unknown = set(data) - {"agent_identity", "avatar_identity", "avatar", "style"}
        if unknown:
            raise WorkerConfigError(f"unknown dispatch metadata keys: {', '.join(sorted(unknown))}")
        agent = data.get("agent_identity")
        if not isinstance(agent, str) or not IDENTITY.match(agent):
            raise WorkerConfigError("dispatch metadata needs agent_identity (the agent's identity)")
        identity = data.get("avatar_identity", f"emote-avatar-{agent}")
        if not isinstance(identity, str) or not IDENTITY.match(identity):
            raise WorkerConfigError(f"bad avatar_identity {identity!r}")
        avatar = data.get("avatar")
        if avatar is not None and not (
            isinstance(avatar, str) and re.fullmatch(r"[0-9a-f]{8,64}", avatar)
        ):
            raise WorkerConfigError("avatar must be a prepared avatar's id (hex)")
        style = data.get("style")
        if style is not None:
            if not isinstance(style, str):
                raise WorkerConfigError("style must be a string such as 'happy:0.8'")
            try:
                style = Style.parse(style)
            except ValueError as e:
                raise WorkerConfigError(str(e)) from e
        return cls(agent, identity, avatar, style)


def avatar_token(
    api_key: str, api_secret: str, room: str, request: JobRequest, ttl_s: int = 3600
) -> str:
    """The avatar's join token: kind agent, the requested identity, allowed into ``room``
    only, publishing on behalf of the agent."""
    from datetime import timedelta

    return (
        api.AccessToken(api_key, api_secret)
        .with_kind("agent")
        .with_identity(request.avatar_identity)
        .with_name("emote avatar")
        .with_grants(api.VideoGrants(room_join=True, room=room))
        .with_attributes({PUBLISH_ON_BEHALF: request.agent_identity})
        .with_ttl(timedelta(seconds=ttl_s))
        .to_jwt()
    )


@dataclass
class WorkerState:
    """A worker's settings and its running sessions (the load it reports)."""

    url: str
    api_key: str
    api_secret: str
    settings: AvatarSettings
    max_sessions: int
    active: set[str] = field(default_factory=set)

    def load(self) -> float:
        return len(self.active) / self.max_sessions


async def serve_job(state: WorkerState, room_name: str, metadata: str) -> None:
    """One dispatched job: parse its request, join ``room_name`` as the avatar, serve the
    agent until it leaves."""
    request = JobRequest.parse(metadata)
    settings = state.settings
    if request.avatar is not None:
        settings = dataclasses.replace(settings, portrait=request.avatar)
    if request.style is not None:
        settings = dataclasses.replace(settings, style=request.style)
    video_gen = await asyncio.to_thread(make_video_generator, settings)
    token = avatar_token(state.api_key, state.api_secret, room_name, request)
    room = rtc.Room()
    state.active.add(room_name)
    try:
        await room.connect(state.url, token)
        await run_avatar(room, video_gen, sender_identity=request.agent_identity)
    finally:
        state.active.discard(room_name)
        await room.disconnect()


def serve_worker(state: WorkerState, agent_name: str = "emote-avatar") -> None:
    """Register with the LiveKit server at ``state.url`` and serve dispatched jobs until
    stopped (explicit dispatch: ``agent_name``; jobs run as threads of this process, which
    holds the renderer graph and the avatar cache once; onnxruntime and OpenCV release the
    GIL)."""
    from livekit.agents import AgentServer, JobContext, JobExecutorType

    server = AgentServer(
        job_executor_type=JobExecutorType.THREAD,
        ws_url=state.url,
        api_key=state.api_key,
        api_secret=state.api_secret,
        load_fnc=state.load,
        # a node with every session taken reports itself full
        load_threshold=(state.max_sessions - 0.5) / state.max_sessions,
    )

    async def entrypoint(ctx: JobContext) -> None:
        await serve_job(state, ctx.job.room.name, ctx.job.metadata)

    server.rtc_session(entrypoint, agent_name=agent_name)
    asyncio.run(server.run())
