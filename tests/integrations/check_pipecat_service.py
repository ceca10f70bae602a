"""The Pipecat service's own behaviour, run with pytest in .venv-integrations by
tests/test_pipecat_avatar.py: what it passes through, what it consumes and re-emits, and
how it pairs each image with its audio. A small renderer double keeps these fast (the full
renderer runs in pipecat_scenario.py)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from pipecat.frames.frames import (
    EndFrame,
    Frame,
    OutputImageRawFrame,
    TextFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from engines.avatar_frames import AvatarFrames
from engines.dsp_motion import DspMotionGenerator
from integrations.pipecat_avatar import EmoteVideoService


class Collect(FrameProcessor):
    def __init__(self) -> None:
        super().__init__()
        self.frames: list[Frame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == FrameDirection.DOWNSTREAM:
            self.frames.append(frame)
        await self.push_frame(frame, direction)


def service() -> EmoteVideoService:
    core = AvatarFrames(
        lambda m: np.full((len(m), 8, 8, 3), 7, np.uint8), DspMotionGenerator(), rate=24_000
    )
    return EmoteVideoService(core=core, size=8)


def run(frames: list[Frame], settle_s: float = 0.3) -> list[Frame]:
    sink = Collect()
    worker = PipelineWorker(
        Pipeline([service(), sink]),
        params=PipelineParams(audio_out_sample_rate=24_000),
        idle_timeout_secs=None,
        enable_rtvi=False,
    )

    async def main() -> None:
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        running = asyncio.create_task(runner.run())
        await worker.queue_frames(frames)
        await asyncio.sleep(settle_s)
        await worker.queue_frame(EndFrame())
        await asyncio.wait_for(running, 10)

    asyncio.run(main())
    return sink.frames


def test_a_core_needs_its_size() -> None:
    core = AvatarFrames(lambda m: m, DspMotionGenerator())
    with pytest.raises(ValueError, match="frame size"):
        EmoteVideoService(core=core)


def test_speech_becomes_images_each_followed_by_its_audio() -> None:
    rng = np.random.default_rng(0)
    stereo48 = (rng.normal(0, 3000, (48_000, 2))).astype(np.int16)  # 1 s, 48 kHz stereo
    tts = [
        TTSAudioRawFrame(stereo48[s : s + 960].tobytes(), 48_000, 2)
        for s in range(0, len(stereo48), 960)
    ]
    out = run([TTSStartedFrame(), TextFrame("hello"), *tts, TTSStoppedFrame()], settle_s=1.6)
    kinds = [type(f).__name__ for f in out]
    # control and text frames pass through in order, the raw TTS audio does not
    assert (
        kinds.index("TTSStartedFrame") < kinds.index("TextFrame") < kinds.index("TTSStoppedFrame")
    )
    spoken = [f for f in out if isinstance(f, TTSAudioRawFrame)]
    assert all(f.sample_rate == 24_000 and f.num_channels == 1 for f in spoken)
    assert all(len(f.audio) == 960 * 2 for f in spoken)  # one 40 ms video frame each
    assert len(spoken) == pytest.approx(25, abs=1)  # 1 s, resampled to 24 kHz mono
    for i, frame in enumerate(out):
        if isinstance(frame, TTSAudioRawFrame):
            image = out[i - 1]
            assert isinstance(image, OutputImageRawFrame) and image.sync_with_audio
            assert image.size == (8, 8) and image.format == "RGB"
    idle = [f for f in out if isinstance(f, OutputImageRawFrame) and not f.sync_with_audio]
    assert idle, "no idle frames once the speech had played"
    # every frame's audio is the speech (scaled to mono), none of it lost or doubled
    joined = np.concatenate([np.frombuffer(f.audio, np.int16) for f in spoken])
    assert abs(len(joined) - 24_000) <= 960


def test_idle_frames_at_25_fps_without_speech() -> None:
    out = run([], settle_s=1.0)
    images = [f for f in out if isinstance(f, OutputImageRawFrame)]
    assert 20 <= len(images) <= 30
    assert not any(isinstance(f, TTSAudioRawFrame) for f in out)
