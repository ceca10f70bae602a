"""WHIP and WHEP clients on aiortc (stream_server/whip_whep.py): a publisher that sends a
``Program`` as its audio, as OBS or GStreamer's whipsink would, and a viewer that records the
avatar's frames and sound. For the tests and the benches."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import cast

import aiohttp
import av
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from measure.program import Program, ProgramTrack
from stream_server.jitter import release_immediately
from stream_server.loopback import use_loopback_only

SDP = "application/sdp"


class WhipError(RuntimeError):
    pass


async def _post_offer(
    http: aiohttp.ClientSession, url: str, pc: RTCPeerConnection, headers: dict[str, str]
) -> str:
    await pc.setLocalDescription(await pc.createOffer())
    async with http.post(
        url, data=pc.localDescription.sdp, headers={"Content-Type": SDP, **headers}
    ) as response:
        text = await response.text()
        if response.status != 201:
            raise WhipError(f"{url}: {response.status} {text[:300]}")
        if response.content_type != SDP or "Location" not in response.headers:
            raise WhipError(f"{url}: 201 without an SDP answer and a Location")
        location = response.headers["Location"]
    await pc.setRemoteDescription(RTCSessionDescription(text, "answer"))
    return location


@dataclass
class Publisher:
    """A WHIP publisher: ``program`` as its only (audio) track."""

    base: str
    program: Program
    token: str | None = None
    pc: RTCPeerConnection | None = None
    location: str | None = None
    track: ProgramTrack | None = None

    async def start(self, http: aiohttp.ClientSession, query: str = "") -> str:
        use_loopback_only(True)
        self.pc = RTCPeerConnection()
        self.track = ProgramTrack(self.program)
        self.pc.addTransceiver(self.track, direction="sendonly")
        self.location = await _post_offer(
            http, f"{self.base}/whip{query}", self.pc, _auth(self.token)
        )
        return self.location

    @property
    def session_id(self) -> str:
        assert self.location is not None
        return self.location.rsplit("/", 1)[-1]

    async def stop(self, http: aiohttp.ClientSession) -> int:
        """DELETE the resource and close; the DELETE's status (0: never started)."""
        return await _end(http, self.base, self.location, self.token, self.pc)


@dataclass
class Viewer:
    """A WHEP viewer of one session: frames (arrival time, pts, RGB kept every ``keep``-th)
    and audio levels."""

    base: str
    session_id: str
    token: str | None = None
    keep: int = 1
    pc: RTCPeerConnection | None = None
    location: str | None = None
    video_t: list[float] = field(default_factory=list)
    video_pts: list[int] = field(default_factory=list)
    frames: dict[int, np.ndarray] = field(default_factory=dict)
    audio_t: list[float] = field(default_factory=list)
    audio_rms: list[float] = field(default_factory=list)
    _tasks: list[asyncio.Task] = field(default_factory=list)

    async def start(self, http: aiohttp.ClientSession) -> str:
        use_loopback_only(True)
        self.pc = pc = RTCPeerConnection()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            reader = self._video if track.kind == "video" else self._audio
            self._tasks.append(asyncio.ensure_future(reader(track)))

        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        for transceiver in pc.getTransceivers():
            release_immediately(transceiver.receiver)
        url = f"{self.base}/whep/{self.session_id}"
        self.location = await _post_offer(http, url, pc, _auth(self.token))
        return self.location

    async def _video(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = cast(av.VideoFrame, await track.recv())
            except MediaStreamError:
                return
            n = len(self.video_t)
            self.video_t.append(time.monotonic())
            self.video_pts.append(int(frame.pts or 0))
            if n % self.keep == 0:
                self.frames[n] = frame.to_ndarray(format="rgb24")

    async def _audio(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = cast(av.AudioFrame, await track.recv())
            except MediaStreamError:
                return
            pcm = frame.to_ndarray().astype(np.float32) / 32768.0
            self.audio_t.append(time.monotonic())
            self.audio_rms.append(float(np.sqrt((pcm**2).mean())))

    async def stop(self, http: aiohttp.ClientSession) -> int:
        """DELETE the resource and close; the DELETE's status (0: never started)."""
        status = await _end(http, self.base, self.location, self.token, self.pc)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return status


async def _end(
    http: aiohttp.ClientSession,
    base: str,
    location: str | None,
    token: str | None,
    pc: RTCPeerConnection | None,
) -> int:
    status = 0
    if location is not None:
        async with http.delete(base + location, headers=_auth(token)) as response:
            status = response.status
    if pc is not None:
        await pc.close()
    return status


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}
