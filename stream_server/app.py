"""The HTTP API and WebRTC signaling (aiohttp + aiortc). See docs/api.md."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import BodyPartReader, web
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from contracts.paths import WEB_CLIENT
from contracts.style import NEUTRAL, STYLES, Style
from engines.avatar import AvatarError
from engines.motion_generators import DEFAULT_LIVE_MOTION, make_generator
from stream_server import video_codec
from stream_server.avatars import MAX_UPLOAD_BYTES, AvatarStore
from stream_server.jitter import release_immediately
from stream_server.metrics import Metrics
from stream_server.render_pool import RenderPool
from stream_server.render_slots import default_slots
from stream_server.session import Session, default_margin_s

log = logging.getLogger(__name__)

MAX_OFFER_BYTES = 64 * 1024
MAX_STYLE_BYTES = 1024
DISCONNECT_GRACE_S = 2.0  # "disconnected" may recover; "failed"/"closed" end at once
CONNECT_TIMEOUT_S = 15.0  # an answered offer whose peer never connects
PEER_SILENCE_S = 3.0  # no RTCP receiver report from the client for this long: it is gone
RETRY_AFTER_S = 5


@dataclass
class ServerConfig:
    default_avatar: Path
    cache_dir: Path
    max_sessions: int = max(1, (os.cpu_count() or 2) // 2)
    seed: int = 0
    motion: str = DEFAULT_LIVE_MOTION  # engines/motion_generators.py
    steps: int | None = None  # sampling steps of a learned motion model (None: its default)
    motion_models: Path | None = None  # folder of the learned graphs (None: assets/models)
    style: Style = NEUTRAL  # a new session's speaking style (the offer or the API may set it)
    margin_ms: float | None = None  # every session's compute margin (None: default_margin_s)
    render_slots: int | None = None  # render processes, all sessions (None: default_slots)


@dataclass
class LiveSession:
    session: Session
    pc: RTCPeerConnection
    tasks: list[asyncio.Task] = field(default_factory=list)
    closing: bool = False


def error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def style_of(params: object, default: Style | None) -> Style:
    """The style a request names ({"style": NAME, "intensity": 0..1}; intensity defaults to
    1), or ``default`` when it names none (None: the style is required). Raises ValueError
    with the reason."""
    if not isinstance(params, dict):
        raise ValueError('expected a JSON object: {"style": NAME, "intensity": 0..1}')
    name = params.get("style")
    if name is None:
        if default is None:
            raise ValueError(f"'style' is required: one of {', '.join(STYLES)}")
        return default
    intensity = params.get("intensity", 1.0)
    if not isinstance(name, str):
        raise ValueError(f"'style' must be one of {', '.join(STYLES)}")
    if isinstance(intensity, bool) or not isinstance(intensity, int | float):
        raise ValueError("'intensity' must be a number in [0, 1]")
    return Style(name, float(intensity))


class AvatarServer:
    """Holds the shared renderer engine, the avatars and the live sessions."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.avatars = AvatarStore(config.cache_dir, config.default_avatar)
        self.pool: RenderPool | None = None
        self.sessions: dict[str, LiveSession] = {}
        self.started = time.monotonic()
        self.margin_s = (
            default_margin_s(config.max_sessions)
            if config.margin_ms is None
            else config.margin_ms / 1000.0
        )

    async def startup(self, _app: web.Application) -> None:
        await asyncio.to_thread(self.avatars.load_default)
        self.pool = await asyncio.to_thread(
            RenderPool,
            self.config.render_slots or default_slots(),
            self.config.cache_dir,
            self.avatars.default_id,
        )
        log.info(
            "ready: default avatar %s, max %d sessions, compute margin %.0f ms",
            self.avatars.default_id,
            self.config.max_sessions,
            self.margin_s * 1000.0,
        )

    async def shutdown(self, _app: web.Application) -> None:
        await asyncio.gather(*(self.close_session(sid) for sid in list(self.sessions)))
        if self.pool is not None:
            await asyncio.to_thread(self.pool.close)

    # -- routes ----------------------------------------------------------------------------

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/", self.index),
            web.get("/healthz", self.healthz),
            web.get("/metrics", self.metrics_text),
            web.get("/api/avatars", self.list_avatars),
            web.post("/api/avatars", self.upload_avatar),
            web.get("/api/avatars/{avatar_id}/image", self.avatar_image),
            web.post("/offer", self.offer),
            web.get("/api/sessions/{session_id}", self.session_stats),
            web.post("/api/sessions/{session_id}/interrupt", self.interrupt),
            web.post("/api/sessions/{session_id}/style", self.set_style),
            web.delete("/api/sessions/{session_id}", self.delete_session),
            web.static("/static", WEB_CLIENT, show_index=False),
        ]

    async def index(self, _request: web.Request) -> web.StreamResponse:
        return web.FileResponse(WEB_CLIENT / "index.html")

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok" if self.pool is not None else "starting",
                "sessions": len(self.sessions),
                "max_sessions": self.config.max_sessions,
                "uptime_s": round(time.monotonic() - self.started, 1),
            }
        )

    async def metrics_text(self, _request: web.Request) -> web.Response:
        self.metrics.sessions.value = len(self.sessions)
        return web.Response(text=self.metrics.render(), content_type="text/plain", charset="utf-8")

    async def list_avatars(self, _request: web.Request) -> web.Response:
        return web.json_response({"avatars": [a.as_json() for a in self.avatars.list()]})

    async def avatar_image(self, request: web.Request) -> web.StreamResponse:
        path = self.avatars.image_path(request.match_info["avatar_id"])
        if path is None:
            return error(404, "unknown avatar")
        return web.FileResponse(path)

    async def upload_avatar(self, request: web.Request) -> web.Response:
        if not request.content_type.startswith("multipart/"):
            return error(400, "send the image as multipart/form-data (field 'image')")
        try:
            reader = await request.multipart()
            part = await reader.next()
            while part is not None and getattr(part, "name", None) != "image":
                part = await reader.next()
        except (ValueError, AssertionError) as exc:
            return error(400, f"malformed multipart body: {exc}")
        if part is None:
            return error(400, "no 'image' field in the upload")
        if not isinstance(part, BodyPartReader):  # a nested multipart, not a file
            return error(400, "the 'image' field must be a file")
        data = bytearray()
        while chunk := await part.read_chunk(1 << 20):
            data.extend(chunk)
            if len(data) > MAX_UPLOAD_BYTES:  # stop reading early
                return error(413, "image over 50 MB")
        name = Path(part.filename or "upload").stem.replace("_", " ")[:60] or "upload"
        try:
            info = await self.avatars.upload(bytes(data), name)
        except AvatarError as exc:
            return error(422, str(exc))
        return web.json_response(info.as_json(), status=201)

    async def offer(self, request: web.Request) -> web.Response:
        if request.content_length and request.content_length > MAX_OFFER_BYTES:
            return error(413, "offer too large")
        try:
            params = json.loads(await request.text())
            sdp, kind = params["sdp"], params["type"]
        except (json.JSONDecodeError, UnicodeDecodeError):
            return error(400, "the offer must be JSON: {sdp, type, avatar?}")
        except (KeyError, TypeError):
            return error(400, "the offer needs 'sdp' and 'type'")
        if kind != "offer" or not isinstance(sdp, str) or "m=" not in sdp:
            return error(400, "'type' must be 'offer' and 'sdp' a session description")
        avatar_id = params.get("avatar") or self.avatars.default_id
        if not isinstance(avatar_id, str) or self.avatars.get(avatar_id) is None:
            return error(404, f"unknown avatar {avatar_id!r}")
        try:
            style = style_of(params, self.config.style)
        except ValueError as exc:
            return error(400, str(exc))
        if len(self.sessions) >= self.config.max_sessions or self.pool is None:
            self.metrics.rejected.inc()
            return error(
                503,
                "the server is at capacity; try again shortly",
                **{"Retry-After": str(RETRY_AFTER_S)},
            )
        try:
            answer, session_id = await self._connect(sdp, avatar_id, style)
        except ValueError as exc:
            return error(400, f"malformed offer: {exc}")
        return web.json_response({"sdp": answer.sdp, "type": answer.type, "session_id": session_id})

    async def session_stats(self, request: web.Request) -> web.Response:
        live = self.sessions.get(request.match_info["session_id"])
        if live is None:
            return error(404, "unknown session")
        s = live.session
        return web.json_response(
            {
                "session_id": s.id,
                "avatar": s.avatar_id,
                "latency_ms": round(s.clock.latency_s * 1000, 1),
                "motion": self.config.motion,
                "motion_seed": self.config.seed,
                "motion_steps": self.config.steps,
                **s.style.to_dict(),
                "age_s": round(time.monotonic() - s.created, 1),
                **s.stats.as_json(),
            }
        )

    async def interrupt(self, request: web.Request) -> web.Response:
        live = self.sessions.get(request.match_info["session_id"])
        if live is None:
            return error(404, "unknown session")
        live.session.clear_buffer()
        return web.json_response({"interrupted": True})

    async def set_style(self, request: web.Request) -> web.Response:
        """Change a live session's speaking style: {"style": NAME, "intensity": 0..1}."""
        live = self.sessions.get(request.match_info["session_id"])
        if live is None:
            return error(404, "unknown session")
        if request.content_length is None:
            return error(411, "send the style as JSON with a Content-Length")
        if request.content_length > MAX_STYLE_BYTES:
            return error(413, f"the style must be at most {MAX_STYLE_BYTES} bytes of JSON")
        try:
            params = json.loads(await request.text())
            style = style_of(params, None)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return error(400, 'the style must be JSON: {"style": NAME, "intensity": 0..1}')
        except ValueError as exc:
            return error(400, str(exc))
        live.session.set_style(style)
        return web.json_response(style.to_dict())

    async def delete_session(self, request: web.Request) -> web.Response:
        session_id = request.match_info["session_id"]
        if session_id not in self.sessions:
            return error(404, "unknown session")
        await self.close_session(session_id)
        return web.json_response({"closed": True})

    # -- sessions --------------------------------------------------------------------------

    async def _connect(
        self, sdp: str, avatar_id: str, style: Style
    ) -> tuple[RTCSessionDescription, str]:
        pool = self.pool  # the avatar is known (offer checked) and its rig on disk (store)
        assert pool is not None
        session_id = uuid.uuid4().hex
        generator = await asyncio.to_thread(
            make_generator,
            self.config.motion,
            self.config.seed,
            self.config.steps,
            self.config.motion_models,
        )
        session = Session(
            session_id,
            avatar_id,
            functools.partial(pool.render, avatar_id),
            generator,
            self.metrics,
            self.margin_s,
            pool.slots,
            style,
        )
        pc = RTCPeerConnection()
        live = LiveSession(session, pc)

        @pc.on("track")  # fires inside setRemoteDescription
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                live.tasks.append(asyncio.ensure_future(session.consume(track)))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            state = pc.connectionState
            if state in ("failed", "closed"):
                await self.close_session(session_id)
            elif state == "disconnected":
                await asyncio.sleep(DISCONNECT_GRACE_S)
                if pc.connectionState in ("disconnected", "failed", "closed"):
                    await self.close_session(session_id)

        try:
            # The video track yields VP8 frames it encoded itself (stream_server.video_codec).
            video = pc.addTransceiver(session.video, direction="sendonly")
            video.setCodecPreferences(video_codec.vp8_only())
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            except Exception as exc:  # aiortc raises many types for bad SDP
                reason = str(exc) or exc.__class__.__name__
                if "video description" in reason:
                    reason = "the offer's video must accept VP8"
                raise ValueError(reason) from exc
            if video.mid is None:
                raise ValueError("the offer must receive video (add a recvonly video transceiver)")
            kinds = {t.kind for t in pc.getTransceivers()}
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "audio":
                    release_immediately(transceiver.receiver)
            if "audio" in kinds:
                pc.addTrack(session.audio)
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except BaseException:
            for task in live.tasks:
                task.cancel()
            await pc.close()
            raise
        session.start()
        self.sessions[session_id] = live
        self.metrics.sessions_total.inc()
        live.tasks.append(asyncio.ensure_future(self._watch(session_id)))
        return pc.localDescription, session_id

    async def _watch(self, session_id: str) -> None:
        """Close a session whose peer never connects, vanished or whose worker died.

        A peer that vanishes without closing (a killed tab, a cable pulled) is noticed by
        aiortc only when ICE consent expires (~30 s); the client's RTCP receiver reports,
        sent about every second while it receives video, tell it within a few seconds.
        """
        started = time.monotonic()
        last_report = started
        while (live := self.sessions.get(session_id)) is not None and not live.closing:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            if not live.session.alive:
                break
            if live.pc.connectionState != "connected":
                if now - started > CONNECT_TIMEOUT_S:
                    break
                continue
            report = await _last_receiver_report(live.pc)
            if report is not None:
                last_report = max(last_report, now - report)
            if now - last_report > PEER_SILENCE_S:
                log.info(
                    "session %s: no receiver reports for %.0f s", session_id, now - last_report
                )
                break
        await self.close_session(session_id)

    async def close_session(self, session_id: str) -> None:
        live = self.sessions.get(session_id)
        if live is None or live.closing:
            return
        live.closing = True
        live.session.stop()
        for task in live.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        with contextlib.suppress(Exception):
            await live.pc.close()
        await asyncio.to_thread(live.session.join)
        self.sessions.pop(session_id, None)
        log.info("session %s closed", session_id)


async def _last_receiver_report(pc: RTCPeerConnection) -> float | None:
    """Seconds since the newest RTCP receiver report from the peer, if any arrived."""
    newest = None
    for sender in pc.getSenders():
        with contextlib.suppress(Exception):
            for stats in (await sender.getStats()).values():
                if stats.type == "remote-inbound-rtp" and (
                    newest is None or stats.timestamp > newest
                ):
                    newest = stats.timestamp
    if newest is None:
        return None
    return max(0.0, (datetime.datetime.now(datetime.UTC) - newest).total_seconds())


def create_app(config: ServerConfig) -> web.Application:
    video_codec.install()
    server = AvatarServer(config)
    app = web.Application(client_max_size=52 * 1024 * 1024)
    app["server"] = server
    app.add_routes(server.routes())
    app.on_startup.append(server.startup)
    app.on_shutdown.append(server.shutdown)
    return app
