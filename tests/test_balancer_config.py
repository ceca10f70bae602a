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
