"""A client of the Janus WebRTC server's HTTP API (janus.transport.http), as far as the
VideoRoom fan-out needs it: a Janus session, plugin handles, synchronous and asynchronous
plugin requests, and the long poll that carries the asynchronous answers (events, trickled
candidates). Used by ``stream_server.janus_publish`` (the avatar as a VideoRoom publisher) and
``measure.janus_viewer`` (subscribers). Janus's protocol: https://janus.conf.meetecho.com/docs/rest.html

``janus+http://HOST:PORT/janus?room=N`` names a Janus server (``JanusTarget``): the
``janus+`` prefix marks the protocol, the rest is the HTTP API's base URL, and ``room``
(optional) an existing VideoRoom to publish into; without it each session gets its own room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import aiohttp
from aiortc import RTCPeerConnection
from aiortc.sdp import candidate_from_sdp

log = logging.getLogger(__name__)

VIDEOROOM = "janus.plugin.videoroom"
REQUEST_TIMEOUT_S = 10.0  # one HTTP request, or an asynchronous answer's wait
POLL_TIMEOUT_S = 40.0  # Janus answers a long poll with a keepalive after 30 s
KEEPALIVE_S = 25.0  # Janus drops a session after 60 s without a request


class JanusError(RuntimeError):
    """Janus refused a request, answered badly, or could not be reached."""


@dataclass(frozen=True)
class JanusTarget:
    """A Janus server's HTTP API base URL, and optionally the room to publish into."""

    base: str  # http(s)://host:port/janus
    room: int | None = None

    @classmethod
    def parse(cls, url: str) -> JanusTarget:
        """``janus+http(s)://host[:port]/path[?room=N]``; ValueError with the reason."""
        parts = urlsplit(url.strip())
        if parts.scheme not in ("janus+http", "janus+https"):
            raise ValueError(f"a Janus URL starts janus+http:// or janus+https://, not {url!r}")
        if not parts.hostname:
            raise ValueError(f"no host in {url!r}")
        query = parse_qs(parts.query)
        unknown = set(query) - {"room"}
        if unknown:
            raise ValueError(f"unknown Janus URL parameters: {', '.join(sorted(unknown))}")
        room = None
        if "room" in query:
            try:
                room = int(query["room"][-1])
            except ValueError:
                raise ValueError("room must be a number (a VideoRoom id)") from None
            if room <= 0:
                raise ValueError("room must be a positive number")
        scheme = parts.scheme[len("janus+") :]
        base = urlunsplit((scheme, parts.netloc, parts.path or "/janus", "", ""))
        return cls(base.rstrip("/"), room)


Trickle = Callable[[dict[str, Any] | None], None]  # a candidate, or None: no more


class JanusSession:
    """One Janus session over HTTP: create, attach handles, send requests, poll events.

    ``request`` is a synchronous plugin request (Janus answers "success" at once);
    ``message`` an asynchronous one (Janus acks, and the answer comes as an event with the
    same transaction through the long poll). Events without a transaction (a subscriber's
    "hangup", "webrtcup", plugin notifications) go to ``on_event``; trickled candidates to
    the handle's ``trickle`` callback. ``close`` ends the Janus session (its handles with it).
    """

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.id: int | None = None
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._trickle: dict[int, Trickle] = {}
        self.on_event: Callable[[dict[str, Any]], None] | None = None
        self._tasks: list[asyncio.Task] = []
        self.closed = False

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        body = {**body, "transaction": body.get("transaction") or secrets.token_hex(8)}
        try:
            async with self.http.post(
                self.base + path, json=body, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
            ) as response:
                if response.status != 200:
                    raise JanusError(f"Janus {path or '/'}: HTTP {response.status}")
                reply = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            raise JanusError(f"Janus at {self.base} unreachable: {reason}") from exc
        if not isinstance(reply, dict):
            raise JanusError(f"Janus {path or '/'}: not a JSON object")
        if reply.get("janus") == "error":
            err = reply.get("error") or {}
            raise JanusError(f"Janus {body['janus']}: {err.get('code')} {err.get('reason')}")
        return reply

    async def create(self) -> int:
        reply = await self._post("", {"janus": "create"})
        self.id = int(reply["data"]["id"])
        self._tasks = [
            asyncio.ensure_future(self._poll()),
            asyncio.ensure_future(self._keepalive()),
        ]
        return self.id

    async def attach(self, plugin: str = VIDEOROOM, trickle: Trickle | None = None) -> int:
        reply = await self._post(f"/{self.id}", {"janus": "attach", "plugin": plugin})
        handle = int(reply["data"]["id"])
        if trickle is not None:
            self._trickle[handle] = trickle
        return handle

    async def request(self, handle: int, body: dict[str, Any]) -> dict[str, Any]:
        """A synchronous plugin request: the plugin's data (a plugin error raises)."""
        reply = await self._post(f"/{self.id}/{handle}", {"janus": "message", "body": body})
        return _plugin_data(reply, body)

    async def message(
        self, handle: int, body: dict[str, Any], jsep: dict[str, str] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """An asynchronous plugin request: the answering event's plugin data and its JSEP."""
        transaction = secrets.token_hex(8)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[transaction] = waiter
        message: dict[str, Any] = {"janus": "message", "body": body, "transaction": transaction}
        if jsep is not None:
            message["jsep"] = jsep
        try:
            reply = await self._post(f"/{self.id}/{handle}", message)
            if reply.get("janus") == "success":  # answered at once after all
                return _plugin_data(reply, body), reply.get("jsep")
            event = await asyncio.wait_for(waiter, REQUEST_TIMEOUT_S)
        except TimeoutError:
            raise JanusError(f"Janus did not answer {body.get('request')!r} in time") from None
        finally:
            self._waiting.pop(transaction, None)
        return _plugin_data(event, body), event.get("jsep")

    async def trickle(self, handle: int, candidate: dict[str, Any] | None) -> None:
        """Send one of our candidates (None: gathering is complete)."""
        value: dict[str, Any] = candidate if candidate is not None else {"completed": True}
        await self._post(f"/{self.id}/{handle}", {"janus": "trickle", "candidate": value})

    async def detach(self, handle: int) -> None:
        self._trickle.pop(handle, None)
        with contextlib.suppress(JanusError):
            await self._post(f"/{self.id}/{handle}", {"janus": "detach"})

    async def _poll(self) -> None:
        """The long poll: every event Janus has for this session, as it comes."""
        failures = 0
        while not self.closed:
            try:
                async with self.http.get(
                    f"{self.base}/{self.id}",
                    params={"maxev": "10"},
                    timeout=aiohttp.ClientTimeout(total=POLL_TIMEOUT_S),
                ) as response:
                    events = await response.json(content_type=None)
                failures = 0
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                failures += 1
                if failures >= 3 or self.closed:
                    log.warning("Janus long poll at %s failed: %s", self.base, exc)
                    self._fail(JanusError(f"Janus long poll failed: {exc}"))
                    return
                await asyncio.sleep(0.5)
                continue
            if isinstance(events, dict) and events.get("janus") == "error":  # e.g. a Janus
                reason = (events.get("error") or {}).get("reason")  # that restarted: no
                self._fail(JanusError(f"Janus session lost: {reason}"))  # such session
                return
            for event in events if isinstance(events, list) else [events]:
                if isinstance(event, dict):
                    self._dispatch(event)

    def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("janus")
        if kind == "keepalive":
            return
        if kind == "trickle":
            handle = event.get("sender")
            callback = self._trickle.get(int(handle)) if handle is not None else None
            if callback is not None:
                candidate = event.get("candidate") or {}
                callback(None if candidate.get("completed") else candidate)
            return
        waiter = self._waiting.get(str(event.get("transaction")))
        if kind == "event" and waiter is not None and not waiter.done():
            waiter.set_result(event)
        elif self.on_event is not None:
            self.on_event(event)

    def _fail(self, exc: JanusError) -> None:
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(exc)
        if self.on_event is not None:
            self.on_event({"janus": "lost", "reason": str(exc)})

    async def _keepalive(self) -> None:
        while not self.closed:
            await asyncio.sleep(KEEPALIVE_S)
            with contextlib.suppress(JanusError):
                await self._post(f"/{self.id}", {"janus": "keepalive"})

    async def close(self) -> None:
        """Destroy the Janus session (its handles and their peer connections go with it)."""
        if self.closed:
            return
        self.closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.id is not None:
            with contextlib.suppress(JanusError):
                await self._post(f"/{self.id}", {"janus": "destroy"})


class TrickledCandidates:
    """Janus's trickled ICE candidates for one peer connection (a ``Trickle`` callback):
    held until ``ready`` gives the connection with its remote description set, then added."""

    def __init__(self) -> None:
        self._pc: RTCPeerConnection | None = None
        self._early: list[dict[str, Any]] = []
        self._adding: set[asyncio.Task] = set()

    def __call__(self, candidate: dict[str, Any] | None) -> None:
        if candidate is None:
            return
        if self._pc is None:
            self._early.append(candidate)
            return
        task = asyncio.ensure_future(self._add(self._pc, candidate))
        self._adding.add(task)
        task.add_done_callback(self._adding.discard)

    async def ready(self, pc: RTCPeerConnection) -> None:
        self._pc = pc
        early, self._early = self._early, []
        for candidate in early:
            await self._add(pc, candidate)

    @staticmethod
    async def _add(pc: RTCPeerConnection, candidate: dict[str, Any]) -> None:
        text = str(candidate.get("candidate", ""))
        if not text:
            return
        with contextlib.suppress(Exception):  # a candidate aiortc cannot use is skipped
            parsed = candidate_from_sdp(text.removeprefix("candidate:"))
            parsed.sdpMid = candidate.get("sdpMid")
            parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
            await pc.addIceCandidate(parsed)


def _plugin_data(reply: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    data = (reply.get("plugindata") or {}).get("data")
    if not isinstance(data, dict):
        raise JanusError(f"Janus answered {body.get('request')!r} without plugin data")
    if "error_code" in data or "error" in data:
        raise JanusError(
            f"Janus {body.get('request')!r}: {data.get('error_code')} {data.get('error')}"
        )
    return data
