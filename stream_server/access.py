"""Who may call the API: a bearer token, the Host a request names, the Origin it comes from.

- **Token**: with one set (``emote serve --token`` / ``EMOTE_TOKEN``; required, or
  generated, when the server binds anything but loopback), every route but the page, its
  static files and ``/healthz`` needs ``Authorization: Bearer TOKEN`` (compared in constant
  time).
- **Host**: a request must name the server by a name it was bound to (or an address
  literal, or an ``--allow-host`` name). A web page on another name that resolves to this
  machine (DNS rebinding) is refused.
- **Origin**: a state-changing request (POST, PUT, PATCH, DELETE) sent by a browser carries
  an Origin; it must be the server's own (the same host and port) or an ``--allow-origin``
  one. Requests without an Origin (curl, the bench, an SDK) pass: a browser always sends
  one on a cross-origin POST.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from stream_server.http_errors import Handler, error
from stream_server.loopback import is_loopback

OPEN_PATHS = ("/", "/healthz")  # the page and the load balancer's probe
OPEN_PREFIXES = ("/static/",)
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ANY = "*"


def host_name(host: str) -> str:
    """The name part of a Host header value (``[::1]:8080`` -> ``::1``), lower-case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_wildcard(bind_host: str) -> bool:
    return bind_host in ("", "0.0.0.0", "::")


@dataclass(frozen=True)
class AccessPolicy:
    token: str | None = None
    hosts: frozenset[str] = frozenset({ANY})  # allowed Host names; ANY: every name
    addresses_allowed: bool = True  # any address literal as Host (a wildcard bind)
    origins: frozenset[str] = frozenset()  # extra allowed origins, "scheme://host[:port]"

    @classmethod
    def for_bind(
        cls,
        bind_host: str,
        token: str | None,
        extra_hosts: Iterable[str] = (),
        extra_origins: Iterable[str] = (),
    ) -> AccessPolicy:
        """The policy of a server bound to ``bind_host``: loopback answers to its loopback
        names, a wildcard bind to address literals and this machine's name, a single
        address to itself; ``extra_hosts`` adds names (``*``: any)."""
        names = {host_name(h) for h in extra_hosts}
        if is_loopback(bind_host):
            names |= {"localhost", "127.0.0.1", "::1"}
        elif is_wildcard(bind_host):
            names |= {"localhost", socket.gethostname().lower(), socket.getfqdn().lower()}
        else:
            names.add(host_name(bind_host))
        origins = frozenset(o.rstrip("/").lower() for o in extra_origins)
        return cls(token or None, frozenset(names), is_wildcard(bind_host), origins)

    def host_allowed(self, host: str) -> bool:
        name = host_name(host)
        if ANY in self.hosts or name in self.hosts:
            return True
        return self.addresses_allowed and is_address(name)

    def origin_allowed(self, origin: str, host: str) -> bool:
        """The server's own origin (the same host and port as the request's Host), or a
        listed one."""
        origin = origin.strip().lower().rstrip("/")
        if origin in self.origins or ANY in self.origins:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc == host.strip().lower()

    def token_ok(self, header: str | None) -> bool:
        if self.token is None:
            return True
        if header is None or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[len("Bearer ") :].strip().encode(), self.token.encode())

    def needs_token(self, path: str) -> bool:
        return self.token is not None and not (path in OPEN_PATHS or path.startswith(OPEN_PREFIXES))

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self.host_allowed(request.host):
            return error(421, f"this server does not answer to the host {request.host[:100]!r}")
        origin = request.headers.get("Origin")
        if (
            request.method in STATE_CHANGING
            and origin is not None
            and not self.origin_allowed(origin, request.host)
        ):
            return error(403, f"requests from the origin {origin[:100]!r} are not allowed")
        if self.needs_token(request.path) and not self.token_ok(
            request.headers.get("Authorization")
        ):
            return error(
                401,
                "this server needs its access token: send 'Authorization: Bearer TOKEN'",
                **{"WWW-Authenticate": 'Bearer realm="emote"'},
            )
        return await handler(request)


@dataclass(frozen=True)
class Exposure:
    """What ``emote serve`` does about authentication for a bind address."""

    token: str | None
    generated: bool  # the token was made up at start-up (print it)
    warning: str | None  # an unauthenticated API on a non-loopback address


def exposure(bind_host: str, token: str | None, insecure: bool) -> Exposure:
    """Loopback: the token if one is given. Anything else: the given token, or a generated
    one, unless ``insecure`` asks explicitly for no authentication (with a warning)."""
    if token or is_loopback(bind_host):
        return Exposure(token or None, False, None)
    if insecure:
        return Exposure(
            None,
            False,
            f"--insecure: the API on {bind_host} has no access token; anyone who can reach "
            "this port can open sessions and upload images",
        )
    return Exposure(secrets.token_urlsafe(24), True, None)
