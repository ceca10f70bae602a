"""The ``motion`` data channel over real WebRTC loopback against `emote serve`
(stream_server/motion_channel.py): every sent video frame's motion arrives with the frame's
index, and the index is the right one (the message's jawOpen follows the mouth that FaceMesh
reads on the frame it names, best at lag 0); a client drives the face through it; bad and
flooding messages are refused with a reason and the session keeps going."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import numpy as np
import pytest

from contracts.paths import DEFAULT_SPEECH
from measure.mouth import mouth_openings
from measure.program import load_speech, speech_program
from measure.server import serve
from measure.webrtc_client import Client

pytestmark = pytest.mark.slow

PTS = 3600  # 90 kHz / 25 fps


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(max_sessions=2, cache_dir=tmp_path_factory.mktemp("motion-cache")) as url:
        yield url


async def session(url: str, program, seconds: float, during=None) -> tuple[Client, dict]:
    client = Client(url, program, keep=lambda n, t: True, motion_channel=True)
    async with aiohttp.ClientSession() as http:
        await client.connect(http)
        try:
            await asyncio.wait_for(client.first_frame.wait(), 20)
            started = time.monotonic()
            if during is not None:
                await during(client)
            await asyncio.sleep(max(0.0, started + seconds - time.monotonic()))
            stats = await client.stats(http)
        finally:
            await client.close(http)
    assert stats is not None
    return client, stats


def by_frame(client: Client) -> dict[int, dict]:
    return {m["frame"]: m for _, m in client.received.motion if m.get("type") == "motion"}


def test_each_frame_arrives_with_its_motion(server: str) -> None:
    speech = load_speech(DEFAULT_SPEECH)[: 48_000 * 4]
    program = speech_program(speech, lead_s=0.5, tail_s=0.5)
    client, stats = asyncio.run(session(server, program, program.duration_s + 0.5))
    messages = by_frame(client)
    got = client.received
    assert len(got.video_pts) > 80
    assert len(messages) >= 0.95 * len(got.video_pts), (len(messages), len(got.video_pts))
    assert stats["motion_channel"]["dropped"] == 0
    frames = sorted(messages)
    assert all(messages[k]["rtp_timestamp"] == k * PTS for k in frames)
    assert all(len(messages[k]["arkit"]) == 52 for k in frames)
    # The RTP timestamps on the wire are ours plus the sender's random origin: one offset
    # for every frame, or the indices name other frames than they came with.
    offsets = {}
    for pts, t in zip(got.video_pts, got.video_t, strict=True):
        near = [m for tm, m in got.motion if abs(tm - t) < 0.2 and m.get("type") == "motion"]
        for m in near:
            off = (pts - m["rtp_timestamp"]) % 2**32
            offsets[off] = offsets.get(off, 0) + 1
    offset = max(offsets, key=offsets.__getitem__)
    index_of = {(pts - offset) % 2**32 // PTS: n for n, pts in enumerate(got.video_pts)}
    matched = [k for k in frames if k in index_of]
    assert len(matched) >= 0.95 * len(frames)
    # The message's jawOpen against FaceMesh on the frame it names, at lags -3..3 frames.
    mouth = mouth_openings({n: got.kept[n] for n in index_of.values() if n in got.kept})
    jaw = {k: messages[k]["arkit"]["jawOpen"] for k in matched}

    def corr(lag: int) -> float:
        pairs = [(jaw[k], mouth[index_of[k + lag]]) for k in matched
                 if k + lag in index_of and index_of[k + lag] in mouth]  # fmt: skip
        a, b = np.array(pairs).T
        return float(np.corrcoef(a, b)[0, 1])

    by_lag = {lag: corr(lag) for lag in range(-3, 4)}
    assert by_lag[0] > 0.6, by_lag
    assert by_lag[0] >= max(by_lag.values()) - 1e-9, by_lag


def test_a_client_drives_the_face_and_bad_messages_change_nothing(server: str) -> None:
    async def during(client: Client) -> None:
        await asyncio.sleep(1.0)
        for bad in [
            "{nope",
            '{"type": "motion", "motion": {"jawOpen": 2}}',
            '{"type": "motion", "motion": {"nose": 1}}',
            '{"type": "dance"}',
        ]:
            client.send_motion(bad)
        assert client.motion is not None
        client.motion.send(b"\x00binary")
        await asyncio.sleep(0.5)
        client.puppet_from = time.monotonic()
        for _ in range(8):  # 1.6 s of a wide-open mouth and a turned head
            client.send_motion({"type": "motion", "motion": {"jawOpen": 0.8, "headYaw": 0.15},
                                "hold_ms": 400})  # fmt: skip
            await asyncio.sleep(0.2)
        client.puppet_to = time.monotonic()
        await asyncio.sleep(1.5)
        for _ in range(300):  # a flood: refused past the rate, the session goes on
            client.send_motion({"type": "motion", "motion": {"jawOpen": 0.0}})
        await asyncio.sleep(1.0)

    client, stats = asyncio.run(session(server, None, 6.5, during))
    got = client.received
    errors = [m["message"] for _, m in got.motion if m.get("type") == "error"]
    assert any("not JSON" in e for e in errors)
    assert any("jawOpen = 2 is outside" in e for e in errors)
    assert any("unknown motion field 'nose'" in e for e in errors)
    assert any("unknown message type" in e for e in errors)
    assert any("binary" in e for e in errors)
    assert any("messages a second" in e for e in errors)
    assert stats["motion_channel"]["refused"] >= 5 + 200
    # the face did what the client said, while it said it, and then went back
    messages = by_frame(client)
    puppet = [m for t, m in got.motion if m.get("type") == "motion"
              and client.puppet_from + 0.5 < t < client.puppet_to]  # fmt: skip
    assert puppet and all(m["arkit"]["jawOpen"] == pytest.approx(0.8) for m in puppet)
    assert all(m["head"]["yaw"] == pytest.approx(0.15) for m in puppet)
    after = [m for t, m in got.motion if m.get("type") == "motion"
             and client.puppet_to + 0.8 < t < client.puppet_to + 1.4]  # fmt: skip
    assert after and max(m["arkit"]["jawOpen"] for m in after) < 0.2
    # ... and the pixels agree: open while puppeted, shut before it
    times = np.asarray(got.video_t)
    mouth = mouth_openings(got.kept)
    during_p = [mouth[n] for n in mouth if client.puppet_from + 0.6 < times[n] < client.puppet_to]
    before_p = [mouth[n] for n in mouth if times[n] < client.puppet_from - 0.2]
    assert np.median(during_p) > np.median(before_p) + 0.03, (
        np.median(during_p),
        np.median(before_p),
    )
    # frames kept coming through all of it (no stall after the bad messages or the flood)
    assert np.diff(times[times > times[0] + 1.0]).max() < 0.25
    assert len(messages) > 100
