"""The WebRTC test client: one aiortc session with the server that sends a ``Program`` (or
nothing) and records the avatar's video and its own audio as they come back (arrival times,
pts, kept frames, audio levels). Its receivers release frames as a browser's do
(stream_server.jitter)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlparse

import av
import numpy as np
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from measure.program import Program, ProgramTrack
from measure.server import BenchError
from stream_server.jitter import release_immediately
from stream_server.loopback import is_loopback, use_loopback_only

if TYPE_CHECKING:
    import aiohttp


@dataclass
class Received:
    """Frames as they arrived: monotonic time and pts (as aiortc counts them)."""

    video_t: list[float] = field(default_factory=list)
    video_pts: list[int] = field(default_factory=list)
    video_complete_t: list[float] = field(default_factory=list)  # last packet in, before decoding
    video_complete_rtp: list[int] = field(default_factory=list)  # those frames' RTP timestamps
    video_size: tuple[int, int] | None = None
    kept: dict[int, np.ndarray] = field(default_factory=dict)  # frame number -> yuv420p
    audio_t: list[float] = field(default_factory=list)
    audio_pts: list[int] = field(default_factory=list)
    audio_rms: list[float] = field(default_factory=list)
    motion: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (t, message)


class Client:
    """One WebRTC session with the server: our audio out, the avatar's video and our audio
    back. ``keep(n, t)`` says whether to keep video frame number n (arrived at t) as RGB."""

    def __init__(
        self,
        url: str,
        program: Program | None,
        keep: Callable[[int, float], bool] | None = None,
        avatar: str | None = None,
        token: str | None = None,
        motion_channel: bool = False,
        configuration: RTCConfiguration | None = None,
    ) -> None:
        use_loopback_only(is_loopback(urlparse(url).hostname or ""))
        self.url = url.rstrip("/")
        self.track = ProgramTrack(program) if program is not None else None
        self.keep = keep or (lambda n, t: False)
        self.avatar = avatar
        # The server's bearer token (emote serve --token), sent with every API request.
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.received = Received()
        self.session_id: str | None = None
        self.avatar_png: bytes | None = None  # the session's avatar, as the server framed it
        self.answer_set: float | None = None
        self.pc: RTCPeerConnection | None = None
        self.want_motion = motion_channel  # open the "motion" data channel (docs/api.md)
        self.configuration = configuration  # STUN/TURN and ICE policy (None: host only)
        self.motion: RTCDataChannel | None = None
        self._tasks: list[asyncio.Task] = []
        self.first_frame = asyncio.Event()

    async def connect(self, http: aiohttp.ClientSession) -> None:
        self.pc = pc = RTCPeerConnection(self.configuration)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            reader = self._read_video if track.kind == "video" else self._read_audio
            self._tasks.append(asyncio.ensure_future(reader(track)))

        if self.track is not None:
            pc.addTrack(self.track)
        else:
            pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")
        if self.want_motion:
            self.motion = pc.createDataChannel("motion")

            @self.motion.on("message")
            def on_message(message: str | bytes) -> None:
                if isinstance(message, str):
                    self.received.motion.append((time.monotonic(), json.loads(message)))

        for transceiver in pc.getTransceivers():
            on_frame = self._video_complete if transceiver.kind == "video" else None
            release_immediately(transceiver.receiver, on_frame)
        await pc.setLocalDescription(await pc.createOffer())
        body = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}
        if self.avatar:
            body["avatar"] = self.avatar
        async with http.post(f"{self.url}/offer", json=body, headers=self.headers) as response:
            text = await response.text()
        if response.status != 200:
            await pc.close()
            raise BenchError(f"the offer was refused: {response.status} {text[:300]}")
        answer = json.loads(text)
        self.session_id = answer["session_id"]
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
        self.answer_set = time.monotonic()

    def _video_complete(self, frame: JitterFrame) -> None:
        self.received.video_complete_t.append(time.monotonic())
        self.received.video_complete_rtp.append(frame.timestamp)

    async def _read_video(self, track: MediaStreamTrack) -> None:
        await record_video(track, self.received, self.keep, self.first_frame.set)

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        await record_audio(track, self.received)

    def send_motion(self, message: dict[str, Any] | str) -> None:
        """Send a puppeteering message (a dict as JSON, a str as is) on the motion channel."""
        assert self.motion is not None, "connect with motion_channel=True"
        self.motion.send(message if isinstance(message, str) else json.dumps(message))

    async def stats(self, http: aiohttp.ClientSession) -> dict[str, Any] | None:
        async with http.get(
            f"{self.url}/api/sessions/{self.session_id}", headers=self.headers
        ) as response:
            return await response.json() if response.status == 200 else None

    async def fetch_avatar(self, http: aiohttp.ClientSession, avatar_id: str) -> None:
        """Keep the avatar's framed image (for the offline reference: measure.mouth_reference)."""
        async with http.get(
            f"{self.url}/api/avatars/{avatar_id}/image", headers=self.headers
        ) as response:
            if response.status == 200:
                self.avatar_png = await response.read()

    async def close(self, http: aiohttp.ClientSession | None = None) -> None:
        """DELETE the session (when ``http`` is given), then close the peer connection."""
        if http is not None and self.session_id:
            async with http.delete(
                f"{self.url}/api/sessions/{self.session_id}", headers=self.headers
            ):
                pass
        if self.pc is not None:
            await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def record_video(
    track: MediaStreamTrack,
    got: Received,
    keep: Callable[[int, float], bool],
    on_frame: Callable[[], None] | None = None,
) -> None:
    """Record a received video track into ``got`` until it ends: each frame's arrival and
    pts, its size, and the frames ``keep(n, t)`` asks for (yuv420p)."""
    while True:
        try:
            frame = cast(av.VideoFrame, await track.recv())  # a video track
        except MediaStreamError:
            return
        t = time.monotonic()
        n = len(got.video_t)
        got.video_t.append(t)
        assert frame.pts is not None  # aiortc stamps every decoded frame
        got.video_pts.append(int(frame.pts))
        got.video_size = (frame.width, frame.height)
        if keep(n, t):
            got.kept[n] = frame.to_ndarray(format="yuv420p")
        if on_frame is not None:
            on_frame()


async def record_audio(track: MediaStreamTrack, got: Received) -> None:
    """Record a received audio track into ``got`` until it ends: each frame's arrival, pts
    and RMS level."""
    while True:
        try:
            frame = cast(av.AudioFrame, await track.recv())  # an audio track
        except MediaStreamError:
            return
        t = time.monotonic()
        pcm = frame.to_ndarray().astype(np.float32) / 32768.0
        got.audio_t.append(t)
        assert frame.pts is not None  # aiortc stamps every decoded frame
        got.audio_pts.append(int(frame.pts))
        got.audio_rms.append(float(np.sqrt((pcm**2).mean())))
