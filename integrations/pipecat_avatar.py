"""The avatar as a Pipecat video service (docs/integrations/pipecat.md).

``EmoteVideoService`` sits between the TTS and the output transport, as Pipecat's hosted
avatar services do. It consumes ``TTSAudioRawFrame`` s and emits, for each 40 ms video
frame, an ``OutputImageRawFrame`` marked ``sync_with_audio`` followed by that frame's audio
as a ``TTSAudioRawFrame``. Pipecat's output transport then shows each image when the audio
before it has been sent. Without TTS audio it emits idle frames (blinking, breathing) at
25 fps of wall clock. The transport shows the latest image at its ``video_out_framerate``
(25): leave ``video_out_is_live`` off, because Pipecat's live video queue does not show the
images that ride with the audio. ``TTSStoppedFrame`` ends a segment.
``InterruptionFrame`` or ``UserStartedSpeakingFrame`` drops what was not emitted, and the
next 3 frames shut the mouth. The transport clears its own queues on the same
``InterruptionFrame``.

The frames come from the same push core as the LiveKit worker (``engines.avatar_frames``:
the live server's ``MotionStream``, renderer and barge-in mouth closing). The core runs on
one worker thread of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
from pipecat.audio.utils import create_stream_resampler
from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    Frame,
    InterruptionFrame,
    OutputImageRawFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStoppedFrame,
    UserStartedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from contracts.clock import FPS
from engines.avatar_frames import AvatarFrame, AvatarFrames
from integrations.avatar_setup import AvatarSettings, make_core

AUDIO_RATE = 24_000  # the audio it emits (TTS audio at other rates is resampled)
FRAME_S = 1.0 / FPS

T = TypeVar("T")


class EmoteVideoService(FrameProcessor):
    """TTS audio in; lip-synced 25 fps images and the audio they show out.

    ``settings`` picks the portrait, motion generator, style and renderer
    (``integrations.avatar_setup``); ``core`` replaces them with a ready push core, with the
    frame ``size``.
    """

    def __init__(
        self,
        settings: AvatarSettings | None = None,
        *,
        core: AvatarFrames | None = None,
        size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if core is None:
            core, size = make_core(settings or AvatarSettings(), AUDIO_RATE)
        if size is None:
            raise ValueError("a given core needs its frame size")
        self._core = core
        self._size = size
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="emote-pipecat")
        self._resampler = create_stream_resampler()
        self._lock = asyncio.Lock()  # one draw-and-push at a time: frames leave in order
        self._epoch = 0  # bumped by each interruption: frames drawn before it are dropped
        self._audio_until = 0.0  # when the audio emitted so far ends playing (monotonic)
        self._idle_task: asyncio.Task[None] | None = None
        self.frames_out = 0
        self.interruptions = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            if self._idle_task is None:
                self._idle_task = self.create_task(self._idle_loop())
        elif isinstance(frame, (EndFrame, CancelFrame)):
            await self._stop()
            await self.push_frame(frame, direction)
        elif isinstance(frame, TTSAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            pcm = await self._mono_at_rate(frame)
            await self._draw(self._core.push_audio, pcm)
        elif isinstance(frame, TTSStoppedFrame):
            await self._draw(self._core.end_segment)
            await self.push_frame(frame, direction)
        elif isinstance(frame, (InterruptionFrame, UserStartedSpeakingFrame)):
            await self._interrupt()
            await self.push_frame(frame, direction)
        else:
            await self.push_frame(frame, direction)

    async def _mono_at_rate(self, frame: TTSAudioRawFrame) -> np.ndarray:
        pcm = np.frombuffer(frame.audio, np.int16)
        if frame.num_channels > 1:
            pcm = pcm.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
        if frame.sample_rate == self._core.rate:
            return pcm
        out = await self._resampler.resample(pcm.tobytes(), frame.sample_rate, self._core.rate)
        return np.frombuffer(out, np.int16)

    async def _interrupt(self) -> None:
        self.interruptions += 1
        self._epoch += 1
        self._audio_until = 0.0
        await self._run(self._core.clear_buffer)

    async def _draw(self, step: Callable[..., list[AvatarFrame]], *args: Any) -> None:
        """Run one step of the core and push what it made, unless interrupted meanwhile."""
        async with self._lock:
            epoch = self._epoch
            frames = await self._run(step, *args)
            for frame in frames:
                if epoch != self._epoch:
                    return  # interrupted speech
                await self._push(frame)

    async def _push(self, frame: AvatarFrame) -> None:
        image = OutputImageRawFrame(
            image=frame.rgb.tobytes(), size=(self._size, self._size), format="RGB"
        )
        if frame.audio is None:
            await self.push_frame(image)  # idle: shown at once (paced by _idle_loop)
        else:
            image.sync_with_audio = True  # shown when the audio before it has been sent
            await self.push_frame(image)
            await self.push_frame(TTSAudioRawFrame(frame.audio.tobytes(), self._core.rate, 1))
            now = time.monotonic()
            self._audio_until = max(self._audio_until, now) + FRAME_S
        self.frames_out += 1

    async def _idle_loop(self) -> None:
        """25 idle frames a second while no emitted audio is playing."""
        next_at = time.monotonic()
        while True:
            next_at += FRAME_S
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if time.monotonic() < self._audio_until or self._lock.locked():
                continue  # speech is playing or being drawn: its frames carry the video
            if next_at < time.monotonic() - 5 * FRAME_S:
                next_at = time.monotonic()  # fell behind (a stall): do not burst
            await self._draw(self._core.idle)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _stop(self) -> None:
        if self._idle_task is not None:
            await self.cancel_task(self._idle_task)
            self._idle_task = None
        self._executor.shutdown(wait=False, cancel_futures=True)
