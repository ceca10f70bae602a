"""A LiveKit Agents conversation with the emote avatar worker, run in .venv-integrations by
tests/test_livekit_avatar.py (which measures the recorded pixels with FaceMesh in .venv).

The agent side is livekit-agents' ``DataStreamAudioOutput`` (what ``AgentSession`` uses for
an avatar), the avatar side ``integrations.livekit_avatar.run_avatar`` (livekit-agents'
``DataStreamAudioReceiver`` + ``AvatarRunner`` around our ``EmoteVideoGenerator``); the
rooms are the in-process double of livekit_room_double.py. What leaves for the wire is
recorded where it leaves: ``VideoSource.capture_frame`` (paced by livekit's
``AVSynchronizer``) and ``AudioSource.capture_frame``.

Program: 1 s idle; segment 1, 2.0 s of real speech at 24 kHz, played to the end; 1 s idle;
segment 2, 4.0 s at 16 kHz (resampled by the worker), interrupted by ``clear_buffer`` 0.75 s
after its playback started, with the mouth open on "how"; 1.5 s idle. Writes
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
from livekit import rtc
from livekit.agents.voice.avatar import DataStreamAudioOutput

sys.path.insert(0, str(Path(__file__).resolve().parent))
from livekit_room_double import FakeRoom, Hub

from engines.audio_io import decode_audio
from integrations.livekit_avatar import (
    PUBLISH_ON_BEHALF,
    AvatarSettings,
    make_video_generator,
    run_avatar,
)

AGENT = "agent-1"
AVATAR = "emote-avatar-agent-1"
CLEAR_AFTER_S = 0.75  # into segment 2's playback: inside "how" (clip 3.44-3.95 s), mouth open
SHOT = 256  # recorded frames are downscaled to this (FaceMesh reads the mouth fine)

video_log: list[tuple[float, np.ndarray]] = []
audio_log: list[tuple[float, int, int, float]] = []  # time, rate, samples, rms


def record_sinks() -> None:
    """Record what livekit's sources are handed (the frames and sound that go out)."""
    video_capture = rtc.VideoSource.capture_frame
    audio_capture = rtc.AudioSource.capture_frame

    def on_video(self: rtc.VideoSource, frame: rtc.VideoFrame, **kw: object) -> None:
        rgba = np.frombuffer(frame.data, np.uint8).reshape(frame.height, frame.width, 4)
        small = cv2.resize(rgba[:, :, :3], (SHOT, SHOT), interpolation=cv2.INTER_AREA)
        video_log.append((time.monotonic(), small))
        video_capture(self, frame, **kw)  # type: ignore[arg-type]

    async def on_audio(self: rtc.AudioSource, frame: rtc.AudioFrame) -> None:
        pcm = np.frombuffer(frame.data, np.int16).astype(np.float32) / 32768.0
        rms = float(np.sqrt(np.mean(pcm**2))) if len(pcm) else 0.0
        await audio_capture(self, frame)
        audio_log.append((time.monotonic(), frame.sample_rate, frame.samples_per_channel, rms))

    rtc.VideoSource.capture_frame = on_video  # type: ignore[method-assign]
    rtc.AudioSource.capture_frame = on_audio  # type: ignore[method-assign]


def speech_at(rate: int, seconds: float, offset_s: float) -> np.ndarray:
    audio16 = decode_audio(sys.argv[sys.argv.index("--speech") + 1])
    audio16 = audio16[int(offset_s * 16_000) : int((offset_s + seconds) * 16_000)]
    t = np.arange(int(len(audio16) * rate / 16_000)) * 16_000 / rate
    pcm = np.interp(t, np.arange(len(audio16)), audio16)
    return (np.clip(pcm, -1, 1) * 32767).astype(np.int16)


async def send(output: DataStreamAudioOutput, pcm: np.ndarray, rate: int) -> None:
    """Like a TTS: 20 ms frames, sent faster than real time (livekit's own pacing)."""
    step = rate // 50
    for start in range(0, len(pcm), step):
        piece = pcm[start : start + step]
        await output.capture_frame(rtc.AudioFrame(piece.tobytes(), rate, 1, len(piece)))
        await asyncio.sleep(0.002)
    output.flush()


async def main(out_dir: Path, cache: Path, portrait: str) -> None:
    record_sinks()
    hub = Hub()
    agent_room = FakeRoom(hub, AGENT, kind=rtc.ParticipantKind.PARTICIPANT_KIND_AGENT)
    avatar_room = FakeRoom(
        hub,
        AVATAR,
        kind=rtc.ParticipantKind.PARTICIPANT_KIND_AGENT,
        attributes={PUBLISH_ON_BEHALF: AGENT},
    )
    events: dict[str, object] = {}
    t0 = time.monotonic()
    video_gen = make_video_generator(AvatarSettings(portrait=portrait, cache_dir=cache))
    events["load_s"] = time.monotonic() - t0

    await agent_room.connect()
    await avatar_room.connect()
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_avatar(avatar_room, video_gen, sender_identity=AGENT, stop=stop)  # type: ignore[arg-type]
    )
    output = DataStreamAudioOutput(
        agent_room,  # type: ignore[arg-type]
        destination_identity=AVATAR,
        wait_playback_start=True,
    )
    started: list[float] = []
    finished: list[dict[str, float | bool]] = []
    output.on("playback_started", lambda ev: started.append(time.monotonic()))
    output.on(
        "playback_finished",
        lambda ev: finished.append(
            {
                "at": time.monotonic(),
                "position": ev.playback_position,
                "interrupted": ev.interrupted,
            }
        ),
    )
    t_start = time.monotonic()
    await asyncio.sleep(1.0)

    seg1 = speech_at(24_000, 2.0, 0.5)
    t_seg1 = time.monotonic()
    await send(output, seg1, 24_000)
    first = await asyncio.wait_for(output.wait_for_playout(), 15)
    events["seg1"] = {
        "sent_at": t_seg1,
        "seconds": len(seg1) / 24_000,
        "finished": {"position": first.playback_position, "interrupted": first.interrupted},
    }
    await asyncio.sleep(1.0)

    seg2 = speech_at(16_000, 4.0, 3.0)
    t_seg2 = time.monotonic()
    sender = asyncio.create_task(send(output, seg2, 16_000))
    while len(started) < 2 and time.monotonic() - t_seg2 < 10:
        await asyncio.sleep(0.005)
    await asyncio.sleep(CLEAR_AFTER_S)
    t_clear = time.monotonic()
    output.clear_buffer()
    second = await asyncio.wait_for(output.wait_for_playout(), 15)
    await sender
    events["seg2"] = {
        "sent_at": t_seg2,
        "seconds": len(seg2) / 16_000,
        "clear_at": t_clear,
        "clear_after_s": CLEAR_AFTER_S,
        "finished": {"position": second.playback_position, "interrupted": second.interrupted},
    }
    await asyncio.sleep(1.5)
    stop.set()
    await asyncio.wait_for(worker, 10)
    await agent_room.disconnect()

    events.update(
        start=t_start,
        playback_started=started,
        playback_finished=finished,
        rpcs=[r.__dict__ for r in hub.rpcs],
        streams=[
            {"at": at, "topic": topic, "attributes": attrs} for at, topic, attrs in hub.streams
        ],
        frames_out=video_gen.frames_out,
        clears=video_gen.clears,
        audio=[list(a) for a in audio_log],
        avatar_attributes=avatar_room.local_participant.attributes,
        published=[
            type(p.track).__name__
            for p in avatar_room.local_participant.track_publications.values()
        ],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "events.json").write_text(json.dumps(events, indent=1))
    np.savez_compressed(
        out_dir / "frames.npz",
        times=np.array([t for t, _ in video_log]),
        frames=np.stack([f for _, f in video_log]),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--portrait", required=True)
    parser.add_argument("--speech", required=True)
    args = parser.parse_args()
    asyncio.run(main(args.out, args.cache, args.portrait))
