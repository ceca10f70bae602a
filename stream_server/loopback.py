"""Keep WebRTC on the loopback interface when the server is bound to it.

aioice (aiortc's ICE) offers every interface's address except 127.0.0.1 as a host candidate.
A server bound to 127.0.0.1 has only local clients, and tests and benchmarks on this machine
must not send media anywhere but loopback, so there the candidates become 127.0.0.1 alone.
"""

from __future__ import annotations

import ipaddress

import aioice.ice

_original = aioice.ice.get_host_addresses


def _loopback_only(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else ["::1"]


def use_loopback_only(enabled: bool = True) -> None:
    aioice.ice.get_host_addresses = _loopback_only if enabled else _original


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
