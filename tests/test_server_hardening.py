"""Hostile requests against a real `emote serve` on 127.0.0.1 (issue 16): each is refused
with a JSON error, and a live call beside them keeps 25 fps. Each test here failed on the
server before the hardening (chunked bombs were read whole, simultaneous offers all got in,
parser errors were text with tracebacks in the log, foreign Hosts and Origins were served)."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import socket
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_server_api import _offer_sdp, _request, offer_sdp, request

from measure.server import serve
from measure.webrtc_client import Client
from stream_server.http_errors import HEADER_TIMEOUT_S

pytestmark = pytest.mark.slow

LIVE_FPS = 23.0  # a live call beside the attacks: 25 fps, less a frame or two of jitter
TOKEN = "test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(max_sessions=2, cache_dir=tmp_path_factory.mktemp("hardening-cache")) as url:
        yield url


def health(url: str) -> dict[str, Any]:
    return request("GET", f"{url}/healthz").json()


async def live_call(url: str, token: str | None = None) -> Client:
    """A real session that receives video (closed by the caller)."""
    client = Client(url, None, token=token)
    async with aiohttp.ClientSession() as http:
        await client.connect(http)
    deadline = time.monotonic() + 20.0
    while len(client.received.video_t) < 25:
        assert time.monotonic() < deadline, "the live call got no video"
        await asyncio.sleep(0.05)
    return client


def fps_between(client: Client, start: float, end: float) -> float:
    arrived = [t for t in client.received.video_t if start <= t <= end]
    return len(arrived) / (end - start)


async def close(client: Client) -> None:
    async with aiohttp.ClientSession() as http:
        await client.close(http)


async def chunked(lines: int) -> AsyncIterator[bytes]:
    """An offer of ``lines`` audio m-lines, sent chunked (no Content-Length)."""
    yield b'{"type": "offer", "sdp": "v=0\\r\\n'
    for _ in range(lines // 100):
        yield b"m=audio 9 UDP/TLS/RTP/SAVPF 111\\r\\n" * 100
    yield b'"}'


def raw_http(url: str, data: bytes, timeout_s: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection; everything the server answers until it closes."""
    host, port = url.rsplit("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def json_body(reply: bytes) -> dict[str, Any]:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"application/json" in head.lower(), head
    return json.loads(body)


# -- limits whatever the framing, with a live call beside -----------------------------------------


def bombs(sdp: str) -> list[tuple[str, dict[str, Any]]]:
    many_lines = sdp + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" * 650  # under 64 kB
    return [
        ("chunked 20 000 m-lines", {"data": chunked(20_000)}),
        ("650 m-lines", {"json": {"sdp": many_lines, "type": "offer"}}),
        ("30 000-deep JSON", {"data": b"[" * 30_000 + b"]" * 30_000}),
    ]


def attack(server: str, sdp: str, rounds: int, pause_s: float) -> list[tuple[str, int, str, float]]:
    """(In a process of its own, so the live call's client keeps its CPU.) Send the bombs
    ``rounds`` times, ``pause_s`` apart; (name, status, content type, seconds) of each."""

    async def run() -> list[tuple[str, int, str, float]]:
        results = []
        for _ in range(rounds):
            for name, kwargs in bombs(sdp):
                t0 = time.monotonic()
                reply = await _request("POST", f"{server}/offer", **kwargs)
                kind = reply.headers.get("Content-Type", "")
                results.append((name, reply.status, kind, time.monotonic() - t0))
                await asyncio.sleep(pause_s)
        return results

    return asyncio.run(run())


def test_offer_bombs_are_refused_and_the_live_call_keeps_25_fps(server: str) -> None:
    async def scenario() -> None:
        client = await live_call(server)
        try:
            sdp = await _offer_sdp()
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                await asyncio.wrap_future(pool.submit(attack, server, sdp, 0, 0.0))  # started
                await asyncio.sleep(1.0)
                before = fps_between(client, time.monotonic() - 3.0, time.monotonic())
                start = time.monotonic()
                replies = await asyncio.wrap_future(pool.submit(attack, server, sdp, 4, 0.3))
                end = time.monotonic()
            assert len(replies) == 12
            for name, status, kind, took in replies:
                assert status in (400, 413) and kind.startswith("application/json"), (name, status)
                assert took < 1.0, (name, took)
            during = fps_between(client, start, end)
            # 25 fps on a quiet machine; a loaded one gets less either way: no worse than before
            assert during >= min(LIVE_FPS, 0.92 * before), (before, during)
        finally:
            await close(client)

    asyncio.run(scenario())
    assert health(server)["sessions"] == 0


def test_a_declared_oversize_body_is_refused_before_it_is_sent(server: str) -> None:
    head = (
        "POST /offer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 60000000\r\n\r\n"
    )
    started = time.monotonic()
    reply = raw_http(server, head.encode())
    assert reply.startswith(b"HTTP/1.1 413") and time.monotonic() - started < 2.0
    assert "at most" in json_body(reply)["error"]


def test_a_stalled_offer_body_gets_408(server: str) -> None:
    head = (
        "POST /offer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n{"
    )
    reply = raw_http(server, head.encode(), timeout_s=20.0)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert "did not arrive" in json_body(reply)["error"]


def test_headers_that_trickle_are_cut_off(server: str) -> None:
    host, port = server.rsplit("//", 1)[1].split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed = False
        while time.monotonic() - started < HEADER_TIMEOUT_S + 8:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
                sock.settimeout(1.0)
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
    assert closed and time.monotonic() - started < HEADER_TIMEOUT_S + 4


def test_malformed_http_gets_json_errors(server: str) -> None:
    for data in (
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"b" * 10_000 + b"\r\n\r\n",
    ):
        reply = raw_http(server, data)
        assert reply.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4")), reply[:100]
        assert json_body(reply)["error"]
    for method, path, status in (("PUT", "/offer", 405), ("GET", "/no/such/route", 404)):
        reply = request(method, server + path)
        assert reply.status == status
        reply.error()


def test_an_offer_that_sends_no_video_back_is_400(server: str) -> None:
    good = offer_sdp()
    for direction in ("sendonly", "inactive"):
        sdp = good.replace("a=recvonly", f"a={direction}")
        reply = request("POST", f"{server}/offer", json={"sdp": sdp, "type": "offer"})
        assert reply.status == 400 and direction in reply.error()
    assert health(server)["sessions"] == 0


# -- admission ------------------------------------------------------------------------------------


def test_simultaneous_offers_cannot_pass_the_limit(server: str) -> None:
    """Capacity 2, one live call: of six simultaneous offers exactly one is admitted; it holds
    its slot without costing the live call a frame until it times out unconnected."""

    async def scenario() -> None:
        client = await live_call(server)
        try:
            sdps = [await _offer_sdp() for _ in range(6)]
            await asyncio.sleep(3.0)
            before = fps_between(client, time.monotonic() - 3.0, time.monotonic())
            start = time.monotonic()
            replies = await asyncio.gather(
                *(
                    _request("POST", f"{server}/offer", json={"sdp": s, "type": "offer"})
                    for s in sdps
                )
            )
            statuses = sorted(r.status for r in replies)
            assert statuses == [200, 503, 503, 503, 503, 503], statuses
            for reply in replies:
                if reply.status == 503:
                    assert int(reply.headers["Retry-After"]) > 0 and "capacity" in reply.error()
            state = (await _request("GET", f"{server}/healthz")).json()
            assert (state["sessions"], state["connecting"], state["max_sessions"]) == (2, 1, 2)
            await asyncio.sleep(3.0)
            during = fps_between(client, start, time.monotonic())
            assert during >= min(LIVE_FPS, 0.92 * before), (before, during)
            # the unconnected session gives its slot back after the connect timeout
            deadline = time.monotonic() + 20.0
            while (await _request("GET", f"{server}/healthz")).json()["sessions"] != 1:
                assert time.monotonic() < deadline, "the unconnected session kept its slot"
                await asyncio.sleep(0.5)
            reply = await _request(
                "POST", f"{server}/offer", json={"sdp": await _offer_sdp(), "type": "offer"}
            )
            assert reply.status == 200
            sid = reply.json()["session_id"]
            assert (await _request("DELETE", f"{server}/api/sessions/{sid}")).status == 200
        finally:
            await close(client)

    asyncio.run(scenario())


# -- Host and Origin ------------------------------------------------------------------------------


def test_foreign_hosts_and_origins_are_refused(server: str) -> None:
    reply = request("GET", f"{server}/api/avatars", headers={"Host": "evil.example"})
    assert reply.status == 421 and "evil.example" in reply.error()
    sdp = offer_sdp()
    evil = {"Origin": "http://evil.example", "Content-Type": "text/plain"}
    body = json.dumps({"sdp": sdp, "type": "offer"})
    reply = request("POST", f"{server}/offer", data=body, headers=evil)
    assert reply.status == 403 and "evil.example" in reply.error()
    form = aiohttp.FormData()
    form.add_field("image", b"\x89PNG", filename="x.png", content_type="image/png")
    reply = request("POST", f"{server}/api/avatars", data=form, headers={"Origin": evil["Origin"]})
    assert reply.status == 403
    assert health(server)["sessions"] == 0
    own = {"Origin": server}
    reply = request("POST", f"{server}/offer", json={"sdp": "x", "type": "offer"}, headers=own)
    assert reply.status == 400  # past the origin check, refused for its content


# -- the token ------------------------------------------------------------------------------------


def test_with_a_token_every_api_route_needs_it(tmp_path_factory: pytest.TempPathFactory) -> None:
    cache = tmp_path_factory.mktemp("token-cache")
    with serve(max_sessions=1, cache_dir=cache, options=("--token", TOKEN)) as url:
        for path in ("/healthz", "/", "/static/app.js"):
            assert request("GET", url + path).status == 200, path
        for method, path in (
            ("GET", "/api/avatars"),
            ("GET", "/metrics"),
            ("POST", "/offer"),
            ("POST", "/api/avatars"),
            ("GET", "/api/sessions/x"),
            ("POST", "/whip"),
            ("DELETE", "/whip/x"),
            ("POST", "/whep/x"),
            ("DELETE", "/whep/x/y"),
            ("POST", "/api/sessions/x/say"),
            ("GET", "/api/voices"),
        ):
            reply = request(method, url + path)
            assert reply.status == 401 and "Bearer" in reply.headers["WWW-Authenticate"]
            reply.error()
        wrong = {"Authorization": "Bearer not-the-token-at-all"}
        assert request("GET", f"{url}/api/avatars", headers=wrong).status == 401
        right = {"Authorization": f"Bearer {TOKEN}"}
        assert request("GET", f"{url}/api/avatars", headers=right).status == 200

        async def call() -> None:
            client = await live_call(url, TOKEN)
            await close(client)

        asyncio.run(call())


# -- capacity -------------------------------------------------------------------------------------


def test_capacity_is_measured_and_reported(tmp_path_factory: pytest.TempPathFactory) -> None:
    cache = tmp_path_factory.mktemp("capacity-cache")
    with serve(max_sessions=8, cache_dir=cache, options=("--capacity", "auto")) as url:
        state = health(url)
        cost = state["frame_cost"]
        assert cost["source"] == "probe" and cost["frame_cpu_ms"] > 0
        assert all(v > 0 for v in cost["probe_ms"].values())
        assert state["capacity"] >= 1 and state["max_sessions"] == min(8, state["capacity"])
        metrics = request("GET", f"{url}/metrics").body.decode()
        assert f"emote_capacity_sessions {state['max_sessions']}" in metrics
        assert "emote_frame_cpu_ms " in metrics


# -- fuzz -----------------------------------------------------------------------------------------

SDP_LINES = st.sampled_from(
    [
        "v=0",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "a=recvonly",
        "a=sendonly",
        "a=rtpmap:96 VP8/90000",
        "a=fingerprint:sha-256 00:11",
        "a=setup:actpass",
        "c=IN IP4 0.0.0.0",
        "m=video x y z",
        "a=candidate:1 1 udp 1 127.0.0.1 9 typ host",
    ]
)
OFFERS = st.one_of(
    st.builds(
        lambda lines, extra: {"sdp": "\r\n".join(lines) + "\r\n", "type": "offer", **extra},
        st.lists(st.one_of(SDP_LINES, st.text(max_size=40)), max_size=40),
        st.dictionaries(
            st.sampled_from(["avatar", "style", "intensity"]),
            st.one_of(st.text(max_size=20), st.floats(allow_nan=True), st.integers(), st.none()),
        ),
    ),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=20,
    ),
)


def test_fuzzed_offers_get_json_errors_and_the_server_keeps_serving(server: str) -> None:
    seen: set[int] = set()

    @settings(
        max_examples=120,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        derandomize=True,
    )
    @given(body=st.one_of(OFFERS.map(lambda o: json.dumps(o).encode()), st.binary(max_size=300)))
    def post(body: bytes) -> None:
        reply = request(
            "POST", f"{server}/offer", data=body, headers={"Content-Type": "application/json"}
        )
        seen.add(reply.status)
        if reply.status == 200:  # a valid offer after all: close it again
            sid = reply.json()["session_id"]
            request("DELETE", f"{server}/api/sessions/{sid}")
            return
        assert reply.status in (400, 404, 413, 503), (reply.status, body[:200])
        reply.error()

    post()
    assert 400 in seen
    assert health(server)["status"] == "ok"
