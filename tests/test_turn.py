"""TURN for clients behind NAT (stream_server/ice_servers.py): URLs and credentials, and a
real coturn on loopback relaying a session whose client may use nothing but TURN
(``iceTransportPolicy: relay``), with credentials minted by ``GET /api/ice-servers``."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from measure.server import serve
from measure.turn_lab import Coturn, available
from measure.webrtc_client import Client
from stream_server.ice_servers import IceServers, check_url

SECRET = "turn-secret-for-the-test-only"


def test_ice_server_urls_parse_or_say_why() -> None:
    for good in ("stun:stun.example:3478", "turn:10.0.0.5?transport=tcp", "turns:t.example:443"):
        assert check_url(good) == good
    for bad, why in [
        ("http://t.example", "starts stun:"),
        ("turn:", "no host"),
        ("turn:t.example:99999", "bad port"),
        ("stun:t.example?transport=udp", "only turn:"),
        ("turn:t.example?transport=sctp", "udp or tcp"),
    ]:
        with pytest.raises(ValueError, match=why):
            check_url(bad)
    with pytest.raises(ValueError, match="needs --turn-secret"):
        IceServers(("turn:t.example",))
    with pytest.raises(ValueError, match="without a turn:"):
        IceServers(("stun:s.example",), turn_secret="x")
    with pytest.raises(ValueError, match="not both"):
        IceServers(("turn:t",), turn_secret="x", username="u", password="p")
    with pytest.raises(ValueError, match="go together"):
        IceServers(("turn:t",), username="u")


def test_turn_rest_credentials_are_coturns_and_expire() -> None:
    ice = IceServers(
        ("stun:s.example", "turn:t.example:3478"), turn_secret=SECRET, _clock=lambda: 1000.0
    )
    answer = ice.for_browser()
    assert answer["ttl_s"] == 3600
    stun, turn = answer["iceServers"]
    assert stun == {"urls": ["stun:s.example"]}
    assert turn["urls"] == ["turn:t.example:3478"] and turn["username"] == "4600:emote"
    mac = hmac.new(SECRET.encode(), b"4600:emote", hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(mac).decode()  # coturn's use-auth-secret
    static = IceServers(("turn:t",), username="u", password="p").for_browser()
    assert static == {
        "iceServers": [{"urls": ["turn:t"], "username": "u", "credential": "p"}],
        "ttl_s": None,
    }
    assert IceServers().for_browser() == {"iceServers": [], "ttl_s": None}
    assert IceServers().configuration() is None
    # the server's own connections: STUN only (a dead TURN server would hold every answer)
    server = ice.configuration()
    assert server is not None and server.iceServers is not None
    assert [s.urls for s in server.iceServers] == [["stun:s.example"]]
    assert IceServers(("turn:t",), username="u", password="p").configuration() is None


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    if not available():
        if os.geteuid() == 0:  # ./run.sh test installs coturn as root: CI must run this
            pytest.fail("turnserver missing: ./run.sh test installs coturn")
        pytest.skip("no turnserver (apt install coturn)")
    with Coturn(SECRET, tmp_path_factory.mktemp("coturn")) as server:
        yield server


def relay_only(answer: dict[str, Any]) -> RTCConfiguration:
    servers = [
        RTCIceServer(s["urls"], s.get("username"), s.get("credential"))
        for s in answer["iceServers"]
    ]
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=RTCIceTransportPolicy.RELAY)


@pytest.mark.slow
def test_a_client_that_can_only_relay_is_served_through_coturn(
    coturn: Coturn, tmp_path: Path
) -> None:
    options = ("--ice-server", coturn.url, "--turn-secret", SECRET)

    async def run(url: str) -> tuple[int, str, bool]:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/api/ice-servers") as r:
                answer = await r.json()
            client = Client(url, None, configuration=relay_only(answer))
            await client.connect(http)
            try:
                await asyncio.wait_for(client.first_frame.wait(), 20)
                await asyncio.sleep(1.0)
                assert client.pc is not None
                local = client.pc.localDescription.sdp
                return len(client.received.video_t), local, "typ host" in local
            finally:
                await client.close(http)

    with serve(max_sessions=1, cache_dir=tmp_path, options=options) as url:
        frames, sdp, host = asyncio.run(run(url))
    assert frames > 20  # ~25 fps through the relay
    assert "typ relay" in sdp and not host  # the client offered nothing but its relay
    log = coturn.text()
    assert "ALLOCATE" in log and "success" in log, log[-2000:]


@pytest.mark.slow
def test_credentials_from_another_secret_get_no_relay(coturn: Coturn, tmp_path: Path) -> None:
    """The control: coturn refuses a credential it did not mint, and a relay-only client
    then has no path to the server."""
    wrong = IceServers((coturn.url,), turn_secret="not-the-servers-secret").for_browser()

    async def run(url: str) -> int:
        async with aiohttp.ClientSession() as http:
            client = Client(url, None, configuration=relay_only(wrong))
            try:
                await client.connect(http)
                await asyncio.sleep(6.0)
                return len(client.received.video_t)
            except Exception:
                return 0  # no candidate to offer: refused before any media
            finally:
                await client.close(http)

    with serve(max_sessions=1, cache_dir=tmp_path) as url:
        assert asyncio.run(run(url)) == 0
