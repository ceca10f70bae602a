"""A viewer that watches an avatar through Janus (a VideoRoom subscriber over Janus's HTTP
API, on aiortc), recording what arrives as ``measure.webrtc_client.Client`` does: frame
arrival times and pts, frames kept for FaceMesh, the audio's level. For the fan-out test and
bench (tests/test_janus_fanout.py, bench/janus_fanout.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from measure.webrtc_client import Received, record_audio, record_video
from stream_server.janus_api import JanusError, JanusSession, TrickledCandidates
from stream_server.jitter import JitterFrame, release_immediately
from stream_server.loopback import all_interfaces


class JanusViewer:
    """One subscriber of ``feed`` in ``room``; ``keep(n, t)`` says which frames to keep.
    ``decode=False``: a viewer that only counts what arrives (``video_complete_t``, and
    ``audio_t`` per packet), without decoding, so that one process can stand for many."""

    def __init__(
        self,
        base: str,
        room: int,
        feed: int,
        keep: Callable[[int, float], bool] | None = None,
        decode: bool = True,
    ) -> None:
        self.base = base
        self.room = room
        self.feed = feed
        self.keep = keep or (lambda n, t: False)
        self.decode = decode
        self.received = Received()
        self.pc: RTCPeerConnection | None = None
        self.started: float | None = None  # the answer sent and started
        self._http: aiohttp.ClientSession | None = None
        self._janus: JanusSession | None = None
        self._tasks: list[asyncio.Task] = []
        self._candidates = TrickledCandidates()

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        janus = self._janus = JanusSession(self._http, self.base)
        await janus.create()
        handle = await janus.attach(trickle=self._candidates)
        _, offer = await janus.message(
            handle,
            {
                "request": "join",
                "ptype": "subscriber",
                "room": self.room,
                "streams": [{"feed": self.feed}],
            },
        )
        if offer is None or offer.get("type") != "offer":
            raise JanusError("Janus attached the subscriber without an SDP offer")
        self.pc = pc = RTCPeerConnection()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            reader = self._read_video if track.kind == "video" else self._read_audio
            self._tasks.append(asyncio.ensure_future(reader(track)))

        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        for transceiver in pc.getTransceivers():
            video = transceiver.kind == "video"
            on_frame = self._video_complete if video else None
            if not video and not self.decode:
                on_frame = self._audio_packet
            release_immediately(transceiver.receiver, on_frame, self.decode)
        await self._candidates.ready(pc)
        with all_interfaces():  # Janus never uses loopback (stream_server.loopback)
            await pc.setLocalDescription(await pc.createAnswer())
        answer = {"type": "answer", "sdp": pc.localDescription.sdp}
        await janus.message(handle, {"request": "start", "room": self.room}, answer)
        self.started = time.monotonic()

    def _video_complete(self, frame: JitterFrame) -> None:
        self.received.video_complete_t.append(time.monotonic())
        self.received.video_complete_rtp.append(frame.timestamp)

    def _audio_packet(self, frame: JitterFrame) -> None:
        self.received.audio_t.append(time.monotonic())

    async def _read_video(self, track: MediaStreamTrack) -> None:
        await record_video(track, self.received, self.keep)

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        await record_audio(track, self.received)

    async def stop(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._janus is not None:
            await self._janus.close()
        if self._http is not None:
            await self._http.close()
