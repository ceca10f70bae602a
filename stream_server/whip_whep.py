"""WHIP ingest (RFC 9725) and WHEP egress (draft-ietf-wish-whep) on `emote serve`
(docs/api.md, "WHIP and WHEP").

* ``POST /whip`` with an ``application/sdp`` offer that sends audio (OBS, GStreamer's
  whipsink, any WHIP client) starts a session animated by that audio. ``?avatar=ID`` and
  ``?style=NAME[:0-1]`` choose the portrait and style. The answer is ``201 Created``,
  ``application/sdp``, with ``Location: /whip/{session_id}``. ``DELETE`` on it ends the
  session.
* ``POST /whep/{session_id}`` with a viewer's ``application/sdp`` offer (it receives video,
  and audio if offered) watches a session: a WHIP one, or one started with ``/offer``. The
  answer is ``201`` with ``Location: /whep/{session_id}/{viewer_id}``, and ``DELETE`` on it
  stops watching. A session takes ``MAX_VIEWERS`` viewers (then 503). Frames are encoded
  once, whatever the number of viewers (``stream_server.viewers``).
* ``PATCH`` on either resource: no trickle ICE or ICE restart here. The answer already holds
  every candidate, so the RFC's ``405 Method Not Allowed`` is returned, with
  ``Allow: DELETE``. ``GET``, ``HEAD`` and ``PUT`` on the endpoints: 405. A body that is not
  ``application/sdp``: ``415``. Bearer tokens, limits and JSON errors are the rest of the
  API's (``stream_server.access``, ``http_limits``, ``http_errors``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from typing import Protocol

from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from contracts.style import Style
from stream_server import video_codec
from stream_server.avatars import AvatarStore
from stream_server.http_errors import error
from stream_server.http_limits import HttpError, read_body
from stream_server.jitter import release_immediately
from stream_server.live_session import LiveSession
from stream_server.sdp_limits import SdpError, check_offer_sdp
from stream_server.viewers import ViewerVideoTrack, viewer_audio

log = logging.getLogger(__name__)

SDP = "application/sdp"
MAX_SDP_BYTES = 64 * 1024
MAX_VIEWERS = 8  # WHEP viewers of one session
RETRY_AFTER_S = 5


def _sdp_body_type(request: web.Request) -> None:
    if request.content_type != SDP:
        raise HttpError(415, f"the body must be {SDP} (an SDP offer), not {request.content_type!r}")


def _not_allowed(allow: str) -> web.Response:
    return error(405, f"method not allowed here; allowed: {allow}", Allow=allow)


def _sdp_answer(sdp: str, location: str) -> web.Response:
    return web.Response(
        status=201,
        text=sdp,
        content_type=SDP,
        headers={"Location": location},
    )


class Host(Protocol):
    """What these routes use of the server (``stream_server.app.AvatarServer``)."""

    sessions: dict[str, LiveSession]
    avatars: AvatarStore

    @property
    def default_style(self) -> Style: ...

    async def admit(
        self, sdp: str, avatar_id: str, style: Style, kind: str = "offer"
    ) -> tuple[RTCSessionDescription, str] | None: ...

    def busy(self) -> web.Response: ...

    def rtc_configuration(self) -> RTCConfiguration | None: ...

    async def close_session(self, session_id: str) -> None: ...


class WhipWhep:
    """The WHIP and WHEP routes of one server."""

    def __init__(self, server: Host) -> None:
        self.server = server

    def routes(self) -> list[web.RouteDef]:
        endpoint = functools.partial(self._other, allow="POST")
        resource = functools.partial(self._other, allow="DELETE")
        return [
            web.post("/whip", self.whip),
            web.route("*", "/whip", endpoint),
            web.delete("/whip/{session_id}", self.whip_delete),
            web.route("*", "/whip/{session_id}", resource),
            web.post("/whep/{session_id}", self.whep),
            web.route("*", "/whep/{session_id}", endpoint),
            web.delete("/whep/{session_id}/{viewer_id}", self.whep_delete),
            web.route("*", "/whep/{session_id}/{viewer_id}", resource),
        ]

    async def _other(self, request: web.Request, allow: str) -> web.Response:
        if request.method == "OPTIONS":  # CORS preflight is answered by the access layer
            return web.Response(status=204, headers={"Allow": f"{allow}, OPTIONS"})
        return _not_allowed(allow)

    # -- WHIP -------------------------------------------------------------------------------

    async def whip(self, request: web.Request) -> web.Response:
        server = self.server
        _sdp_body_type(request)
        sdp = (await read_body(request, MAX_SDP_BYTES, "the offer")).decode("utf-8", "replace")
        try:
            check_offer_sdp(sdp, receives_video=False)
        except SdpError as exc:
            raise HttpError(400, f"malformed offer: {exc}") from None
        avatar_id = request.query.get("avatar") or server.avatars.default_id or ""
        if server.avatars.get(avatar_id) is None:
            raise HttpError(404, f"unknown avatar {avatar_id[:80]!r}")
        style = server.default_style
        if "style" in request.query:
            try:
                style = Style.parse(request.query["style"])
            except ValueError as exc:
                raise HttpError(400, str(exc)) from None
        opened = await server.admit(sdp, avatar_id, style, kind="whip")
        if opened is None:
            return server.busy()
        answer, session_id = opened
        return _sdp_answer(answer.sdp, f"/whip/{session_id}")

    async def whip_delete(self, request: web.Request) -> web.Response:
        session_id = request.match_info["session_id"]
        live = self.server.sessions.get(session_id)
        if live is None or live.kind != "whip":
            return error(404, "unknown WHIP session")
        await self.server.close_session(session_id)
        return web.Response(status=200)

    # -- WHEP -------------------------------------------------------------------------------

    async def whep(self, request: web.Request) -> web.Response:
        session_id = request.match_info["session_id"]
        live = self.server.sessions.get(session_id)
        if live is None or live.closing:
            return error(404, "unknown session")
        _sdp_body_type(request)
        sdp = (await read_body(request, MAX_SDP_BYTES, "the offer")).decode("utf-8", "replace")
        try:
            check_offer_sdp(sdp)
        except SdpError as exc:
            raise HttpError(400, f"malformed offer: {exc}") from None
        if len(live.viewers) >= MAX_VIEWERS:
            return error(
                503, f"{MAX_VIEWERS} viewers already watch this session",
                **{"Retry-After": str(RETRY_AFTER_S)},
            )  # fmt: skip
        viewer_id = secrets.token_hex(8)
        pc = RTCPeerConnection(self.server.rtc_configuration())
        live.viewers[viewer_id] = pc  # counted before any await: the limit holds
        try:
            answer = await self._viewer(live, pc, sdp)
        except BaseException as exc:
            live.viewers.pop(viewer_id, None)
            await _close_viewer(pc)
            if isinstance(exc, ValueError):
                raise HttpError(400, f"malformed offer: {exc}") from None
            raise

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self._drop_viewer(live, viewer_id)

        return _sdp_answer(answer.sdp, f"/whep/{session_id}/{viewer_id}")

    async def _viewer(
        self, live: LiveSession, pc: RTCPeerConnection, sdp: str
    ) -> RTCSessionDescription:
        video_track = ViewerVideoTrack(live.session)
        video = pc.addTransceiver(video_track, direction="sendonly")
        video.setCodecPreferences(video_codec.vp8_only())
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as exc:
            video_track.stop()
            raise ValueError(str(exc) or exc.__class__.__name__) from exc
        if video.mid is None:
            video_track.stop()
            raise ValueError("a WHEP offer must receive video")
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "audio":
                release_immediately(transceiver.receiver)
                pc.addTrack(viewer_audio(live.session))
                break
        answer = await pc.createAnswer()
        await pc.setLocalDescription(as_dtls_server(sdp, answer))
        return pc.localDescription

    async def _drop_viewer(self, live: LiveSession, viewer_id: str) -> None:
        pc = live.viewers.pop(viewer_id, None)
        if pc is not None:
            await _close_viewer(pc)

    async def whep_delete(self, request: web.Request) -> web.Response:
        live = self.server.sessions.get(request.match_info["session_id"])
        viewer_id = request.match_info["viewer_id"]
        if live is None or viewer_id not in live.viewers:
            return error(404, "unknown WHEP viewer")
        await self._drop_viewer(live, viewer_id)
        return web.Response(status=200)


def as_dtls_server(offer: str, answer: RTCSessionDescription) -> RTCSessionDescription:
    """The answer with this side as the DTLS server (``a=setup:passive``) where the offer
    lets either side be (``actpass``). aiortc as a DTLS client offers ECDSA cipher suites
    only, and GStreamer's webrtcbin (GStreamer WHIP and WHEP clients) serves an RSA
    certificate: "no shared cipher". As the server, aiortc's own ECDSA certificate picks
    the suite, which every stack takes. aiortc reads its role from the SDP it is given."""
    if "a=setup:actpass" not in offer:
        return answer
    return RTCSessionDescription(answer.sdp.replace("a=setup:active", "a=setup:passive"), "answer")


async def close_viewers(live: LiveSession) -> None:
    """Close every viewer of a session that ends."""
    for pc in list(live.viewers.values()):
        await _close_viewer(pc)
    live.viewers.clear()


async def _close_viewer(pc: RTCPeerConnection) -> None:
    """Stop a viewer's tracks (so their frame listeners go) and close its connection."""
    for sender in pc.getSenders():
        if sender.track is not None:
            sender.track.stop()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(pc.close(), 2.0)
