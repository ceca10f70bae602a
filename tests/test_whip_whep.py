"""WHIP ingest and WHEP egress on `emote serve` (stream_server/whip_whep.py), over real
loopback WebRTC: the status codes, headers and content types RFC 9725 (and the WHEP draft)
name, then real clients: an aiortc WHIP publisher sends speech, two aiortc WHEP viewers watch
the avatar, and FaceMesh reads its mouth on what they received."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiohttp
import numpy as np
import pytest
from aiortc import RTCPeerConnection, VideoStreamTrack

from contracts.paths import DEFAULT_SPEECH
from measure.mouth import mouth_openings
from measure.program import ProgramTrack, load_speech, speech_program
from measure.server import serve
from measure.whip_clients import Publisher, Viewer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(max_sessions=2, cache_dir=tmp_path_factory.mktemp("whip-cache")) as url:
        yield url


def test_whip_and_whep_as_the_rfc_names_them(server: str) -> None:
    async def run() -> None:
        async with aiohttp.ClientSession() as http:
            # the endpoint: POST only, and only SDP
            for method in ("GET", "PUT"):
                async with http.request(method, f"{server}/whip") as r:
                    assert r.status == 405 and r.headers["Allow"] == "POST"
            async with http.post(f"{server}/whip", json={"sdp": "v=0"}) as r:
                assert r.status == 415
            bad = {"Content-Type": "application/sdp"}
            async with http.post(f"{server}/whip", data="not sdp", headers=bad) as r:
                assert r.status == 400 and "malformed offer" in (await r.json())["error"]
            async with http.post(
                f"{server}/whip?avatar=nope",
                data="v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
                headers=bad,
            ) as r:
                assert r.status in (400, 404)
            silence = speech_program(np.zeros(48_000, np.float32), lead_s=0.0, tail_s=0.0)
            publisher = Publisher(server, silence)
            location = await publisher.start(http, "?style=happy:0.5")
            assert location.startswith("/whip/")
            # no trickle ICE: the RFC's 405 for PATCH, with what is allowed
            patch = {"Content-Type": "application/trickle-ice-sdpfrag"}
            async with http.patch(
                server + location, data="a=end-of-candidates", headers=patch
            ) as r:
                assert r.status == 405 and r.headers["Allow"] == "DELETE"
            async with http.get(f"{server}/api/sessions/{publisher.session_id}") as r:
                assert (await r.json())["style"] == "happy"
            viewer = Viewer(server, publisher.session_id)
            watch = await viewer.start(http)
            assert watch.startswith(f"/whep/{publisher.session_id}/")
            async with http.patch(server + watch, data="a=end-of-candidates", headers=patch) as r:
                assert r.status == 405
            async with http.get(f"{server}/whep/{publisher.session_id}") as r:
                assert r.status == 405 and r.headers["Allow"] == "POST"
            async with http.post(f"{server}/whep/nope", data="v=0", headers=bad) as r:
                assert r.status == 404
            assert await viewer.stop(http) == 200
            async with http.delete(server + watch) as r:
                assert r.status == 404  # gone
            assert await publisher.stop(http) == 200
            async with http.delete(server + location) as r:
                assert r.status == 404
            # a publisher that also sends its camera (OBS does): the video is declined
            pc = RTCPeerConnection()
            pc.addTransceiver(ProgramTrack(silence), direction="sendonly")
            pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            async with http.post(f"{server}/whip", data=pc.localDescription.sdp, headers=bad) as r:
                assert r.status == 201, await r.text()
                answer, camera = await r.text(), r.headers["Location"]
            video = answer[answer.index("m=video") :]
            assert "a=inactive" in video.split("m=", 2)[1]
            await pc.close()
            async with http.delete(server + camera) as r:
                assert r.status == 200
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                async with http.get(f"{server}/healthz") as r:
                    if (await r.json())["sessions"] == 0:
                        break
                await asyncio.sleep(0.1)
            async with http.get(f"{server}/healthz") as r:
                assert (await r.json())["sessions"] == 0

    asyncio.run(run())


def test_a_whip_publisher_drives_the_avatar_two_whep_viewers_watch(server: str) -> None:
    speech = load_speech(DEFAULT_SPEECH)[: 48_000 * 5]
    program = speech_program(speech, lead_s=1.5, tail_s=0.5)
    viewers: list[Viewer] = []

    async def run() -> None:
        async with aiohttp.ClientSession() as http:
            publisher = Publisher(server, program)
            await publisher.start(http)
            for _ in range(2):
                viewer = Viewer(server, publisher.session_id, keep=1)
                await viewer.start(http)
                viewers.append(viewer)
            try:
                await asyncio.sleep(program.duration_s + 1.0)
            finally:
                for viewer in viewers:
                    await viewer.stop(http)
                await publisher.stop(http)
            assert publisher.track is not None
            viewers[0].speech_at = publisher.track.sent[int(1.5 * 50)]  # type: ignore[attr-defined]

    asyncio.run(run())
    onset = viewers[0].speech_at  # type: ignore[attr-defined]
    for viewer in viewers:
        times = np.asarray(viewer.video_t)
        assert len(times) > 100
        steady = times[times > times[0] + 1.0]
        assert len(steady) / (steady[-1] - steady[0]) > 20  # ~25 fps to each viewer
        mouth = mouth_openings(viewer.frames)
        quiet = [mouth[n] for n in mouth if times[n] < onset]
        talking = [mouth[n] for n in mouth if onset + 0.4 < times[n] < onset + 5.0]
        assert len(quiet) > 10 and len(talking) > 50
        assert np.std(talking) > 3 * np.std(quiet), (np.std(talking), np.std(quiet))
        rms = np.asarray(viewer.audio_rms)
        audio_t = np.asarray(viewer.audio_t)
        assert rms[(audio_t > onset + 0.3) & (audio_t < onset + 4.0)].max() > 0.02  # its sound
    # one encoding for both: the same frames, by RTP timestamp (each sender's own origin)
    a, b = (np.asarray(v.video_pts) for v in viewers)
    da, db = np.diff(a[-60:]), np.diff(b[-60:])
    assert set(da) <= {3600, 7200} and set(db) <= {3600, 7200}
