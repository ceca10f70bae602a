"""The HTTP API of `emote serve` (docs/api.md), against a real server process on 127.0.0.1:
health, metrics, avatars (upload, bad uploads), offers (bad ones, capacity), sessions. Every
error is JSON with a message, and the server keeps serving real WebRTC sessions after them."""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender
from PIL import Image

from contracts.paths import DEFAULT_PORTRAIT
from measure.server import serve
from measure.webrtc_client import Client
from stream_server.loopback import use_loopback_only

PORTRAIT = DEFAULT_PORTRAIT


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(max_sessions=1, cache_dir=tmp_path_factory.mktemp("api-cache")) as url:
        yield url


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)

    def error(self) -> str:
        """The JSON error message (asserts that there is one)."""
        assert self.headers.get("Content-Type", "").startswith("application/json"), self.headers
        message = self.json()["error"]
        assert isinstance(message, str) and len(message) > 5, message
        return message


async def _request(method: str, url: str, **kwargs: Any) -> Reply:
    async with aiohttp.ClientSession() as http, http.request(method, url, **kwargs) as r:
        return Reply(r.status, dict(r.headers), await r.read())


def request(method: str, url: str, **kwargs: Any) -> Reply:
    return asyncio.run(_request(method, url, **kwargs))


def upload(url: str, data: bytes, filename: str, content_type: str) -> Reply:
    form = aiohttp.FormData()
    form.add_field("image", data, filename=filename, content_type=content_type)
    return request("POST", f"{url}/api/avatars", data=form)


async def _offer_sdp(video: bool = True, audio: bool = True, video_codec: str = "") -> str:
    """A real aiortc offer (the connection is closed again at once); ``video_codec``: the
    only video codec it accepts (default: all aiortc's)."""
    use_loopback_only()
    pc = RTCPeerConnection()
    if audio:
        pc.addTransceiver("audio", direction="sendrecv")
    if video:
        transceiver = pc.addTransceiver("video", direction="recvonly")
        if video_codec:
            codecs = RTCRtpSender.getCapabilities("video").codecs
            transceiver.setCodecPreferences(
                [c for c in codecs if c.mimeType.lower() == f"video/{video_codec}"]
            )
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


def offer_sdp(video: bool = True, audio: bool = True, video_codec: str = "") -> str:
    return asyncio.run(_offer_sdp(video, audio, video_codec))


def sessions_open(url: str) -> int:
    return request("GET", f"{url}/healthz").json()["sessions"]


def wait_for_sessions(url: str, count: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while sessions_open(url) != count:
        assert time.monotonic() < deadline, f"sessions never went to {count}"
        time.sleep(0.1)


def png_size(body: bytes) -> tuple[int, int]:
    assert body[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(body)) as image:
        return image.size


# -- health and metrics ------------------------------------------------------------------------


def test_healthz_reports_ready_and_capacity(server: str) -> None:
    reply = request("GET", f"{server}/healthz")
    assert reply.status == 200
    health = reply.json()
    assert health["status"] == "ok"
    assert health["sessions"] == 0
    assert health["max_sessions"] == 1
    assert isinstance(health["uptime_s"], int | float) and health["uptime_s"] >= 0


SAMPLE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-z]+=\"[^\"]*\"\})? -?[0-9.e+-]+$")


def test_metrics_are_prometheus_text(server: str) -> None:
    reply = request("GET", f"{server}/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    text = reply.body.decode()
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    assert types["emote_sessions"] == "gauge"
    assert types["emote_sessions_total"] == "counter"
    assert types["emote_sessions_rejected_total"] == "counter"
    assert types["emote_frames_delivered_total"] == "counter"
    assert types["emote_frames_dropped_total"] == "counter"
    assert types["emote_render_ms"] == "histogram"
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    bad = [line for line in samples if not SAMPLE.match(line)]
    assert not bad, bad
    assert re.search(r"^emote_sessions 0$", text, re.M)
    buckets = [
        float(v) for v in re.findall(r'^emote_render_ms_bucket\{le="[^"]+"\} (\S+)$', text, re.M)
    ]
    assert len(buckets) >= 5 and buckets == sorted(buckets)  # cumulative, ending at +Inf
    count = float(re.search(r"^emote_render_ms_count (\S+)$", text, re.M).group(1))
    assert buckets[-1] == count


# -- avatars ------------------------------------------------------------------------------------


def avatars(url: str) -> list[dict]:
    reply = request("GET", f"{url}/api/avatars")
    assert reply.status == 200
    return reply.json()["avatars"]


def test_the_bundled_default_is_listed_and_served(server: str) -> None:
    listed = avatars(server)
    defaults = [a for a in listed if a["default"]]
    assert len(defaults) == 1
    default = defaults[0]
    assert default["image"] == f"/api/avatars/{default['id']}/image"
    assert default["name"] and isinstance(default["warnings"], list)
    image = request("GET", server + default["image"])
    assert image.status == 200
    assert image.headers["Content-Type"] == "image/png"
    assert png_size(image.body) == (512, 512)
    missing = request("GET", f"{server}/api/avatars/0123456789abcdef/image")
    assert missing.status == 404
    missing.error()


def mirrored_portrait() -> bytes:
    with Image.open(PORTRAIT) as image:
        out = io.BytesIO()
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(out, format="JPEG", quality=92)
    return out.getvalue()


def test_uploaded_portrait_becomes_an_avatar_with_an_image_and_sessions(server: str) -> None:
    reply = upload(server, PORTRAIT.read_bytes(), "mona_lisa.jpg", "image/jpeg")
    assert reply.status == 201, reply.body
    assert reply.json()["id"] in {a["id"] for a in avatars(server)}

    reply = upload(server, mirrored_portrait(), "mirrored.jpg", "image/jpeg")
    assert reply.status == 201, reply.body
    info = reply.json()
    assert info["default"] is False
    assert info["name"] == "mirrored"
    listed = {a["id"]: a for a in avatars(server)}
    assert info["id"] in listed and listed[info["id"]]["default"] is False
    image = request("GET", server + info["image"])
    assert image.status == 200 and png_size(image.body) == (512, 512)
    # the new avatar can be asked for in an offer
    answer = request(
        "POST", f"{server}/offer", json={"sdp": offer_sdp(), "type": "offer", "avatar": info["id"]}
    )
    assert answer.status == 200, answer.body
    session_id = answer.json()["session_id"]
    stats = request("GET", f"{server}/api/sessions/{session_id}").json()
    assert stats["avatar"] == info["id"]
    # the generator, for the bench's offline reference (measure.mouth_reference)
    assert (stats["motion"], stats["motion_seed"], stats["motion_steps"]) == ("dsp", 0, None)
    assert request("DELETE", f"{server}/api/sessions/{session_id}").status == 200
    wait_for_sessions(server, 0)


def flat_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (600, 600), (120, 130, 140)).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "filename", "content_type", "status", "says"),
    [
        (b"just some text\n" * 20, "notes.txt", "text/plain", 422, "not an image"),
        (np.random.default_rng(0).bytes(20_000), "noise.jpg", "image/jpeg", 422, "not an image"),
        (flat_png(), "wall.png", "image/png", 422, "face"),
    ],
    ids=["text", "random-bytes", "no-face"],
)
def test_bad_uploads_are_refused_with_a_message(
    server: str, data: bytes, filename: str, content_type: str, status: int, says: str
) -> None:
    before = avatars(server)
    reply = upload(server, data, filename, content_type)
    assert reply.status == status, reply.body
    assert says in reply.error().lower()
    assert avatars(server) == before


def test_uploads_that_are_not_multipart_or_lack_the_image_field_are_refused(server: str) -> None:
    reply = request("POST", f"{server}/api/avatars", json={"image": "mona_lisa.jpg"})
    assert reply.status == 400
    assert "multipart" in reply.error()
    form = aiohttp.FormData()
    form.add_field("picture", PORTRAIT.read_bytes(), filename="m.jpg", content_type="image/jpeg")
    reply = request("POST", f"{server}/api/avatars", data=form)
    assert reply.status == 400
    assert "image" in reply.error()
    nested = aiohttp.MultipartWriter("form-data")  # an "image" that is itself a multipart
    inner = aiohttp.MultipartWriter("mixed")
    inner.append(PORTRAIT.read_bytes(), {"Content-Type": "image/jpeg"})
    nested.append(inner).set_content_disposition("form-data", name="image")
    reply = request("POST", f"{server}/api/avatars", data=nested)
    assert reply.status == 400
    assert "image" in reply.error()


# -- offers and sessions ------------------------------------------------------------------------


def bad_offers() -> list[tuple[str, dict[str, Any], int]]:
    audio_only = offer_sdp(video=False)
    h264_only = offer_sdp(video_codec="h264")  # the server sends VP8 (encoded ahead)
    good = offer_sdp()
    return [
        (
            "not-json",
            {"data": b"v=0 this is not json", "headers": {"Content-Type": "text/plain"}},
            400,
        ),
        ("json-list", {"json": ["sdp", "offer"]}, 400),
        ("missing-sdp", {"json": {"type": "offer"}}, 400),
        ("missing-type", {"json": {"sdp": good}}, 400),
        ("answer-not-offer", {"json": {"sdp": good, "type": "answer"}}, 400),
        ("sdp-not-a-string", {"json": {"sdp": 42, "type": "offer"}}, 400),
        ("garbage-sdp", {"json": {"sdp": "hello there", "type": "offer"}}, 400),
        ("broken-sdp", {"json": {"sdp": "v=0\r\nm=video x y z\r\na=junk", "type": "offer"}}, 400),
        ("no-video", {"json": {"sdp": audio_only, "type": "offer"}}, 400),
        ("no-vp8", {"json": {"sdp": h264_only, "type": "offer"}}, 400),
        ("unknown-avatar", {"json": {"sdp": good, "type": "offer", "avatar": "nobody"}}, 404),
        ("unknown-style", {"json": {"sdp": good, "type": "offer", "style": "joyful"}}, 400),
        (
            "style-too-strong",
            {"json": {"sdp": good, "type": "offer", "style": "happy", "intensity": 3}},
            400,
        ),
        ("too-large", {"json": {"sdp": good + "a=x\r\n" * 20_000, "type": "offer"}}, 413),
    ]


def test_bad_offers_are_refused_with_a_message_and_leave_nothing_open(server: str) -> None:
    for name, kwargs, status in bad_offers():
        reply = request("POST", f"{server}/offer", **kwargs)
        assert reply.status == status, (name, reply.status, reply.body)
        message = reply.error()
        if name == "no-vp8":
            assert "VP8" in message
    assert sessions_open(server) == 0


def test_unknown_sessions_are_404(server: str) -> None:
    for method, path in (
        ("GET", "/api/sessions/nope"),
        ("DELETE", "/api/sessions/nope"),
        ("POST", "/api/sessions/nope/interrupt"),
        ("POST", "/api/sessions/nope/style"),
    ):
        reply = request(method, server + path)
        assert reply.status == 404, (method, path)
        reply.error()


async def _session_frames(url: str, frames: int, timeout_s: float = 20.0) -> tuple[Client, dict]:
    """Connect a real client, wait for ``frames`` video frames, return it open with its stats."""
    client = Client(url, None)
    async with aiohttp.ClientSession() as http:
        await client.connect(http)
        deadline = time.monotonic() + timeout_s
        while len(client.received.video_t) < frames:
            assert time.monotonic() < deadline, "no video frames"
            await asyncio.sleep(0.05)
        stats = await client.stats(http)
    return client, stats


@pytest.mark.slow
def test_a_real_session_works_after_bad_requests(server: str) -> None:
    for _, kwargs, _ in bad_offers()[:4]:
        request("POST", f"{server}/offer", **kwargs)
    upload(server, b"nonsense", "x.png", "image/png")

    async def scenario() -> None:
        client, stats = await _session_frames(server, 25)
        assert client.received.video_size == (512, 512)
        assert stats["session_id"] == client.session_id
        assert stats["frames_sent"] >= 25
        assert stats["latency_ms"] > 0
        assert (stats["style"], stats["intensity"]) == ("neutral", 1.0)
        await _styles_change_and_bad_ones_change_nothing(server, client.session_id)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server}/healthz") as r:
                assert (await r.json())["sessions"] == 1
            async with http.delete(f"{server}/api/sessions/{client.session_id}") as r:
                assert r.status == 200 and (await r.json()) == {"closed": True}
            async with http.get(f"{server}/api/sessions/{client.session_id}") as r:
                assert r.status == 404
            await client.close()

    asyncio.run(scenario())
    wait_for_sessions(server, 0, timeout_s=2.0)


async def _styles_change_and_bad_ones_change_nothing(server: str, session_id: str) -> None:
    url = f"{server}/api/sessions/{session_id}/style"
    good = await _request("POST", url, json={"style": "happy", "intensity": 0.6})
    assert good.status == 200 and good.json() == {"style": "happy", "intensity": 0.6}
    bad = [
        {"json": {"style": "joyful"}},
        {"json": {"style": "sad", "intensity": 1.5}},
        {"json": {"style": "sad", "intensity": "loud"}},
        {"json": {"style": "sad", "intensity": True}},
        {"json": {"intensity": 0.5}},
        {"json": ["happy"]},
        {"data": b"happy", "headers": {"Content-Type": "text/plain"}},
        {"json": {"style": "sad", "pad": "x" * 2000}},
    ]
    for kwargs in bad:
        reply = await _request("POST", url, **kwargs)
        assert reply.status in (400, 413), (kwargs, reply.status)
        reply.error()
    stats = (await _request("GET", f"{server}/api/sessions/{session_id}")).json()
    assert (stats["style"], stats["intensity"]) == ("happy", 0.6)


def rejected_total(url: str) -> int:
    text = request("GET", f"{url}/metrics").body.decode()
    return int(re.search(r"^emote_sessions_rejected_total (\d+)$", text, re.M).group(1))


@pytest.mark.slow
def test_at_capacity_an_offer_gets_503_with_retry_after(server: str) -> None:
    rejected = rejected_total(server)

    async def scenario() -> None:
        client, _ = await _session_frames(server, 5)
        try:
            sdp = await _offer_sdp()
            reply = await _request("POST", f"{server}/offer", json={"sdp": sdp, "type": "offer"})
            assert reply.status == 503, reply.body
            assert int(reply.headers["Retry-After"]) > 0
            reply.error()
        finally:
            async with aiohttp.ClientSession() as http:
                await client.close(http)

    asyncio.run(scenario())
    assert rejected_total(server) == rejected + 1
    wait_for_sessions(server, 0, timeout_s=2.0)
    # the slot is free again
    reply = request("POST", f"{server}/offer", json={"sdp": offer_sdp(), "type": "offer"})
    assert reply.status == 200, reply.body
    assert request("DELETE", f"{server}/api/sessions/{reply.json()['session_id']}").status == 200
