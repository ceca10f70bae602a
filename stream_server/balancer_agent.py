"""Many nodes behind a load balancer (docs/deploy.md): HAProxy's agent check, answered from
the node's free capacity, and the node's name in every session id it makes.

* **Agent check.** HAProxy connects to ``--agent-port`` every ``agent-inter`` and reads one
  line. A node with free slots answers ``ready up <free * 100 / limit>%``: its weight, so new
  sessions go where there is most room. A full node answers ``drain``, so it gets no new
  session but keeps serving its own, and the requests that are no session's (the page,
  avatars, voices) go to any live node, full or not: with every node full, the page still
  loads and only a new session is refused (503). A node that does not answer is taken out
  by HAProxy's HTTP check of ``/healthz``.
* **Sticky follow-ups.** With ``--node-id n1`` a node's session ids start ``n1-``. The
  balancer routes ``/api/sessions/n1-…``, ``/whip/n1-…`` and ``/whep/n1-…`` to that node
  (``emote balancer-config`` writes those rules), so interrupt, say, style, delete, WHEP
  viewers and the motion channel reach the node that holds the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

NODE_ID = re.compile(r"^[a-z0-9]{1,16}$")


def agent_reply(taken: int, limit: int) -> bytes:
    """The agent check's line for a node holding ``taken`` of ``limit`` sessions."""
    free = limit - taken
    if free <= 0:
        return b"drain\n"
    return f"ready up {max(1, round(100 * free / limit))}%\n".encode()


@dataclass(frozen=True)
class Node:
    """One `emote serve --node-id NAME --agent-port AGENT` behind the balancer."""

    name: str
    host: str
    port: int
    agent_port: int

    @classmethod
    def parse(cls, text: str) -> Node:
        """``NAME=HOST:PORT/AGENT_PORT``, e.g. ``n1=10.0.0.5:8080/9080``."""
        match = re.fullmatch(r"([a-z0-9]{1,16})=([^:/\s]+):(\d{1,5})/(\d{1,5})", text)
        if not match:
            raise ValueError(f"node {text!r}: expected NAME=HOST:PORT/AGENT_PORT")
        name, host, port, agent = match.groups()
        return cls(name, host, int(port), int(agent))


def haproxy_config(nodes: list[Node], bind: str, check_ms: int = 500) -> str:
    """An HAProxy configuration that balances new sessions (``POST /offer``, ``POST /whip``)
    over ``nodes`` by their agent check's weight, sends each session's own requests to the
    node whose name starts its id, and everything else (the page, avatars, voices,
    ``/healthz``) to any live node, full or not; a node whose ``/healthz`` fails is taken
    out of all three."""
    if not nodes or len({n.name for n in nodes}) != len(nodes):
        raise ValueError("give at least one node, each with its own name")
    lines = [
        "# emote balancer-config (stream_server/balancer_agent.py; docs/deploy.md)",
        "global",
        "    maxconn 4096",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    option forwardfor",
        "frontend avatars",
        f"    bind {bind}",
    ]
    for n in nodes:
        lines.append(f"    acl at_{n.name} path_reg ^/(api/sessions|whip|whep)/{n.name}-")
        lines.append(f"    use_backend node_{n.name} if at_{n.name}")
    lines += [
        "    acl new_session method POST",
        "    acl new_session_path path /offer /whip",
        "    use_backend nodes if new_session new_session_path",
        "    default_backend any",
        "backend nodes",
        "    balance roundrobin",
        "    option httpchk GET /healthz",
    ]
    for n in nodes:
        lines.append(
            f"    server {n.name} {n.host}:{n.port} weight 100 check inter {check_ms} fall 2 "
            f"rise 1 agent-check agent-port {n.agent_port} agent-inter {check_ms}"
        )
    lines += ["backend any", "    balance roundrobin", "    option httpchk GET /healthz"]
    for n in nodes:
        lines.append(f"    server {n.name} {n.host}:{n.port} check inter {check_ms} fall 2 rise 1")
    for n in nodes:
        lines += [
            f"backend node_{n.name}",
            "    option httpchk GET /healthz",
            f"    server {n.name} {n.host}:{n.port} check inter {check_ms} fall 2 rise 1",
        ]
    return "\n".join(lines) + "\n"


async def serve_agent(
    host: str, port: int, load: Callable[[], tuple[int, int]]
) -> asyncio.AbstractServer:
    """Answer HAProxy's agent check on ``host:port`` with ``agent_reply(*load())``."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            writer.write(agent_reply(*load()))
            await writer.drain()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()

    server = await asyncio.start_server(answer, host, port)
    log.info("agent check on %s:%d", host, port)
    return server
