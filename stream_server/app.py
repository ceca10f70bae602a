"""The HTTP API and WebRTC signaling (aiohttp + aiortc). See docs/api.md."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)

from contracts.motion_channel import LABEL as MOTION_LABEL
from contracts.paths import WEB_CLIENT
from contracts.style import NEUTRAL, STYLES, Style
from engines import tts
from engines.avatar import AvatarError
from engines.motion_generators import DEFAULT_LIVE_MOTION, make_generator
from engines.motion_stream import MotionGenerator
from stream_server import video_codec, viewers
from stream_server.access import AccessPolicy
from stream_server.admission import Admission
from stream_server.avatars import MAX_UPLOAD_BYTES, AvatarStore
from stream_server.balancer_agent import serve_agent
from stream_server.capacity import CpuMeter, FrameCost, probe, sessions_for
from stream_server.fanout import Fanout, describe, unpublish
from stream_server.gc_policy import collect_closed_session, freeze_startup
from stream_server.http_errors import error, json_errors
from stream_server.http_limits import HttpError, parse_json, read_body
from stream_server.ice_servers import IceServers
from stream_server.janus_api import JanusTarget
from stream_server.jitter import release_immediately
from stream_server.live_session import LiveSession
from stream_server.metrics import Metrics
from stream_server.render_pool import RenderPool
from stream_server.render_slots import default_slots
from stream_server.sdp_limits import SdpError, check_offer_sdp
from stream_server.session import Session, default_margin_s
from stream_server.speaker import QueueFull, Speaker
from stream_server.uploads import UploadError, UploadLimits, receive_image
from stream_server.whip_whep import WhipWhep, as_dtls_server, close_viewers

log = logging.getLogger(__name__)

MAX_OFFER_BYTES = 64 * 1024
MAX_STYLE_BYTES = 1024
MAX_SAY_BYTES = 16 * 1024  # a say request: up to 2000 characters of text, escaped
DISCONNECT_GRACE_S = 2.0  # "disconnected" may recover; "failed"/"closed" end at once
CONNECT_TIMEOUT_S = 10.0  # an answered offer whose peer never connects gives its slot back
PEER_SILENCE_S = 3.0  # no RTCP receiver report from the client for this long: it is gone
RETRY_AFTER_S = 5
MONITOR_S = 5.0  # how often the server reads its CPU and its sessions' frame rates
SLOW_FPS = 24.0  # a session below this over a window is logged (overload)


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
    cache_max_mb: float = 2048.0  # the avatar cache's cap, LRU-evicted (stream_server.avatars)
    capacity: int | None = None  # sessions this machine serves at 25 fps (None: measure it)
    access: AccessPolicy = field(default_factory=AccessPolicy)  # token, hosts, origins
    node_id: str | None = None  # behind a balancer: session ids start "<node_id>-"
    agent: tuple[str, int] | None = None  # (host, port) of HAProxy's agent check
    publish_to: JanusTarget | None = None  # the Janus sessions are published into (fanout)
    publish_on_request: bool = False  # only sessions that ask (else every one)
    ice: IceServers = field(default_factory=IceServers)  # STUN/TURN for clients behind NAT


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
        self.admission = Admission(config.max_sessions, config.capacity or config.max_sessions)
        self.frame_cost: FrameCost | None = None  # None until measured (or --capacity given)
        self._monitor: asyncio.Task | None = None
        self._agent: asyncio.AbstractServer | None = None  # HAProxy agent check (balancer_agent)
        self.fanout = Fanout(self, config.publish_to, not config.publish_on_request)
        self.margin_s = (  # follows the admitted limit once capacity is measured (_set_capacity)
            default_margin_s(self.admission.limit)
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
        if self.config.capacity is None:
            await self._probe_capacity()
        self._monitor = asyncio.ensure_future(self._watch_load())
        if self.config.agent is not None:
            self._agent = await serve_agent(
                *self.config.agent, lambda: (self.admission.taken, self.admission.limit)
            )
        frozen = freeze_startup()  # later collections walk only what sessions add
        log.info(
            "ready: default avatar %s, %d sessions (max %d, capacity %d), compute margin %.0f ms"
            ", %d start-up objects frozen",
            self.avatars.default_id,
            self.admission.limit,
            self.config.max_sessions,
            self.admission.capacity,
            self.margin_s * 1000.0,
            frozen,
        )

    async def _probe_capacity(self) -> None:
        """Time a frame here (stream_server.capacity) and admit what fits at 25 fps."""
        pool, avatar_id = self.pool, self.avatars.default_id
        assert pool is not None and avatar_id is not None
        generator = await self._new_generator()
        cost = await asyncio.to_thread(probe, generator, functools.partial(pool.render, avatar_id))
        self._set_capacity(cost)

    async def _new_generator(self) -> MotionGenerator:
        """A fresh motion generator of the server's kind (built off the event loop)."""
        config = self.config
        return await asyncio.to_thread(
            make_generator, config.motion, config.seed, config.steps, config.motion_models
        )

    def _set_capacity(self, cost: FrameCost) -> None:
        """Record what a frame costs; admit what fits, unless --capacity fixed it."""
        self.frame_cost = cost
        if self.config.capacity is not None:
            return
        capacity = sessions_for(cost.total_ms, usable_cpus())
        if capacity != self.admission.capacity:
            log.info(
                "capacity: %d sessions at 25 fps (a frame costs %.1f ms of CPU, %s)",
                capacity,
                cost.total_ms,
                cost.source,
            )
        self.admission.capacity = capacity
        if self.config.margin_ms is None:  # new sessions' margin: the load it now admits
            margin = default_margin_s(self.admission.limit)
            if margin != self.margin_s:
                log.info("compute margin %.0f ms for new sessions", margin * 1000.0)
            self.margin_s = margin

    async def _watch_load(self) -> None:
        """Every few seconds: each session's frame rate (a session below 24 fps is logged,
        so overload shows), and, with sessions running, the CPU a frame really costs here,
        which updates the capacity (unless --capacity fixed it)."""
        pool = self.pool
        assert pool is not None
        meter = CpuMeter(lambda: pool.pids)
        sent: dict[str, tuple[float, int]] = {}
        while True:
            await asyncio.sleep(MONITOR_S)
            now = time.monotonic()
            rates = {}
            for sid, live in list(self.sessions.items()):
                frames = live.session.stats.frames_sent
                if sid in sent and live.started:
                    t0, f0 = sent[sid]
                    rates[sid] = (frames - f0) / max(1e-3, now - t0)
                sent[sid] = (now, frames)
            for sid in set(sent) - set(self.sessions):
                del sent[sid]
            self.metrics.session_fps_min.value = round(min(rates.values()), 1) if rates else 0.0
            if rates and min(rates.values()) < SLOW_FPS:
                log.warning(
                    "overloaded: %d sessions at %.1f-%.1f fps",
                    len(rates),
                    min(rates.values()),
                    max(rates.values()),
                )
            if not self.sessions:
                meter = CpuMeter(lambda: pool.pids)  # idle time says nothing of a frame
                continue
            measured = await asyncio.to_thread(meter.sample, self.metrics.frames_delivered.value)
            if measured is not None:
                known = self.frame_cost or FrameCost(0.0, 0.0, 0.0, "measured", measured)
                self._set_capacity(known.measured(measured))

    async def shutdown(self, _app: web.Application) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
        if self._agent is not None:
            self._agent.close()
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
            web.post("/api/sessions/{session_id}/say", self.say),
            web.get("/api/voices", self.list_voices),
            web.get("/api/ice-servers", self.ice_servers),
            web.delete("/api/sessions/{session_id}", self.delete_session),
            *WhipWhep(self).routes(),
            *self.fanout.routes(),
            web.static("/static", WEB_CLIENT, show_index=False),
        ]

    async def index(self, _request: web.Request) -> web.StreamResponse:
        return web.FileResponse(WEB_CLIENT / "index.html")

    @property
    def default_style(self) -> Style:
        """A new session's style when its request names none (``--style``)."""
        return self.config.style

    async def healthz(self, _request: web.Request) -> web.Response:
        admission = self.admission
        return web.json_response(
            {
                "status": "ok" if self.pool is not None else "starting",
                "sessions": admission.taken,
                "connecting": sum(not live.started for live in self.sessions.values()),
                "max_sessions": admission.limit,
                "capacity": admission.capacity,
                "max_sessions_option": admission.max_sessions,
                "load": round(admission.taken / admission.limit, 2),
                "frame_cost": None if self.frame_cost is None else self.frame_cost.as_json(),
                "session_fps_min": self.metrics.session_fps_min.value,
                "uptime_s": round(time.monotonic() - self.started, 1),
            }
        )

    async def metrics_text(self, _request: web.Request) -> web.Response:
        self.metrics.sessions.value = self.admission.taken
        self.metrics.capacity.value = self.admission.limit
        if self.frame_cost is not None:
            self.metrics.frame_cpu_ms.value = round(self.frame_cost.total_ms, 2)
        return web.Response(text=self.metrics.render(), content_type="text/plain", charset="utf-8")

    async def list_avatars(self, _request: web.Request) -> web.Response:
        return web.json_response({"avatars": [a.as_json() for a in self.avatars.list()]})

    async def avatar_image(self, request: web.Request) -> web.StreamResponse:
        path = self.avatars.image_path(request.match_info["avatar_id"])
        if path is None:
            return error(404, "unknown avatar")
        return web.FileResponse(path)

    async def upload_avatar(self, request: web.Request) -> web.Response:
        """Receive the image into a temporary file within the limits (stream_server.uploads),
        prepare it (one at a time, in a child process) and keep the avatar cache under
        --cache-max-mb, sparing the avatars of live sessions (stream_server.avatars)."""
        limits = UploadLimits(max_bytes=MAX_UPLOAD_BYTES)
        try:
            async with (
                self.avatars.gate.admit(),
                receive_image(request, self.config.cache_dir / "tmp", limits) as image,
            ):
                info = await self.avatars.upload(
                    image.path,
                    image.name,
                    cache_max_bytes=int(self.config.cache_max_mb * 2**20),
                    in_use=lambda: {live.session.avatar_id for live in self.sessions.values()},
                )
        except UploadError as exc:  # the body was not read to its end: close the connection
            response = error(exc.status, exc.message, **exc.headers)
            response.force_close()
            return response
        except AvatarError as exc:
            return error(422, str(exc))
        return web.json_response(info.as_json(), status=201)

    async def offer(self, request: web.Request) -> web.Response:
        body = await read_body(request, MAX_OFFER_BYTES, "the offer")
        params = parse_json(body, "the offer")
        if not isinstance(params, dict) or "sdp" not in params or "type" not in params:
            raise HttpError(400, "the offer needs 'sdp' and 'type'")
        sdp, kind = params["sdp"], params["type"]
        if kind != "offer" or not isinstance(sdp, str) or "m=" not in sdp:
            raise HttpError(400, "'type' must be 'offer' and 'sdp' a session description")
        try:
            check_offer_sdp(sdp)
        except SdpError as exc:
            raise HttpError(400, f"malformed offer: {exc}") from None
        avatar_id = params.get("avatar") or self.avatars.default_id
        if not isinstance(avatar_id, str) or self.avatars.get(avatar_id) is None:
            raise HttpError(404, f"unknown avatar {str(avatar_id)[:80]!r}")
        try:
            style = style_of(params, self.config.style)
        except ValueError as exc:
            raise HttpError(400, str(exc)) from None
        opened = await self.admit(sdp, avatar_id, style)
        if opened is None:
            return self.busy()
        answer, session_id = opened
        return web.json_response({"sdp": answer.sdp, "type": answer.type, "session_id": session_id})

    async def admit(
        self, sdp: str, avatar_id: str, style: Style, kind: str = "offer"
    ) -> tuple[RTCSessionDescription, str] | None:
        """Take a slot and open a session for a checked offer (``_connect``): its answer and
        id, or None when there is no slot (``busy``). A bad offer is an HttpError 400."""
        # The slot is taken here, before any await: simultaneous offers cannot all pass.
        self.avatars.touch(avatar_id)  # used now: the cache's eviction spares it longest
        if self.pool is None or not self.admission.take():
            self.metrics.rejected.inc()
            return None
        try:
            return await self._connect(sdp, avatar_id, style, kind)
        except BaseException as exc:
            self.admission.release()
            if isinstance(exc, ValueError):
                raise HttpError(400, f"malformed offer: {exc}") from None
            raise

    def busy(self) -> web.Response:
        """The 503 of an offer ``admit`` found no slot for."""
        message = self.admission.refusal() if self.pool else "the server is starting"
        return error(503, message, **{"Retry-After": str(RETRY_AFTER_S)})

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
                "motion_channel": None
                if s.motion_channel is None
                else {
                    "sent": s.motion_channel.sent,
                    "dropped": s.motion_channel.dropped,
                    "received": s.motion_channel.received,
                    "refused": s.motion_channel.refused,
                },
                "published": describe(live),
            }
        )

    async def interrupt(self, request: web.Request) -> web.Response:
        live = self.sessions.get(request.match_info["session_id"])
        if live is None:
            return error(404, "unknown session")
        if live.speaker is not None:
            live.speaker.interrupt()
        live.session.clear_buffer()
        return web.json_response({"interrupted": True})

    async def say(self, request: web.Request) -> web.Response:
        """Speak text in a live session: {"text": "...", "voice": NAME?} (engines/tts.py)."""
        live = self.sessions.get(request.match_info["session_id"])
        if live is None:
            return error(404, "unknown session")
        body = await read_body(request, MAX_SAY_BYTES, "the text")
        params = parse_json(body, 'the text ({"text": "...", "voice": NAME})')
        if not isinstance(params, dict):
            return error(400, 'expected a JSON object: {"text": "...", "voice": NAME}')
        unknown = set(params) - {"text", "voice"}
        if unknown:
            return error(400, f"unknown keys: {', '.join(sorted(unknown))[:200]}")
        try:
            text, voice = tts.check(params.get("text"), params.get("voice"))
        except tts.TtsError as exc:
            return error(503 if not tts.voices() else 400, str(exc))
        if live.closing:
            return error(404, "unknown session")
        if live.speaker is None:
            live.speaker = Speaker(live.session)
        try:
            waiting = live.speaker.say(text, voice)
        except QueueFull as exc:
            return error(429, str(exc), **{"Retry-After": "1"})
        if live.speaker.task is not None and live.speaker.task not in live.tasks:
            live.tasks.append(live.speaker.task)
        return web.json_response(
            {"queued": waiting, "voice": voice, "sentences": len(tts.sentences(text))},
            status=202,
        )

    async def ice_servers(self, _request: web.Request) -> web.Response:
        """STUN/TURN for the client's RTCPeerConnection (TURN credentials minted now)."""
        return web.json_response(self.config.ice.for_browser())

    def rtc_configuration(self) -> RTCConfiguration | None:
        """The server's own peer connections' STUN/TURN (``--ice-server``)."""
        return self.config.ice.configuration()

    async def list_voices(self, request: web.Request) -> web.Response:
        return web.json_response({"voices": tts.voices(), "default": tts.default_voice()})

    async def set_style(self, request: web.Request) -> web.Response:
        """Change a live session's speaking style: {"style": NAME, "intensity": 0..1}."""
        live = self.sessions.get(request.match_info["session_id"])
        if live is None:
            return error(404, "unknown session")
        body = await read_body(request, MAX_STYLE_BYTES, "the style")
        params = parse_json(body, 'the style ({"style": NAME, "intensity": 0..1})')
        try:
            style = style_of(params, None)
        except ValueError as exc:
            return error(400, str(exc))
        if live.closing:
            return error(404, "unknown session")
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
        self, sdp: str, avatar_id: str, style: Style, kind: str = "offer"
    ) -> tuple[RTCSessionDescription, str]:
        """A session for ``sdp``: an offer that receives the avatar ("offer"), or a WHIP
        publisher's that only sends audio ("whip": its frames go to WHEP viewers)."""
        pool = self.pool  # the avatar is known (offer checked) and its rig on disk (store)
        assert pool is not None
        session_id = secrets.token_hex(16)  # unguessable; logs show its first 8 digits
        if self.config.node_id:  # the balancer routes follow-ups by it (balancer_agent)
            session_id = f"{self.config.node_id}-{session_id}"
        generator = await self._new_generator()
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
        pc = RTCPeerConnection(self.rtc_configuration())
        live = LiveSession(session, pc, kind=kind)

        @pc.on("track")  # fires inside setRemoteDescription
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                live.tasks.append(asyncio.ensure_future(session.consume(track)))

        @pc.on("datachannel")  # the client's channels, once connected
        def on_datachannel(channel: RTCDataChannel) -> None:
            if channel.label == MOTION_LABEL and session.motion_channel is None:
                session.attach_motion_channel(channel)
            else:  # one motion channel a session; nothing else is served
                channel.close()

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            state = pc.connectionState
            if state == "connected" and not live.started and not live.closing:
                live.started = True  # costs nothing until the peer connects
                session.start()
                if kind == "whip":  # no peer takes the frames: time them for the viewers
                    live.tasks.append(asyncio.ensure_future(viewers.pump(session)))
                self.fanout.started(live)
            elif state in ("failed", "closed"):
                await self.close_session(session_id)
            elif state == "disconnected":
                await asyncio.sleep(DISCONNECT_GRACE_S)
                if pc.connectionState in ("disconnected", "failed", "closed"):
                    await self.close_session(session_id)

        try:
            # The video track yields VP8 frames it encoded itself (stream_server.video_codec).
            video = None
            if kind == "offer":
                video = pc.addTransceiver(session.video, direction="sendonly")
                video.setCodecPreferences(video_codec.vp8_only())
            try:
                await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            except Exception as exc:  # aiortc raises many types for bad SDP
                reason = str(exc) or exc.__class__.__name__
                if "video description" in reason:
                    reason = "the offer's video must accept VP8"
                raise ValueError(reason) from exc
            if video is not None and video.mid is None:
                raise ValueError("the offer must receive video (add a recvonly video transceiver)")
            kinds = {t.kind for t in pc.getTransceivers()}
            if kind == "whip" and "audio" not in kinds:
                raise ValueError("a WHIP offer must send audio (the speech to animate)")
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "audio":
                    release_immediately(transceiver.receiver)
                elif kind == "whip":  # a publisher's camera: declined (nobody would decode it)
                    transceiver.direction = "inactive"
            if "audio" in kinds and kind == "offer":
                pc.addTrack(session.audio)
            answer = await pc.createAnswer()
            if kind == "whip":  # GStreamer's publishers serve RSA DTLS (whip_whep)
                answer = as_dtls_server(sdp, answer)
            await pc.setLocalDescription(answer)
        except BaseException:
            for task in live.tasks:
                task.cancel()
            await pc.close()
            raise
        self.sessions[session_id] = live
        self.metrics.sessions_total.inc()
        live.watcher = asyncio.ensure_future(self._watch(session_id))
        return pc.localDescription, session_id

    async def _watch(self, session_id: str) -> None:
        """Close a session whose peer never connects, vanished or whose worker died.

        A peer that vanishes without closing (a killed tab, a cable pulled) is noticed by
        aiortc only when ICE consent expires (~30 s); the client's RTCP receiver reports,
        sent about every second while it receives video, tell it within a few seconds.
        Ends by itself within a second of the session closing; this frame holds only the
        id across its sleeps, so it never keeps a closed session's objects alive.
        """
        started = time.monotonic()
        last_report = started
        while True:
            await asyncio.sleep(1.0)
            verdict, last_report = await self._check(session_id, started, last_report)
            if verdict == "closed":
                return
            if verdict == "close":
                break
        await self.close_session(session_id)

    async def _check(
        self, session_id: str, started: float, last_report: float
    ) -> tuple[str, float]:
        """One look at a session for ``_watch``: "closed" (gone or closing), "close" (close
        it now) or "ok", and the newest receiver report's time."""
        live = self.sessions.get(session_id)
        if live is None or live.closing:
            return "closed", last_report
        now = time.monotonic()
        if live.started and not live.session.alive:
            return "close", last_report
        if live.pc.connectionState != "connected":
            return ("close" if now - started > CONNECT_TIMEOUT_S else "ok"), last_report
        if live.kind == "whip":  # a publisher receives nothing: its audio is its heartbeat
            count = live.session.stats.audio_chunks_in
            if count != live.audio_seen[0]:
                live.audio_seen = (count, now)
            quiet = now - max(live.audio_seen[1], started)
            return ("close" if quiet > PEER_SILENCE_S else "ok"), last_report
        report = await _last_receiver_report(live.pc)
        if report is not None:
            last_report = max(last_report, now - report)
        if now - last_report > PEER_SILENCE_S:
            log.info(
                "session %s…: no receiver reports for %.0f s", session_id[:8], now - last_report
            )
            return "close", last_report
        return "ok", last_report

    async def close_session(self, session_id: str) -> None:
        live = self.sessions.get(session_id)
        if live is None or live.closing:
            return
        live.closing = True
        if live.speaker is not None:
            live.speaker.close()
        live.session.stop()
        await close_viewers(live)
        await unpublish(live)
        await _stop_tasks(live.tasks, live.pc)
        await asyncio.to_thread(live.session.join)
        self.sessions.pop(session_id, None)
        del live
        self.admission.release()
        collect_ms = collect_closed_session()  # its codecs' threads go now (gc_policy)
        log.info("session %s… closed (collected in %.1f ms)", session_id[:8], collect_ms)


async def _stop_tasks(tasks: list[asyncio.Task], pc: RTCPeerConnection) -> None:
    """Close a session's peer connection and let its tasks end (the caller's own and
    ``_watch`` end by themselves). Closing the connection ends the client's audio track,
    so ``Session.consume`` returns on its own; only a task still running 2 s later is
    cancelled. A cancelled task's frame, locals and all, stays referenced from its
    CancelledError, which the event loop keeps past a collection: a consume task
    cancelled while it waited kept its session's resamplers and their ffmpeg threads."""
    with contextlib.suppress(Exception):
        await pc.close()
    others = [task for task in tasks if task is not asyncio.current_task()]
    if not others:
        return
    _done, pending = await asyncio.wait(others, timeout=2.0)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=1.0)


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


SERVER = web.AppKey("server", AvatarServer)


def usable_cpus() -> int:
    """The cores this process may run on (a container's limit, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def create_app(config: ServerConfig) -> web.Application:
    video_codec.install()
    server = AvatarServer(config)
    app = web.Application(
        client_max_size=52 * 1024 * 1024,
        middlewares=[json_errors, config.access.middleware],
    )
    app[SERVER] = server
    app.add_routes(server.routes())
    app.on_startup.append(server.startup)
    app.on_shutdown.append(server.shutdown)
    return app
