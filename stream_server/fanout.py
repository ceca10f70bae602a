"""Fan-out through an SFU: which sessions are published into Janus, and the API that asks
for it (docs/api.md, "Fan-out through Janus").

* ``emote serve --publish-to janus+http://HOST:8088/janus`` publishes every session once its
  peer connects (``started``); with ``--publish-on-request`` only those a client asks for:
* ``POST /api/sessions/{id}/publish`` publishes one session now (201 with where:
  ``{"janus", "room", "feed"}``; 409 if it already is; 503 when no Janus is configured; 502
  when Janus refuses or cannot be reached, and the session goes on unpublished).
  ``DELETE`` on it unpublishes (the room the server made goes too).

Only the configured Janus is ever contacted: a request cannot point the server elsewhere. A
failed publish never ends the session; ``GET /api/sessions/{id}`` shows it as
``"published": {"error": ...}``. A session meant to be published (every one, or one a
client published) stays so: a publish that fails, or a link to Janus that breaks later (Janus
restarted, the media failed), is tried again after 1, 2, 5, 10, then every 30 s, into a new
room, until it works, the session ends, or it is unpublished.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any, Protocol

from aiohttp import web

from stream_server.http_errors import error
from stream_server.janus_api import JanusError, JanusTarget
from stream_server.janus_publish import JanusPublisher
from stream_server.live_session import LiveSession

log = logging.getLogger(__name__)

RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)  # between publish attempts; the last repeats


class Host(Protocol):
    sessions: dict[str, LiveSession]


class Fanout:
    """Publishing the sessions of one server into its Janus."""

    def __init__(self, server: Host, target: JanusTarget | None, automatic: bool) -> None:
        self.server = server
        self.target = target
        self.automatic = automatic and target is not None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/sessions/{session_id}/publish", self.publish_route),
            web.delete("/api/sessions/{session_id}/publish", self.unpublish_route),
        ]

    def started(self, live: LiveSession) -> None:
        """A session's peer connected: publish it when every session is."""
        if self.automatic:
            live.publish_wanted = True
            self._keep_published(live)

    def _keep_published(self, live: LiveSession) -> None:
        live.tasks[:] = [task for task in live.tasks if not task.done()]  # bounded
        live.tasks.append(asyncio.ensure_future(self._publish_until_done(live)))

    async def _publish_until_done(self, live: LiveSession) -> None:
        """Publish, and on failure try again after 1, 2, 5, 10, then every 30 s, while the
        session lives and is meant to be published (a Janus that is down or restarting)."""
        for attempt in itertools.count():
            if not live.publish_wanted or live.closing or live.publisher is not None:
                return
            try:
                await self.publish(live)
                return
            except JanusError as exc:
                log.warning("session %s…: not published: %s", live.session.id[:8], exc)
            await asyncio.sleep(RETRY_S[min(attempt, len(RETRY_S) - 1)])

    def _lost(self, live: LiveSession, publisher: JanusPublisher, reason: str) -> None:
        """A published session's link to Janus broke (Janus restarted, the media failed):
        clean up, and publish again while it is wanted."""
        if live.publisher is not publisher:
            return
        log.warning("session %s…: Janus lost: %s", live.session.id[:8], reason)
        live.publisher, live.publish_error = None, f"lost: {reason}"
        live.tasks.append(asyncio.ensure_future(publisher.stop()))
        if live.publish_wanted and not live.closing:
            self._keep_published(live)

    async def publish(self, live: LiveSession) -> dict[str, Any]:
        """Publish ``live`` into the configured Janus: where it is. JanusError on failure
        (recorded for the session's stats)."""
        assert self.target is not None
        publisher = JanusPublisher(self.target, live.session)
        live.publisher, live.publish_error = publisher, None
        try:
            published = await publisher.start()
        except JanusError as exc:
            if live.publisher is publisher:
                live.publisher, live.publish_error = None, str(exc)
            raise
        if live.closing or live.publisher is not publisher:  # ended or unpublished meanwhile
            await publisher.stop()
            raise JanusError("the session ended while it was being published")
        publisher.on_lost = lambda reason: self._lost(live, publisher, reason)
        return published.as_json()

    async def publish_route(self, request: web.Request) -> web.Response:
        live = self.server.sessions.get(request.match_info["session_id"])
        if live is None or live.closing:
            return error(404, "unknown session")
        if self.target is None:
            return error(503, "no SFU is configured (emote serve --publish-to janus+http://...)")
        if live.publisher is not None:
            return error(409, "this session is already published (DELETE it first)")
        try:
            where = await self.publish(live)
        except JanusError as exc:
            return error(502, f"Janus refused or failed: {exc}")
        live.publish_wanted = True  # kept published from now on, through Janus restarts
        return web.json_response(where, status=201)

    async def unpublish_route(self, request: web.Request) -> web.Response:
        live = self.server.sessions.get(request.match_info["session_id"])
        if live is None or live.closing:
            return error(404, "unknown session")
        if live.publisher is None and not live.publish_wanted:
            return error(404, "this session is not published")
        await unpublish(live)
        return web.json_response({"published": None})


def describe(live: LiveSession) -> dict[str, Any] | None:
    """A session's "published" field in its stats."""
    if live.publisher is not None and live.publisher.published is not None:
        return {**live.publisher.published.as_json(), "connected": live.publisher.connected}
    if live.publisher is not None:
        return {"pending": True}
    if live.publish_error is not None:
        return {"error": live.publish_error, "retrying": live.publish_wanted}
    return None


async def unpublish(live: LiveSession) -> None:
    """Stop publishing a session (when it ends, or on request), and trying to."""
    live.publish_wanted = False
    publisher, live.publisher = live.publisher, None
    if publisher is not None:
        await publisher.stop()
