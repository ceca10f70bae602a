"""Keep WebRTC on the loopback interface when the server is bound to it.

aioice (aiortc's ICE) offers every interface's address except 127.0.0.1 as a host candidate.
A server bound to 127.0.0.1 has only local clients, and tests and benchmarks on this machine
must not send media anywhere but loopback, so there the candidates become 127.0.0.1 alone.

A connection the server makes to an SFU (stream_server.janus_publish) is not a local
client's: Janus never uses loopback, so its gathering runs inside ``all_interfaces()``,
which restores aioice's own choice for the current task (a context variable) only.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator
from contextvars import ContextVar

import aioice.ice

_original = aioice.ice.get_host_addresses
_all_interfaces: ContextVar[bool] = ContextVar("emote_all_interfaces", default=False)


def _loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    if _all_interfaces.get():
        return _original(use_ipv4, use_ipv6)
    return ["127.0.0.1"] if use_ipv4 else ["::1"]


def use_loopback_only(enabled: bool = True) -> None:
    aioice.ice.get_host_addresses = _loopback_only if enabled else _original


@contextlib.contextmanager
def all_interfaces() -> Iterator[None]:
    """Gather every interface's address (aioice's default) in this task, whatever
    ``use_loopback_only`` says."""
    token = _all_interfaces.set(True)
    try:
        yield
    finally:
        _all_interfaces.reset(token)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
