"""The server's guards, piece by piece (issue 16): SDP limits, body and JSON limits, admission,
capacity arithmetic, the access policy (token, Host, Origin) and what `emote serve` does about
exposure. The same guards against a real server: tests/test_server_hardening.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from stream_server import capacity
from stream_server.access import AccessPolicy, exposure, host_name
from stream_server.admission import Admission
from stream_server.http_errors import json_errors, redact
from stream_server.http_limits import HttpError, depth, parse_json, read_body
from stream_server.sdp_limits import MAX_SDP_LINES, SdpError, check_offer_sdp

AUDIO = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendrecv\r\na=rtpmap:111 opus/48000/2\r\n"
VIDEO = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=recvonly\r\na=rtpmap:96 VP8/90000\r\n"
HEAD = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"


# -- SDP -------------------------------------------------------------------------------------


def test_a_browser_shaped_offer_passes() -> None:
    check_offer_sdp(HEAD + AUDIO + VIDEO)
    check_offer_sdp(HEAD + VIDEO.replace("recvonly", "sendrecv"))
    check_offer_sdp(HEAD + VIDEO.replace("a=recvonly\r\n", ""))  # no direction: sendrecv
    check_offer_sdp(HEAD + AUDIO + VIDEO + "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n")


@pytest.mark.parametrize(
    ("sdp", "reason"),
    [
        (HEAD + AUDIO, "must receive video"),
        (HEAD + AUDIO + VIDEO.replace("recvonly", "sendonly"), "video is sendonly"),
        (HEAD + AUDIO + VIDEO.replace("recvonly", "inactive"), "video is inactive"),
        (HEAD + AUDIO + VIDEO + VIDEO, "more than 1 video"),
        (HEAD + AUDIO * 300 + VIDEO, "more than 1 audio"),
        (HEAD + VIDEO + "m=text 9 RTP/AVP 0\r\n", "not audio, video or data"),
        (HEAD + VIDEO + "a=x\r\n" * MAX_SDP_LINES, "lines"),
        (HEAD + VIDEO + "a=" + "x" * 5000 + "\r\n", "over 4096 characters"),
    ],
)
def test_offers_beyond_what_a_session_uses_are_refused(sdp: str, reason: str) -> None:
    with pytest.raises(SdpError, match=reason):
        check_offer_sdp(sdp)


def test_the_check_is_cheap_enough_for_the_event_loop() -> None:
    largest = HEAD + VIDEO + "a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n" * 990
    started = time.perf_counter()
    for _ in range(20):
        check_offer_sdp(largest)
    assert (time.perf_counter() - started) / 20 < 0.005  # generous: ~0.3 ms here


# -- JSON -------------------------------------------------------------------------------------


def test_json_depth_is_bounded_and_deep_bodies_are_400() -> None:
    assert depth({"a": [1, {"b": 2}]}, 10) == 3 and depth(5, 10) == 0
    assert parse_json(b'{"sdp": "x", "type": "offer"}', "the offer") == {
        "sdp": "x",
        "type": "offer",
    }
    for body in (b"[" * 30000 + b"]" * 30000, b"[" * 9 + b"]" * 9):
        with pytest.raises(HttpError, match="nested too deeply") as caught:
            parse_json(body, "the offer")
        assert caught.value.status == 400
    with pytest.raises(HttpError, match="must be JSON") as caught:
        parse_json(b"\xff{", "the offer")
    assert caught.value.status == 400


# -- bodies -----------------------------------------------------------------------------------


def _body_app(limit: int, timeout_s: float) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        body = await read_body(request, limit, "the body", timeout_s)
        return web.json_response({"bytes": len(body)})

    app = web.Application(middlewares=[json_errors])
    app.router.add_post("/", echo)
    return app


def _run(app: web.Application, scenario: Any) -> Any:
    async def main() -> Any:
        async with TestClient(TestServer(app)) as client:
            return await scenario(client)

    return asyncio.run(main())


def test_bodies_are_limited_whatever_their_framing() -> None:
    async def scenario(client: TestClient) -> list[tuple[int, dict]]:
        async def chunked() -> Any:  # no Content-Length: the limit holds while reading
            for _ in range(1000):
                yield b"x" * 1024

        replies = []
        for data in (b"x" * 1000, b"x" * 5000, chunked()):
            async with client.post("/", data=data) as r:
                replies.append((r.status, await r.json()))
        return replies

    (ok, small), (over, declared), (bomb, chunked) = _run(_body_app(4096, 5.0), scenario)
    assert (ok, small) == (200, {"bytes": 1000})
    assert over == 413 and "declared 5000" in declared["error"]
    assert bomb == 413 and "at most 4096 bytes" in chunked["error"]


def test_a_stalled_body_gets_408() -> None:
    async def scenario(client: TestClient) -> tuple[int, dict, float]:
        async def stall() -> Any:
            yield b"{"
            await asyncio.sleep(5.0)
            yield b"}"

        started = time.monotonic()
        async with client.post("/", data=stall()) as r:
            return r.status, await r.json(), time.monotonic() - started

    status, body, took = _run(_body_app(4096, 0.5), scenario)
    assert status == 408 and "did not arrive" in body["error"] and took < 3.0


def test_framework_errors_are_json_and_ids_are_not_logged_whole() -> None:
    async def boom(_request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    app = _body_app(10, 1.0)
    app.router.add_get("/boom", boom)

    async def scenario(client: TestClient) -> list[tuple[int, str, dict]]:
        replies = []
        for method, path in (("GET", "/"), ("GET", "/nowhere"), ("GET", "/boom")):
            async with client.request(method, path) as r:
                replies.append((r.status, r.headers.get("Allow", ""), await r.json()))
        return replies

    (s405, allow, e405), (s404, _, e404), (s500, _, e500) = _run(app, scenario)
    assert (s405, allow, s404, s500) == (405, "POST", 404, 500)
    assert "not allowed" in e405["error"] and "/nowhere" in e404["error"]
    assert "a bug" not in e500["error"] and "logged" in e500["error"]
    sid = "0123456789abcdef" * 2
    assert redact(f"/api/sessions/{sid}/style") == "/api/sessions/01234567…/style"


# -- admission and capacity ---------------------------------------------------------------------


def test_admission_counts_slots_taken_not_sessions_finished() -> None:
    admission = Admission(max_sessions=4, capacity=2)
    assert [admission.take() for _ in range(4)] == [True, True, False, False]
    assert "measured capacity of 2" in admission.refusal()
    admission.release()
    assert admission.take() and not admission.take()
    admission.capacity = 1  # measured lower while running: nobody is evicted, nobody admitted
    admission.release()
    assert admission.taken == 1 and not admission.take()
    admission.capacity = 8
    assert admission.limit == 4 and "--max-sessions 4" in admission.refusal()
    with pytest.raises(RuntimeError):
        Admission(1, 1).release()


def test_capacity_is_what_fits_at_25_fps() -> None:
    assert capacity.sessions_for(10.0, cpus=2) == 6  # 2 * 0.85 * 1000 / (25 * 10)
    assert capacity.sessions_for(40.0, cpus=2) == 1
    assert capacity.sessions_for(200.0, cpus=1) == 1  # always one
    with pytest.raises(ValueError):
        capacity.sessions_for(0.0, cpus=2)
    cost = capacity.FrameCost.from_probe(1.0, 6.0, 1.0)
    assert cost.total_ms == pytest.approx(8.0 * capacity.LIVE_OVERHEAD)
    assert cost.measured(30.0).as_json()["source"] == "measured"


def test_the_cpu_meter_divides_cpu_time_by_frames_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = iter([10.0, 11.0, 12.0, 14.0, 15.0])
    monkeypatch.setattr(capacity, "cpu_seconds", lambda _pids: next(cpu))
    meter = capacity.CpuMeter(lambda: [])
    assert meter.sample(0, now=0.0) is None  # the window opens
    assert meter.sample(100, now=5.0) is None  # too short
    assert meter.sample(500, now=20.0) == pytest.approx(2000.0 / 500)  # 2 s of CPU, 500 frames
    assert meter.sample(550, now=45.0) is None  # too few frames to say
    assert meter.sample(10, now=50.0) is None  # a restart (fewer frames): a new window


def test_cpu_seconds_reads_child_processes() -> None:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "x = 0\nwhile True: x += 1"])
    try:
        time.sleep(0.8)
        assert capacity.cpu_seconds([child.pid]) - capacity.cpu_seconds([]) > 0.2
    finally:
        child.kill()
        child.wait()


# -- access ---------------------------------------------------------------------------------------


def test_host_names() -> None:
    assert host_name("[::1]:8080") == "::1" and host_name("LocalHost:80") == "localhost"
    assert host_name("10.0.0.2") == "10.0.0.2" and host_name("::1") == "::1"


def test_the_policy_follows_the_bind_address() -> None:
    loop = AccessPolicy.for_bind("127.0.0.1", None)
    assert loop.host_allowed("127.0.0.1:8080") and loop.host_allowed("localhost:8080")
    assert not loop.host_allowed("evil.example:8080") and not loop.host_allowed("10.0.0.2")
    wild = AccessPolicy.for_bind("0.0.0.0", "t" * 20, extra_hosts=["avatar.example.com"])
    assert wild.host_allowed("10.1.2.3:8080") and wild.host_allowed("avatar.example.com")
    assert not wild.host_allowed("rebound.example:8080")
    assert AccessPolicy.for_bind("127.0.0.1", None, extra_hosts=["*"]).host_allowed("any.where")
    assert loop.origin_allowed("http://127.0.0.1:8080", "127.0.0.1:8080")
    assert not loop.origin_allowed("http://evil.example", "127.0.0.1:8080")
    assert not loop.origin_allowed("null", "127.0.0.1:8080")
    listed = AccessPolicy.for_bind("127.0.0.1", None, extra_origins=["https://app.example/"])
    assert listed.origin_allowed("https://app.example", "127.0.0.1:8080")
    assert wild.token_ok("Bearer " + "t" * 20) and not wild.token_ok("Bearer " + "u" * 20)
    assert not wild.token_ok(None) and not wild.token_ok("t" * 20)
    assert not wild.needs_token("/healthz") and not wild.needs_token("/static/app.js")
    assert wild.needs_token("/offer") and wild.needs_token("/metrics")
    assert not loop.needs_token("/offer")


def test_exposure_never_serves_an_open_api_beyond_loopback_unless_told() -> None:
    assert exposure("127.0.0.1", None, False).token is None
    given = exposure("0.0.0.0", "x" * 20, False)
    assert given.token == "x" * 20 and not given.generated
    made = exposure("0.0.0.0", None, False)
    assert made.generated and made.token is not None and len(made.token) >= 24
    assert exposure("0.0.0.0", None, False).token != made.token
    insecure = exposure("192.168.1.5", None, True)
    assert insecure.token is None and insecure.warning and "no access token" in insecure.warning


@pytest.fixture
def served_config(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """What `emote serve` would serve, without binding anything (http_errors.run captured)."""
    from stream_server import app as app_module
    from stream_server import http_errors

    captured: list[Any] = []
    real_create = app_module.create_app

    def create(config: Any) -> Any:
        captured.append(config)
        return real_create(config)

    monkeypatch.setattr(app_module, "create_app", create)
    monkeypatch.setattr(http_errors, "run", lambda app, host, port: captured.append((host, port)))
    monkeypatch.delenv("EMOTE_TOKEN", raising=False)
    from contracts import settings

    settings.current.cache_clear()
    yield captured
    settings.current.cache_clear()


def test_serve_on_all_interfaces_without_a_token_generates_one(
    served_config: list[Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from emote.cli import main

    assert main(["serve", "--host", "0.0.0.0", "--port", "1", "--cache-dir", str(tmp_path)]) == 0
    config, bound = served_config
    assert bound == ("0.0.0.0", 1)
    token = config.access.token
    assert token and token in capsys.readouterr().err
    assert config.access.needs_token("/offer") and config.access.needs_token("/api/avatars")


def test_serve_insecure_warns_and_a_bad_token_is_refused(
    served_config: list[Any], caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from emote.cli import main

    base = ["serve", "--host", "0.0.0.0", "--port", "1", "--cache-dir", str(tmp_path)]
    assert main([*base, "--insecure"]) == 0
    assert served_config[0].access.token is None
    assert "no access token" in caplog.text
    assert main([*base, "--token", "short"]) != 0


def test_serve_publish_to_takes_a_janus_url_or_says_why(
    served_config: list[Any], tmp_path: Path
) -> None:
    from emote.cli import main
    from stream_server.janus_api import JanusTarget

    base = ["serve", "--port", "1", "--cache-dir", str(tmp_path)]
    url = "janus+http://10.0.0.5:8088/janus?room=7"
    assert main([*base, "--publish-to", url, "--publish-on-request"]) == 0
    config = served_config[0]
    assert config.publish_to == JanusTarget("http://10.0.0.5:8088/janus", 7)
    assert config.publish_on_request
    served_config.clear()
    assert main([*base, "--publish-to", "http://10.0.0.5:8088/janus"]) != 0
    assert main([*base, "--publish-to", "janus+http://h/janus?room=x"]) != 0
    assert main([*base, "--publish-on-request"]) != 0
    assert not served_config  # nothing was served


def test_serve_ice_servers_need_their_credentials(
    served_config: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from contracts import settings
    from emote.cli import main

    base = ["serve", "--port", "1", "--cache-dir", str(tmp_path)]
    turn = ["--ice-server", "stun:s.example", "--ice-server", "turn:t.example:3478"]
    assert main([*base, *turn, "--turn-secret", "s3cret"]) == 0
    ice = served_config[0].ice
    assert ice.urls == ("stun:s.example", "turn:t.example:3478") and ice.turn_secret == "s3cret"
    served_config.clear()
    assert main([*base, *turn]) != 0  # TURN without a credential
    assert main([*base, "--ice-server", "http://t.example"]) != 0
    assert not served_config
    monkeypatch.setenv("EMOTE_TURN_SECRET", "from-the-env")
    settings.current.cache_clear()
    assert main([*base, *turn]) == 0
    assert served_config[0].ice.turn_secret == "from-the-env"
