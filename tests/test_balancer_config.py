"""The balancer's pieces (stream_server/balancer_agent.py): the agent check's answers, node
parsing, and a configuration that HAProxy itself accepts."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from stream_server.balancer_agent import Node, agent_reply, haproxy_config, serve_agent


def test_agent_answers_weight_by_free_room_and_drain_when_full() -> None:
    assert agent_reply(0, 3) == b"ready up 100%\n"
    assert agent_reply(1, 3) == b"ready up 67%\n"
    assert agent_reply(3, 3) == b"drain\n"
    assert agent_reply(5, 3) == b"drain\n"


def test_agent_serves_the_current_load() -> None:
    load = [0, 2]

    async def run() -> list[bytes]:
        server = await serve_agent("127.0.0.1", 0, lambda: (load[0], load[1]))
        port = server.sockets[0].getsockname()[1]
        replies = []
        for taken in (0, 1, 2):
            load[0] = taken
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            replies.append(await reader.read())
            writer.close()
        server.close()
        await server.wait_closed()
        return replies

    assert asyncio.run(run()) == [b"ready up 100%\n", b"ready up 50%\n", b"drain\n"]


def test_nodes_parse_or_say_why() -> None:
    assert Node.parse("n1=10.0.0.5:8080/9080") == Node("n1", "10.0.0.5", 8080, 9080)
    for bad in ("N1=h:1/2", "n1=h:1", "n1:h:1/2", "n1=h:x/2", "toolongname123456=h:1/2"):
        with pytest.raises(ValueError, match="NAME=HOST:PORT/AGENT_PORT"):
            Node.parse(bad)
    with pytest.raises(ValueError, match="its own name"):
        haproxy_config([Node("a", "h", 1, 2), Node("a", "h", 3, 4)], ":80")


def test_haproxy_accepts_the_configuration(tmp_path: Path) -> None:
    text = haproxy_config(
        [Node.parse("n1=127.0.0.1:8081/9081"), Node.parse("n2=127.0.0.1:8082/9082")],
        "127.0.0.1:8000",
    )
    assert "path_reg ^/(api/sessions|whip|whep)/n1-" in text
    assert "agent-check agent-port 9082" in text
    if not shutil.which("haproxy"):
        pytest.skip("no haproxy to check it with")
    config = tmp_path / "haproxy.cfg"
    config.write_text(text)
    result = subprocess.run(["haproxy", "-c", "-f", str(config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_node_with_room_left_gets_new_sessions_whatever_its_share(tmp_path: Path) -> None:
    """A real HAProxy in front of one stand-in node (``/healthz``, ``/offer``) and its agent:
    a node with 1 of 4 slots free still takes a new session, a full one takes none, and
    what is no session's reaches it either way. (With HAProxy's default weight of 1, an
    agent's "ready up 25%" made weight 0: every node that held a session was drained.)"""
    if not shutil.which("haproxy"):
        pytest.skip("no haproxy (apt install haproxy)")
    from aiohttp import web

    from measure.balancer_lab import status
    from measure.server import free_port

    load = [3, 4]

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def offer_route(_request: web.Request) -> web.Response:
        return web.json_response({"node": "n1"})

    async def run() -> list[tuple[int, int]]:
        app = web.Application()
        app.router.add_get("/healthz", healthz)
        app.router.add_post("/offer", offer_route)
        runner = web.AppRunner(app)
        await runner.setup()
        port, agent_port = free_port(), free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        agent = await serve_agent("127.0.0.1", agent_port, lambda: (load[0], load[1]))
        bind = free_port()
        config = tmp_path / "haproxy.cfg"
        config.write_text(haproxy_config([Node("n1", "127.0.0.1", port, agent_port)],
                                         f"127.0.0.1:{bind}", 100))  # fmt: skip
        proxy = subprocess.Popen(["haproxy", "-db", "-f", str(config)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        url = f"http://127.0.0.1:{bind}"
        seen = []
        try:
            for taken in (3, 4, 1):
                load[0] = taken
                await asyncio.sleep(0.6)  # a few agent checks
                offer = await asyncio.to_thread(status, "POST", f"{url}/offer")
                health = await asyncio.to_thread(status, "GET", f"{url}/healthz")
                seen.append((offer, health))
        finally:
            proxy.terminate()
            proxy.wait(5)
            agent.close()
            await runner.cleanup()
        return seen

    assert asyncio.run(run()) == [(200, 200), (503, 200), (200, 200)]
