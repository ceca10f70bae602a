"""Three `emote serve` nodes behind a real HAProxy (Debian's), all on loopback: new sessions
go where there is room (the nodes' agent checks), a full node gets none, a session's own
requests reach the node that holds it (its id's node prefix: stats, interrupt, a WHEP
viewer, delete), and a killed node is taken out while the others go on
(stream_server/balancer_agent.py; docs/deploy.md)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from measure.balancer_lab import cluster as balancer_cluster
from measure.balancer_lab import haproxy_available, status
from measure.webrtc_client import Client
from measure.whip_clients import Viewer

pytestmark = pytest.mark.slow

CHECK_MS = 300


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    if not haproxy_available():
        if os.environ.get("CI"):
            pytest.fail("haproxy missing: ./run.sh test installs it")
        pytest.skip("no haproxy (apt install haproxy)")
    cache = tmp_path_factory.mktemp("cluster-cache")  # one avatar cache, as on shared storage
    folder = tmp_path_factory.mktemp("haproxy")
    with balancer_cluster(["n1", "n2", "n3"], cache, folder, CHECK_MS) as running:
        yield {"url": running.url, "pids": running.pids, "config": running.config}


async def open_call(url: str) -> Client:
    client = Client(url, None)
    async with aiohttp.ClientSession() as http:
        await client.connect(http)
    await asyncio.wait_for(client.first_frame.wait(), 20)
    return client


def test_sessions_go_where_there_is_room_and_stay_there(cluster: dict) -> None:
    url = cluster["url"]

    async def run() -> None:
        clients = []
        try:
            for _ in range(3):  # one slot a node: each new session on another node
                clients.append(await open_call(url))
                await asyncio.sleep(3 * CHECK_MS / 1000)  # the node's agent now says drain
            nodes = sorted(c.session_id.split("-", 1)[0] for c in clients)
            assert nodes == ["n1", "n2", "n3"], nodes
            # every node full: no node takes a fourth
            async with aiohttp.ClientSession() as http:
                fourth = Client(url, None)
                with pytest.raises(Exception, match="503"):
                    await fourth.connect(http)
                if fourth.pc is not None:
                    await fourth.pc.close()
                # what is no session's still answers while every node is full
                for path in ("/healthz", "/api/avatars", "/"):
                    async with http.get(url + path) as r:
                        assert r.status == 200, path
                # a session's own requests reach its node (any other would answer 404)
                for client in clients:
                    async with http.get(f"{url}/api/sessions/{client.session_id}") as r:
                        assert r.status == 200
                        assert (await r.json())["session_id"] == client.session_id
                    async with http.post(f"{url}/api/sessions/{client.session_id}/interrupt") as r:
                        assert r.status == 200
                    # a WHEP viewer of the session is answered by its node and watches it
                    viewer = Viewer(url, client.session_id)
                    try:
                        location = await viewer.start(http)
                        assert location.startswith(f"/whep/{client.session_id}/")
                        waited = time.monotonic()
                        while len(viewer.video_t) < 10 and time.monotonic() - waited < 15:
                            await asyncio.sleep(0.05)
                        assert len(viewer.video_t) >= 10
                    finally:
                        assert await viewer.stop(http) == 200
                # one leaves: its node has room again, and the next session goes there
                leaving = clients.pop(0)
                freed = leaving.session_id.split("-", 1)[0]
                await leaving.close(http)
            await asyncio.sleep(4 * CHECK_MS / 1000)
            clients.append(await open_call(url))
            assert clients[-1].session_id.startswith(freed + "-")
        finally:
            async with aiohttp.ClientSession() as http:
                for client in clients:
                    await client.close(http)

    asyncio.run(run())


def test_a_killed_node_is_taken_out_and_the_others_serve(cluster: dict) -> None:
    url, pids = cluster["url"], cluster["pids"]
    time.sleep(4 * CHECK_MS / 1000)  # the last test's sessions are gone: all nodes ready
    os.kill(pids["n2"], signal.SIGKILL)
    time.sleep(6 * CHECK_MS / 1000)  # two failed checks take it out

    async def run() -> list[str]:
        clients = []
        try:
            for _ in range(2):
                clients.append(await open_call(url))
                await asyncio.sleep(3 * CHECK_MS / 1000)
            return sorted(c.session_id.split("-", 1)[0] for c in clients)
        finally:
            async with aiohttp.ClientSession() as http:
                for client in clients:
                    await client.close(http)

    assert asyncio.run(run()) == ["n1", "n3"]
    assert status("GET", f"{url}/api/sessions/n2-{'0' * 32}") == 503  # its node is gone
    time.sleep(4 * CHECK_MS / 1000)  # the two sessions closed: their nodes ready again
    assert status("GET", f"{url}/healthz") == 200
    assert json.loads(urllib.request.urlopen(f"{url}/healthz", timeout=5).read())["status"] == "ok"
    assert Path(cluster["config"]).is_file()
