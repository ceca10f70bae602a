"""A session's avatar (video and its returned audio) published into a Janus VideoRoom, so
that any number of viewers subscribe from Janus while this server encodes once
(docs/api.md, "Fan-out through Janus"; docs/deploy.md).

The publisher is one more peer connection of the session, fed like a WHEP viewer
(``stream_server.viewers``): the session's own VP8 frames and its audio, on its clock. Janus
relays RTP as it comes, so the A/V offset viewers see is the one the server sends. Janus
asks for a keyframe when a subscriber joins (PLI), which reaches the session's encoder.

``JanusPublisher.start`` creates a room for the session (``publishers: 1``, VP8 and Opus,
destroyed again with the session) unless the target names one, joins it as a publisher
and publishes; the room and feed ids it returns are what subscribers join.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription

from stream_server import video_codec
from stream_server.janus_api import JanusError, JanusSession, JanusTarget, TrickledCandidates
from stream_server.loopback import all_interfaces
from stream_server.session import Session
from stream_server.viewers import ViewerVideoTrack, viewer_audio

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0  # the publisher's ICE + DTLS with Janus


@dataclass(frozen=True)
class Published:
    """Where a session's avatar is, for subscribers."""

    janus: str  # the Janus HTTP API base URL
    room: int
    feed: int  # the publisher id subscribers name in "streams": [{"feed": ...}]

    def as_json(self) -> dict[str, Any]:
        return {"janus": self.janus, "room": self.room, "feed": self.feed}


class JanusPublisher:
    """One session published into one Janus VideoRoom."""

    def __init__(self, target: JanusTarget, session: Session) -> None:
        self.target = target
        self.session = session
        self.published: Published | None = None
        self._http: aiohttp.ClientSession | None = None
        self._janus: JanusSession | None = None
        self._pc: RTCPeerConnection | None = None
        self._room_made: int | None = None  # a room we created, destroyed on stop
        self._handle: int | None = None
        self._candidates = TrickledCandidates()
        # called once if the published link breaks later (stream_server.fanout)
        self.on_lost: Callable[[str], None] | None = None
        self._stopping = False

    async def start(self) -> Published:
        """Publish; JanusError (and everything undone) when Janus refuses or fails."""
        try:
            return await self._start()
        except JanusError:
            await self.stop()
            raise
        except Exception as exc:  # aiortc's, or a connection closed under us
            await self.stop()
            raise JanusError(str(exc) or type(exc).__name__) from exc
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> Published:
        self._http = aiohttp.ClientSession()
        janus = self._janus = JanusSession(self._http, self.target.base)
        janus.on_event = self._on_event
        await janus.create()
        handle = self._handle = await janus.attach(trickle=self._candidates)
        room = self.target.room
        if room is None:
            made = await janus.request(
                handle,
                {
                    "request": "create",
                    "description": f"emote {self.session.id[:8]}",
                    "publishers": 1,
                    "audiocodec": "opus",
                    "videocodec": "vp8",
                    "bitrate": 0,
                    "fir_freq": 0,
                    "notify_joining": False,
                },
            )
            room = self._room_made = int(made["room"])
        # every viewer sees the display name: never the session id, which is a capability
        display = f"emote-{self.session.id[:8]}"
        joined, _ = await janus.message(
            handle, {"request": "join", "ptype": "publisher", "room": room, "display": display}
        )
        feed = int(joined["id"])
        pc = self._pc = RTCPeerConnection()
        video = pc.addTransceiver(ViewerVideoTrack(self.session), direction="sendonly")
        video.setCodecPreferences(video_codec.vp8_only())
        pc.addTransceiver(viewer_audio(self.session), direction="sendonly")
        with all_interfaces():  # Janus never uses loopback (stream_server.loopback)
            await pc.setLocalDescription(await pc.createOffer())
        offer = {"type": "offer", "sdp": pc.localDescription.sdp}
        configured, jsep = await janus.message(handle, {"request": "publish"}, offer)
        if jsep is None or jsep.get("type") != "answer":
            raise JanusError(f"Janus published without an SDP answer: {configured}")
        await pc.setRemoteDescription(RTCSessionDescription(jsep["sdp"], "answer"))
        await self._candidates.ready(pc)
        await self._connected(pc)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self._lose(f"the media connection to Janus {pc.connectionState}")

        self.published = Published(self.target.base, room, feed)
        log.info("session %s… published to Janus room %d", self.session.id[:8], room)
        return self.published

    async def _connected(self, pc: RTCPeerConnection) -> None:
        done = asyncio.get_running_loop().create_future()

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("connected", "failed", "closed") and not done.done():
                done.set_result(pc.connectionState)

        if pc.connectionState == "connected":
            return
        try:
            state = await asyncio.wait_for(done, CONNECT_TIMEOUT_S)
        except TimeoutError:
            state = pc.connectionState
        if state != "connected":
            raise JanusError(f"the media connection to Janus did not open ({state})")

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("janus")
        if kind == "lost":  # the long poll failed: Janus is gone or restarted
            self._lose(str(event.get("reason", "Janus is unreachable")))
        elif kind in ("hangup", "detached") and event.get("sender") == self._handle:
            self._lose(f"Janus {kind}: {event.get('reason', '')}".strip())

    def _lose(self, reason: str) -> None:
        if self.published is None or self._stopping:
            return  # still starting (start raises instead) or being stopped
        callback, self.on_lost = self.on_lost, None
        if callback is not None:
            callback(reason)

    @property
    def connected(self) -> bool:
        return self._pc is not None and self._pc.connectionState == "connected"

    async def stop(self) -> None:
        """Unpublish, destroy the room we made, end the Janus session. Idempotent."""
        self._stopping = True
        pc, self._pc = self._pc, None
        if pc is not None:
            for sender in pc.getSenders():
                if sender.track is not None:
                    sender.track.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pc.close(), 2.0)
        janus, self._janus = self._janus, None
        if janus is not None and janus.id is not None:
            if self._room_made is not None and self._handle is not None:
                with contextlib.suppress(JanusError):
                    await janus.request(
                        self._handle, {"request": "destroy", "room": self._room_made}
                    )
            await janus.close()
        self._room_made = None
        http, self._http = self._http, None
        if http is not None:
            await http.close()
        self.published = None
