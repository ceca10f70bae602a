"""A Pipecat pipeline with the emote video service, run in .venv-integrations by
tests/test_pipecat_avatar.py (which reads the recorded pixels with FaceMesh in .venv).

The pipeline is Pipecat's own (``Pipeline``, ``PipelineWorker``, ``WorkerRunner``) with
``EmoteVideoService`` feeding an output transport: Pipecat's ``BaseOutputTransport``, whose
audio queue, chunking, ``sync_with_audio`` images, live video queue and interruption handling
all run as they do in Daily or WebRTC transports. Only the device under it is a recorder:
``write_audio_frame`` takes real time for the audio it is given (as a sound card or a WebRTC
track does), and ``write_video_frame`` notes each image with its time.

Program, the same as the LiveKit scenario: 1 s idle; segment 1, 2.0 s of real speech as
24 kHz TTS frames between ``TTSStartedFrame`` and ``TTSStoppedFrame``, played to the end; 1 s
idle; segment 2, 4.0 s at 16 kHz (resampled by the service), interrupted by an
``InterruptionFrame`` 0.75 s after its first audio was written; 1.5 s idle. Writes
``events.json`` and ``frames.npz`` to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from pipecat.frames.frames import (
    EndFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    OutputImageRawFrame,
    StartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import TransportParams
from pipecat.workers.runner import WorkerRunner

from engines.audio_io import decode_audio
from integrations.avatar_setup import AvatarSettings
from integrations.pipecat_avatar import EmoteVideoService

CLEAR_AFTER_S = 0.75
SHOT = 256


class RecordingOutput(BaseOutputTransport):
    """Pipecat's output transport over a recording device that plays audio in real time."""

    def __init__(self, params: TransportParams) -> None:
        super().__init__(params)
        self.video: list[tuple[float, np.ndarray]] = []
        self.audio: list[tuple[float, int, float]] = []  # start time, samples, rms

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        pcm = np.frombuffer(frame.audio, np.int16).astype(np.float32) / 32768.0
        rms = float(np.sqrt(np.mean(pcm**2))) if len(pcm) else 0.0
        self.audio.append((time.monotonic(), len(pcm), rms))
        await asyncio.sleep(len(pcm) / frame.sample_rate)  # the device plays it
        return True

    async def write_video_frame(self, frame: OutputImageRawFrame) -> bool:
        w, h = frame.size
        rgb = np.frombuffer(frame.image, np.uint8).reshape(h, w, 3)
        self.video.append(
            (time.monotonic(), cv2.resize(rgb, (SHOT, SHOT), interpolation=cv2.INTER_AREA))
        )
        return True


def speech_at(path: str, rate: int, seconds: float, offset_s: float) -> np.ndarray:
    audio16 = decode_audio(path)[int(offset_s * 16_000) : int((offset_s + seconds) * 16_000)]
    t = np.arange(int(len(audio16) * rate / 16_000)) * 16_000 / rate
    return (np.clip(np.interp(t, np.arange(len(audio16)), audio16), -1, 1) * 32767).astype(np.int16)


def tts_frames(pcm: np.ndarray, rate: int) -> list:
    step = rate // 50  # 20 ms, as TTS services push
    return [
        TTSStartedFrame(),
        *[TTSAudioRawFrame(pcm[s : s + step].tobytes(), rate, 1) for s in range(0, len(pcm), step)],
        TTSStoppedFrame(),
    ]


async def wait_played(out: RecordingOutput, seconds: float, rate: int, since: int) -> None:
    """Until ``seconds`` of audio with sound in it were written after record ``since``."""
    deadline = time.monotonic() + seconds + 10
    while time.monotonic() < deadline:
        played = sum(n for _, n, rms in out.audio[since:] if rms > 0) / rate
        if played >= seconds - 0.05:
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("the audio did not play")


def first_sound(out: RecordingOutput, since: int) -> float:
    return next(t for t, _, rms in out.audio[since:] if rms > 0)


async def main(out_dir: Path, cache: Path, portrait: str, speech: str) -> None:
    t0 = time.monotonic()
    service = EmoteVideoService(AvatarSettings(portrait=portrait, cache_dir=cache))
    load_s = time.monotonic() - t0
    output = RecordingOutput(
        TransportParams(
            audio_out_enabled=True,
            audio_out_sample_rate=24_000,
            video_out_enabled=True,
            video_out_is_live=False,  # show the latest image at 25 fps (synced ones included)
            video_out_width=512,
            video_out_height=512,
            video_out_framerate=25,
        )
    )
    worker = PipelineWorker(
        Pipeline([service, output]),
        params=PipelineParams(audio_out_sample_rate=24_000),
        idle_timeout_secs=None,
        enable_rtvi=False,
    )
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    running = asyncio.create_task(runner.run())
    while not output.video:
        await asyncio.sleep(0.01)
    start = time.monotonic()
    await asyncio.sleep(1.0)

    seg1 = speech_at(speech, 24_000, 2.0, 0.5)
    mark1 = len(output.audio)
    sent1 = time.monotonic()
    await worker.queue_frames(tts_frames(seg1, 24_000))
    await wait_played(output, 2.0, 24_000, mark1)
    await asyncio.sleep(1.0)

    seg2 = speech_at(speech, 16_000, 4.0, 3.0)
    mark2 = len(output.audio)
    sent2 = time.monotonic()
    await worker.queue_frames(tts_frames(seg2, 16_000))
    while not any(rms > 0 for _, _, rms in output.audio[mark2:]):
        await asyncio.sleep(0.002)
    started2 = first_sound(output, mark2)
    await asyncio.sleep(max(0.0, started2 + CLEAR_AFTER_S - time.monotonic()))
    clear_at = time.monotonic()
    await worker.queue_frame(InterruptionFrame())
    await asyncio.sleep(1.5)
    await worker.queue_frame(EndFrame())
    await asyncio.wait_for(running, 15)

    events = {
        "load_s": load_s,
        "start": start,
        "seg1": {"sent_at": sent1, "seconds": 2.0, "first_sound": first_sound(output, mark1)},
        "seg2": {
            "sent_at": sent2,
            "seconds": 4.0,
            "first_sound": started2,
            "clear_at": clear_at,
            "clear_after_s": CLEAR_AFTER_S,
        },
        "audio": [list(a) for a in output.audio],
        "frames_out": service.frames_out,
        "interruptions": service.interruptions,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "events.json").write_text(json.dumps(events, indent=1))
    np.savez_compressed(
        out_dir / "frames.npz",
        times=np.array([t for t, _ in output.video]),
        frames=np.stack([f for _, f in output.video]),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--portrait", required=True)
    parser.add_argument("--speech", required=True)
    args = parser.parse_args()
    asyncio.run(main(args.out, args.cache, args.portrait, args.speech))
    sys.exit(0)
