"""Request bodies read within limits, whatever their framing, and JSON parsed within a depth.

aiohttp checks ``client_max_size`` while reading, but one size for the whole app (the upload
route needs 50 MB, an offer 64 kB), and a declared Content-Length is not refused before the
body is read. ``read_body`` refuses a declared length over the route's limit at once, stops
reading a chunked (or lying) body as soon as it passes the limit, and gives up on a body that
stalls. Every failure is an ``HttpError`` carrying the status and the message the client
gets as JSON.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

BODY_TIMEOUT_S = 10.0  # a whole small body (an offer, a style) must arrive within this
READ_CHUNK = 16 * 1024
MAX_JSON_DEPTH = 8  # an offer is {"sdp": ..., "type": ...}: depth 1


class HttpError(Exception):
    """A client mistake: ``status`` and a message for the JSON error reply."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_body(
    request: web.Request, limit: int, what: str, timeout_s: float = BODY_TIMEOUT_S
) -> bytes:
    """The request's body, at most ``limit`` bytes, within ``timeout_s``. Raises HttpError:
    413 when the declared or the received length passes the limit (reading stops there),
    408 when the body does not arrive in time."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise HttpError(413, f"{what} must be at most {limit} bytes (declared {declared})")
    data = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            while chunk := await request.content.read(READ_CHUNK):
                data.extend(chunk)
                if len(data) > limit:
                    raise HttpError(413, f"{what} must be at most {limit} bytes")
    except TimeoutError:
        raise HttpError(408, f"{what} did not arrive within {timeout_s:g} s") from None
    return bytes(data)


def parse_json(body: bytes, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``body`` as JSON nested at most ``max_depth`` deep; HttpError 400 otherwise."""
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HttpError(400, f"{what} must be JSON ({exc})") from None
    except RecursionError:  # the C decoder gives up near Python's recursion limit
        raise HttpError(400, f"{what} is nested too deeply") from None
    if depth(value, max_depth + 1) > max_depth:
        raise HttpError(400, f"{what} is nested too deeply (at most {max_depth} levels)")
    return value


def depth(value: Any, stop: int) -> int:
    """How deep ``value`` nests (a scalar: 0), counted no further than ``stop``."""
    if stop <= 0 or not isinstance(value, dict | list):
        return 0
    children = value.values() if isinstance(value, dict) else value
    return 1 + max((depth(child, stop - 1) for child in children), default=0)
