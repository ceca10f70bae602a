"""Text input over real WebRTC loopback (`POST /api/sessions/{id}/say`, stream_server/speaker.py):
the TTS engines speak it, the mouth opens on the received frames (FaceMesh) and the speech
comes back on the audio track; an interrupt stops it; bad requests change nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import numpy as np
import pytest

from engines import tts
from measure.mouth import mouth_openings
from measure.server import serve
from measure.webrtc_client import Client

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not tts.voices(), reason="no TTS engine (bash scripts/install_tts.sh)"),
]

OPEN = 0.035  # measure.mouth's plain-mesh gap / face height: shut reads <= ~0.009


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(max_sessions=2, cache_dir=tmp_path_factory.mktemp("say-cache")) as url:
        yield url


async def call(url: str, seconds: float, during) -> tuple[Client, dict, dict]:
    client = Client(url, None, keep=lambda n, t: True)  # no microphone: the avatar idles
    marks: dict = {}
    async with aiohttp.ClientSession() as http:
        await client.connect(http)
        try:
            await asyncio.wait_for(client.first_frame.wait(), 20)
            started = time.monotonic()
            await during(client, http, marks)
            await asyncio.sleep(max(0.0, started + seconds - time.monotonic()))
            stats = await client.stats(http)
        finally:
            await client.close(http)
    assert stats is not None
    return client, stats, marks


def mouth_at(client: Client) -> tuple[np.ndarray, np.ndarray]:
    mouth = mouth_openings(client.received.kept)
    frames = sorted(mouth)
    return np.asarray(client.received.video_t)[frames], np.array([mouth[n] for n in frames])


def test_text_is_spoken_and_an_interrupt_stops_it(server: str) -> None:
    async def during(client: Client, http: aiohttp.ClientSession, marks: dict) -> None:
        await asyncio.sleep(1.0)
        url = f"{server}/api/sessions/{client.session_id}"
        marks["say"] = time.monotonic()
        async with http.post(f"{url}/say", json={"text": "Hello there! I am reading this "
                             "text aloud, one sentence at a time."}) as r:  # fmt: skip
            assert r.status == 202, await r.text()
            marks["answer"] = await r.json()
        await asyncio.sleep(5.5)  # the first text takes ~4.8 s
        long_text = "This sentence goes on and on about nothing at all. " * 6
        async with http.post(f"{url}/say", json={"text": long_text, "voice": "flite-slt"}) as r:
            assert r.status == 202
        await asyncio.sleep(3.0)  # well into the long text (its start varies under load)
        marks["interrupt"] = time.monotonic()
        async with http.post(f"{url}/interrupt") as r:
            assert r.status == 200

    client, stats, marks = asyncio.run(call(server, 12.5, during))
    assert marks["answer"]["voice"] == tts.default_voice()
    assert marks["answer"]["sentences"] == 2
    times, mouth = mouth_at(client)
    t_say, t_int = marks["say"], marks["interrupt"]
    before = mouth[times < t_say]
    assert len(before) > 8 and np.median(before) < OPEN
    opened = times[(times > t_say) & (mouth > OPEN)]
    assert len(opened) >= 5, "the mouth never opened for the text"
    first_open = opened[0] - t_say
    latency = stats["latency_ms"] / 1000
    # synthesis (~30 ms) + the session's latency + the time to the first open vowel (<= 0.5 s)
    assert first_open < latency + 0.8, f"the mouth opened {first_open * 1000:.0f} ms after"
    # the speech came back on the audio track, and stops with the interrupt
    audio_t, rms = np.asarray(client.received.audio_t), np.asarray(client.received.audio_rms)
    assert rms[(audio_t > t_say) & (audio_t < t_say + 3.0)].max() > 0.02
    assert rms[audio_t < t_say].max() < 0.005
    assert rms[audio_t > t_int + latency + 0.3].max() < 0.005
    speaking = (times > t_int - 1.2) & (times < t_int)
    assert (mouth[speaking] > OPEN).sum() >= 3  # the long text was being spoken
    after = times > t_int + latency + 0.2
    assert after.sum() > 25 and mouth[after].max() < OPEN, mouth[after].max()
    assert stats["interrupts"] == 1


def test_bad_requests_are_refused_and_change_nothing(server: str) -> None:
    async def during(client: Client, http: aiohttp.ClientSession, marks: dict) -> None:
        url = f"{server}/api/sessions/{client.session_id}/say"
        cases = [
            ({"text": ""}, 400, "empty"),
            ({"text": "hi", "voice": "robot"}, 400, "unknown voice"),
            ({"text": "hi", "pitch": 3}, 400, "unknown keys: pitch"),
            ({"text": 42}, 400, "must be a string"),
            ({"text": "x" * 2001}, 400, "longer than 2000"),
        ]
        for body, status, says in cases:
            async with http.post(url, json=body) as r:
                assert r.status == status and says in (await r.json())["error"], body
        async with http.post(url, data=b"{not json") as r:
            assert r.status == 400
        async with http.post(f"{server}/api/sessions/nope/say", json={"text": "hi"}) as r:
            assert r.status == 404
        statuses = []
        for _ in range(10):  # 8 may wait; the rest are refused
            async with http.post(url, json={"text": "One more thing."}) as r:
                statuses.append(r.status)
        marks["statuses"] = statuses
        async with http.get(f"{server}/api/voices") as r:
            marks["voices"] = await r.json()
        async with http.post(f"{server}/api/sessions/{client.session_id}/interrupt") as r:
            assert r.status == 200

    client, _stats, marks = asyncio.run(call(server, 2.0, during))
    assert marks["statuses"].count(202) in (8, 9) and marks["statuses"][-1] == 429
    assert marks["voices"]["voices"] == tts.voices()
    assert marks["voices"]["default"] == tts.default_voice()
    arrivals = np.asarray(client.received.video_t)
    assert np.diff(arrivals[arrivals > arrivals[0] + 0.5]).max() < 0.25  # it kept going
