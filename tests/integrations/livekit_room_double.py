"""An in-process double of two LiveKit rooms joined by one server: what livekit-agents'
avatar protocol touches (participants, byte streams, RPCs, track publication), carried
between the agent's room and the avatar's room on one event loop.

Only the room is a double. The code on both sides is livekit-agents' own
(``DataStreamAudioOutput`` sending, ``DataStreamAudioReceiver`` + ``AvatarRunner``
receiving), and the media sources behind ``publish_track`` are livekit's real
``AudioSource`` / ``VideoSource`` / ``AVSynchronizer`` (the native FFI library, no server).
A real LiveKit server cannot run on this machine (docs/integrations/livekit.md).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from livekit import rtc
from livekit.rtc.data_stream import ByteStreamInfo

_ids = itertools.count()


@dataclass
class RpcLogEntry:
    at: float
    caller: str
    callee: str
    method: str
    payload: str
    response: str = ""
    answered_at: float = 0.0


class Hub:
    """The 'server': which rooms are joined, and the log of every RPC between them."""

    def __init__(self) -> None:
        self.rooms: dict[str, FakeRoom] = {}
        self.rpcs: list[RpcLogEntry] = []
        self.streams: list[tuple[float, str, dict[str, str]]] = []  # opened byte streams

    def join(self, room: FakeRoom) -> None:
        for other in self.rooms.values():
            other._add_remote(room.local_participant)
            room._add_remote(other.local_participant)
        self.rooms[room.local_participant.identity] = room

    def leave(self, room: FakeRoom) -> None:
        self.rooms.pop(room.local_participant.identity, None)
        for other in self.rooms.values():
            other._remove_remote(room.local_participant.identity)


class FakeRemoteParticipant:
    def __init__(self, local: FakeLocalParticipant) -> None:
        self.identity = local.identity
        self.sid = local.sid
        self.kind = local.kind
        self.attributes = local.attributes
        self.state = rtc.ParticipantState.PARTICIPANT_STATE_ACTIVE
        self.track_publications: dict[str, Any] = {}


@dataclass
class FakePublication:
    track: Any
    sid: str = field(default_factory=lambda: f"TR_{next(_ids)}")

    async def wait_for_subscription(self) -> None:
        return None


class FakeByteStreamReader:
    def __init__(self, info: ByteStreamInfo) -> None:
        self.info = info
        self._chunks: asyncio.Queue[bytes | None] = asyncio.Queue()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._chunks.get()
        if chunk is None:
            raise StopAsyncIteration
        return chunk


class FakeByteStreamWriter:
    def __init__(self, readers: list[FakeByteStreamReader]) -> None:
        self._readers = readers

    async def write(self, data: bytes) -> None:
        for reader in self._readers:
            reader._chunks.put_nowait(bytes(data))

    async def aclose(self, **_: Any) -> None:
        for reader in self._readers:
            reader._chunks.put_nowait(None)


class FakeLocalParticipant:
    def __init__(self, room: FakeRoom, identity: str, kind: int, attributes: dict[str, str]):
        self._room = room
        self.identity = identity
        self.sid = f"PA_{next(_ids)}"
        self.kind = kind
        self.attributes = dict(attributes)
        self._rpc_handlers: dict[str, Callable[[rtc.RpcInvocationData], Any]] = {}
        self.track_publications: dict[str, FakePublication] = {}

    def register_rpc_method(
        self, method: str, handler: Callable[[rtc.RpcInvocationData], Any] | None = None
    ) -> Any:
        if handler is None:
            return lambda fn: self.register_rpc_method(method, fn)
        self._rpc_handlers[method] = handler
        return handler

    async def perform_rpc(
        self,
        *,
        destination_identity: str,
        method: str,
        payload: str,
        response_timeout: float | None = None,
    ) -> str:
        hub = self._room.hub
        entry = RpcLogEntry(time.monotonic(), self.identity, destination_identity, method, payload)
        hub.rpcs.append(entry)
        callee = hub.rooms.get(destination_identity)
        if callee is None:
            raise rtc.RpcError(rtc.RpcError.ErrorCode.RECIPIENT_NOT_FOUND, "no such participant")
        handler = callee.local_participant._rpc_handlers.get(method)
        if handler is None:
            raise rtc.RpcError(rtc.RpcError.ErrorCode.UNSUPPORTED_METHOD, method)
        data = rtc.RpcInvocationData(
            str(uuid.uuid4()), self.identity, payload, response_timeout or 10.0, method
        )
        result = handler(data)
        if inspect.isawaitable(result):
            result = await result
        entry.response, entry.answered_at = str(result), time.monotonic()
        return str(result)

    async def stream_bytes(
        self,
        name: str,
        *,
        topic: str = "",
        destination_identities: list[str] | None = None,
        attributes: dict[str, str] | None = None,
        **_: Any,
    ) -> FakeByteStreamWriter:
        hub = self._room.hub
        hub.streams.append((time.monotonic(), topic, dict(attributes or {})))
        readers: list[FakeByteStreamReader] = []
        for identity in destination_identities or list(hub.rooms):
            room = hub.rooms.get(identity)
            if room is None or identity == self.identity:
                continue
            handler = room._byte_handlers.get(topic)
            if handler is None:
                continue
            info = ByteStreamInfo(
                stream_id=str(uuid.uuid4()),
                mime_type="application/octet-stream",
                topic=topic,
                timestamp=int(time.time() * 1000),
                size=None,
                attributes=dict(attributes or {}),
                name=name,
            )
            reader = FakeByteStreamReader(info)
            readers.append(reader)
            handler(reader, self.identity)
        return FakeByteStreamWriter(readers)

    async def publish_track(self, track: Any, options: Any = None) -> FakePublication:
        publication = FakePublication(track)
        self.track_publications[publication.sid] = publication
        return publication

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        self.attributes.update(attributes)


class FakeRoom(rtc.EventEmitter[str]):
    """One participant's view of the room."""

    def __init__(
        self,
        hub: Hub,
        identity: str,
        kind: int = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD,
        attributes: dict[str, str] | None = None,
        name: str = "test-room",
    ) -> None:
        super().__init__()
        self.hub = hub
        self.name = name
        self.local_participant = FakeLocalParticipant(self, identity, kind, attributes or {})
        self.remote_participants: dict[str, FakeRemoteParticipant] = {}
        self._byte_handlers: dict[str, Callable[..., None]] = {}
        self._connected = False

    def isconnected(self) -> bool:
        return self._connected

    @property
    def connection_state(self) -> int:
        return (
            rtc.ConnectionState.CONN_CONNECTED
            if self._connected
            else rtc.ConnectionState.CONN_DISCONNECTED
        )

    async def connect(self) -> None:
        self._connected = True
        self.hub.join(self)
        self.emit("connection_state_changed", rtc.ConnectionState.CONN_CONNECTED)

    async def disconnect(self) -> None:
        if not self._connected:
            return
        self._connected = False
        self.hub.leave(self)
        self.emit("connection_state_changed", rtc.ConnectionState.CONN_DISCONNECTED)
        self.emit("disconnected", "client initiated")

    def register_byte_stream_handler(self, topic: str, handler: Callable[..., None]) -> None:
        if topic in self._byte_handlers:
            raise ValueError(f"byte stream handler for topic {topic!r} already set")
        self._byte_handlers[topic] = handler

    def unregister_byte_stream_handler(self, topic: str) -> None:
        self._byte_handlers.pop(topic, None)

    def _add_remote(self, local: FakeLocalParticipant) -> None:
        participant = FakeRemoteParticipant(local)
        self.remote_participants[local.identity] = participant
        self.emit("participant_connected", participant)
        self.emit("participant_active", participant)

    def _remove_remote(self, identity: str) -> None:
        participant = self.remote_participants.pop(identity, None)
        if participant is not None:
            self.emit("participant_disconnected", participant)
