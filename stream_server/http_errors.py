"""Every error the server sends is JSON ``{"error": message}``, the framework's own included,
and client mistakes never log tracebacks.

Three places make errors: our handlers (``error``, or raising ``HttpError``), aiohttp's
router and body checks (``web.HTTPException``: 404, 405, 413), turned into JSON by the
``json_errors`` middleware, and aiohttp's HTTP parser (a bad request line, headers over the
size limit), which answers before any middleware runs, from ``RequestHandler.handle_error``:
``run`` serves the app with a request handler whose ``handle_error`` answers JSON.

``run`` also bounds how long a refused body may keep its connection (``LINGER_S``) and sets
the header timeout: aiohttp closes a connection that has not completed a
request within its keep-alive timeout (armed when the connection opens and after each
response), so a client that trickles its headers is cut off after ``HEADER_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from stream_server.http_limits import HttpError

log = logging.getLogger(__name__)

HEADER_TIMEOUT_S = 10.0  # a connection must complete a request's headers within this
LINGER_S = 1.0  # after refusing an unread body, drain it this long, then close (aiohttp: 10 s)
SESSION_ID = re.compile(r"[0-9a-f]{32}")
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def redact(path: str) -> str:
    """``path`` with session ids cut to their first 8 digits (ids are never logged whole)."""
    return SESSION_ID.sub(lambda m: m[0][:8] + "…", path)


def error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """HttpError and aiohttp's HTTP errors as JSON; anything else a JSON 500 whose traceback
    goes to the log, not to the client."""
    try:
        return await handler(request)
    except HttpError as exc:
        response = error(exc.status, exc.message)
        if exc.status in (408, 413):  # the body was not read to its end: the connection
            response.force_close()  # cannot carry another request
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in KEPT_HEADERS}
        reason = exc.text if exc.text and exc.text != f"{exc.status}: {exc.reason}" else ""
        return error(exc.status, reason or f"{exc.reason.lower()}: {request.path}", **headers)
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception:
        log.exception("%s %s failed", request.method, redact(request.path))
        return error(500, "internal server error (logged)")


class JsonErrorHandler(RequestHandler):
    """aiohttp's request handler, answering the HTTP parser's errors as JSON and logging a
    client's malformed request in one line instead of a traceback."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            log.error("error handling a request from %s: %r", request.remote, exc)
        else:
            log.info("bad HTTP request from %s: %s", request.remote, message or exc)
        if request.writer.output_size > 0:
            raise ConnectionError("the response was sent already")
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        detail = (message or phrase or "error").splitlines()[0][:200]
        response = error(status, f"bad HTTP request: {detail}" if status == 400 else detail)
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class HardenedRunner(web.AppRunner):
    """An AppRunner whose connections use ``JsonErrorHandler``."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp builds its Server inside Application._make_handler with no hook for the
        # handler class; _JsonErrorServer only overrides __call__ (no new state).
        server.__class__ = _JsonErrorServer
        return server


def run(
    app: web.Application,
    host: str,
    port: int,
    header_timeout_s: float = HEADER_TIMEOUT_S,
    shutdown_timeout_s: float = 10.0,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM (what ``web.run_app`` does, with the hardened
    runner and no access log)."""
    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
        asyncio.run(_serve(app, host, port, header_timeout_s, shutdown_timeout_s))


async def _serve(
    app: web.Application, host: str, port: int, header_timeout_s: float, shutdown_timeout_s: float
) -> None:
    runner = HardenedRunner(
        app,
        handle_signals=True,
        access_log=None,
        keepalive_timeout=header_timeout_s,
        lingering_time=LINGER_S,
        shutdown_timeout=shutdown_timeout_s,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        await asyncio.Event().wait()  # until a signal raises GracefulExit
    finally:
        await runner.cleanup()
