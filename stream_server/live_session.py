"""One live session as the server holds it: the session, its peer connection, its tasks,
its text speaker, its WHEP viewers and its Janus publisher (stream_server.app,
stream_server.whip_whep, stream_server.fanout)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiortc import RTCPeerConnection

from stream_server.janus_publish import JanusPublisher
from stream_server.session import Session
from stream_server.speaker import Speaker


@dataclass
class LiveSession:
    session: Session
    pc: RTCPeerConnection
    tasks: list[asyncio.Task] = field(default_factory=list)  # ended when the session closes
    # AvatarServer._watch: ends by itself; held here because the event loop keeps only weak
    # references to tasks
    watcher: asyncio.Task | None = None
    closing: bool = False
    started: bool = False  # the worker runs once the peer has connected
    speaker: Speaker | None = None  # text input (POST .../say), made on the first request
    kind: str = "offer"  # "offer" (the client watches) or "whip" (it only sends audio)
    viewers: dict[str, RTCPeerConnection] = field(default_factory=dict)  # WHEP, by id
    publisher: JanusPublisher | None = None  # published into Janus (stream_server.fanout)
    publish_error: str | None = None  # why the last publish failed
    publish_wanted: bool = False  # kept published into Janus (retried when it fails)
    audio_seen: tuple[int, float] = (0, 0.0)  # (audio chunks in, when that count changed)
