"""STUN and TURN servers for clients behind NAT (docs/deploy.md, "TURN"): all of them for the
browser client's peer connections, through ``GET /api/ice-servers``, and the STUN ones for
the server's own (``IceServers.configuration``).

* ``--ice-server URL`` (repeatable): ``stun:HOST[:PORT]``, ``turn:HOST[:PORT][?transport=
  udp|tcp]`` or ``turns:...``.
* TURN credentials, either
  * ``--turn-secret SECRET``: coturn's ``use-auth-secret`` / ``static-auth-secret`` (the "TURN
    REST API"). Every request mints a credential that expires after ``ttl_s``: username
    ``<expiry unix time>:emote``, password base64(HMAC-SHA1(secret, username)). No lasting
    password reaches a browser; or
  * ``--turn-username`` and ``--turn-password``: one static credential (coturn's ``user=``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from aiortc import RTCConfiguration, RTCIceServer

SCHEMES = ("stun", "turn", "turns")
DEFAULT_TTL_S = 3600
USER = "emote"


def check_url(url: str) -> str:
    """``url`` if it is a STUN or TURN URL (RFC 7064 / 7065), else ValueError saying why."""
    scheme, sep, rest = url.partition(":")
    if not sep or scheme not in SCHEMES:
        raise ValueError(f"an ICE server URL starts stun:, turn: or turns:, not {url[:80]!r}")
    address, _, query = rest.partition("?")
    if not address or address.startswith("/") or any(c.isspace() for c in url):
        raise ValueError(f"no host in {url[:80]!r} (stun:HOST[:PORT], turn:HOST[:PORT])")
    port = address.rpartition(":")[2] if ":" in address else ""
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        raise ValueError(f"bad port in {url[:80]!r}")
    if query:
        params = parse_qs(query)
        if scheme == "stun" or set(params) != {"transport"}:
            raise ValueError(f"only turn: URLs take a query, and only ?transport=: {url[:80]!r}")
        if params["transport"][-1] not in ("udp", "tcp"):
            raise ValueError("?transport= is udp or tcp")
    return url


@dataclass(frozen=True)
class IceServers:
    """The configured servers and how TURN credentials are made."""

    urls: tuple[str, ...] = ()
    turn_secret: str | None = None
    username: str | None = None
    password: str | None = None
    ttl_s: int = DEFAULT_TTL_S
    _clock: Any = field(default=time.time, compare=False, repr=False)

    def __post_init__(self) -> None:
        for url in self.urls:
            check_url(url)
        if self.turn_secret is not None and self.username is not None:
            raise ValueError("give --turn-secret or --turn-username/--turn-password, not both")
        if (self.username is None) != (self.password is None):
            raise ValueError("--turn-username and --turn-password go together")
        turn = any(url.startswith("turn") for url in self.urls)
        has_credential = self.turn_secret is not None or self.username is not None
        if turn and not has_credential:
            raise ValueError("a turn: server needs --turn-secret, or --turn-username and password")
        if has_credential and not turn:
            raise ValueError("TURN credentials given without a turn: --ice-server")

    def credential(self) -> tuple[str, str] | None:
        """(username, password) for a TURN server now; None without TURN."""
        if self.turn_secret is not None:
            username = f"{int(self._clock()) + self.ttl_s}:{USER}"
            digest = hmac.new(self.turn_secret.encode(), username.encode(), hashlib.sha1)
            return username, base64.b64encode(digest.digest()).decode()
        if self.username is not None and self.password is not None:
            return self.username, self.password
        return None

    def for_browser(self) -> dict[str, Any]:
        """The answer of ``GET /api/ice-servers``: RTCConfiguration's ``iceServers``."""
        servers: list[dict[str, Any]] = []
        stun = [u for u in self.urls if u.startswith("stun:")]
        turn = [u for u in self.urls if not u.startswith("stun:")]
        if stun:
            servers.append({"urls": stun})
        credential = self.credential()
        if turn and credential is not None:
            servers.append({"urls": turn, "username": credential[0], "credential": credential[1]})
        ttl = self.ttl_s if self.turn_secret is not None and turn else None
        return {"iceServers": servers, "ttl_s": ttl}

    def configuration(self) -> RTCConfiguration | None:
        """aiortc's configuration for the server's own peer connections: the STUN servers
        only (None: none set). STUN gives a server behind 1:1 NAT its public address; a
        relay for the server itself is seldom needed, since the client's relay reaches the
        server's address, and a TURN server that is down would hold every answer 5 s (aioice
        waits that long for its allocation)."""
        stun = [u for u in self.urls if u.startswith("stun:")]
        return RTCConfiguration(iceServers=[RTCIceServer(urls=stun)]) if stun else None
