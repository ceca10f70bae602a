"""Fan-out through a real Janus (stream_server/fanout.py, janus_publish.py, janus_api.py):
five viewers watch one avatar through a Janus VideoRoom with its A/V offset intact, and the
publish API, in a private network namespace (measure.janus_lab); and what a server does
when no Janus is configured or the configured one is down."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from measure.browser import CHROMIUM
from measure.janus_lab import unavailable
from measure.server import free_port, serve
from measure.webrtc_client import Client
from stream_server.fanout import Fanout
from stream_server.janus_api import JanusTarget
from tests.lab_runs import in_lab

REPO = Path(__file__).resolve().parent.parent


def test_janus_urls_parse_or_say_why() -> None:
    assert JanusTarget.parse("janus+http://10.0.0.5:8088/janus") == JanusTarget(
        "http://10.0.0.5:8088/janus"
    )
    assert JanusTarget.parse("janus+https://sfu.example/janus/?room=1234") == JanusTarget(
        "https://sfu.example/janus", 1234
    )
    assert JanusTarget.parse("janus+http://sfu").base == "http://sfu/janus"
    for bad, why in [
        ("http://sfu/janus", "starts janus"),
        ("janus+http:///janus", "no host"),
        ("janus+http://sfu/janus?room=abc", "number"),
        ("janus+http://sfu/janus?room=0", "positive"),
        ("janus+http://sfu/janus?secret=1", "unknown"),
    ]:
        with pytest.raises(ValueError, match=why):
            JanusTarget.parse(bad)


def test_publishing_without_a_janus_is_a_clear_503() -> None:
    class Host:
        def __init__(self) -> None:
            self.sessions: dict[str, Any] = {"s1": type("Live", (), {"closing": False})()}

    fanout = Fanout(Host(), None, automatic=True)
    assert not fanout.automatic  # nothing to publish into

    async def run() -> tuple[int, str]:
        route = "/api/sessions/s1/publish"
        request = make_mocked_request("POST", route, match_info={"session_id": "s1"})
        response = await fanout.publish_route(request)
        unknown = make_mocked_request("POST", "/x", match_info={"session_id": "nope"})
        assert (await fanout.publish_route(unknown)).status == 404
        return response.status, response.text or ""

    status, text = asyncio.run(run())
    assert status == 503 and "--publish-to" in text


@pytest.mark.slow
def test_a_janus_that_is_down_leaves_the_session_running(tmp_path: Path) -> None:
    down = f"janus+http://127.0.0.1:{free_port()}/janus"  # nothing listens there
    options = ("--publish-to", down, "--publish-on-request")

    async def run(url: str) -> None:
        client = Client(url, None)
        async with aiohttp.ClientSession() as http:
            await client.connect(http)
            try:
                await asyncio.wait_for(client.first_frame.wait(), 20)
                route = f"{url}/api/sessions/{client.session_id}/publish"
                async with http.post(route) as r:
                    assert r.status == 502 and "unreachable" in (await r.json())["error"]
                async with http.delete(route) as r:
                    assert r.status == 404  # not published
                before = len(client.received.video_t)
                await asyncio.sleep(1.0)
                assert len(client.received.video_t) > before + 15  # still streaming
                stats = await client.stats(http)
                assert stats is not None and "unreachable" in stats["published"]["error"]
                async with http.post(f"{url}/api/sessions/nope/publish") as r:
                    assert r.status == 404
            finally:
                await client.close(http)

    with serve(max_sessions=1, cache_dir=tmp_path, options=options) as url:
        asyncio.run(run(url))


@pytest.fixture(scope="module")
def fanout_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    reason = unavailable()
    if reason is not None:
        if os.geteuid() == 0:  # ./run.sh test installs janus as root: CI must run this
            pytest.fail(reason)
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("fanout") / "fanout.json"
    command = [sys.executable, "-m", "bench.janus_fanout", "--viewers", "5", "--speech-s", "6"]
    done = subprocess.run(
        [*command, "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    yield json.loads(out.read_text())["results"][0]


@pytest.mark.slow
def test_five_viewers_watch_one_avatar_through_janus(fanout_run: dict[str, Any]) -> None:
    run, summary = fanout_run["run"], fanout_run["summary"]
    assert run["published"]["room"] > 0 and run["server_session"]["published"]["connected"]
    direct = run["direct"]
    assert direct["fps"] > 20 and direct["mouth_vs_sound_corr"] > 0.3
    assert summary["receiving"] == 5
    for viewer in run["viewers"]:
        assert viewer["fps"] > 20, viewer  # ~25 fps each
        # as many frames and packets as the session's own peer got while it watched
        assert viewer["frames_vs_direct"] > 0.95 and viewer["audio_vs_direct"] > 0.95, viewer
        # the mouth follows the speech as it does for the session's own peer ...
        assert viewer["mouth_vs_sound_corr"] > 0.3, viewer
        assert viewer["video_delay_corr"] > 0.8 and viewer["audio_delay_corr"] > 0.9, viewer
        # ... with the same A/V offset: the bench's reading within a frame, and the
        # picture's and the sound's own delays through Janus within half of one
        assert abs(viewer["av_offset_vs_direct_ms"]) <= 40, viewer
        assert abs(viewer["av_shift_ms"]) <= 20, viewer
        assert 0 <= viewer["video_delay_vs_direct_ms"] < 100, viewer  # one hop, on this box


@pytest.mark.slow
def test_the_publish_api_and_janus_rooms(fanout_run: dict[str, Any]) -> None:
    api = fanout_run["run"]["api"]
    assert api["rooms_published"] == 1
    assert (api["unpublish"], api["rooms_unpublished"], api["unpublish_again"]) == (200, 0, 404)
    assert api["publish"] == 201 and api["republished"]["room"] > 0
    assert api["publish_again"] == 409 and api["rooms_republished"] == 1
    assert api["rooms_after_close"] == 0  # the session's end took its room
    # what every viewer sees of the publisher: a name, never the session id (a capability)
    session_id = fanout_run["run"]["server_session"]["session_id"]
    assert len(api["displays"]) == 1 and session_id not in api["displays"][0]
    assert api["displays"][0] == f"emote-{session_id[:8]}"


@pytest.mark.slow
def test_a_session_outlives_janus_and_is_published_again(tmp_path: Path) -> None:
    """Janus killed (SIGKILL) and started again: the session streams on, its stats say the
    link was lost, the server publishes it into the new Janus by itself, and an unpublish
    stops the retries (tests/janus_restart_scenario.py)."""
    seen = in_lab("janus_restart_scenario.py", tmp_path)
    assert seen["before"]["connected"]
    # the loss, or by the time it was read, the first retry's failure, and more to come
    assert seen["lost"]["error"] and seen["lost"]["retrying"], seen["lost"]
    assert seen["lost_after_s"] < 5  # the long poll notices within seconds
    assert seen["frames_while_janus_down_per_s"] > 20  # the session itself never stopped
    assert seen["again"]["connected"] and seen["again"]["room"] != seen["before"]["room"]
    assert seen["republished_after_s"] < 45  # the retries reach the new Janus
    assert seen["viewer_first_frame_s"] < 10  # and viewers watch it there
    assert seen["viewer_frames_in_2s"] > 40
    assert seen["unpublish"] == 200 and seen["after_unpublish"] is None


@pytest.mark.slow
def test_a_browser_audience_watches_through_janus(tmp_path: Path) -> None:
    """The browser client's "Audience link" opens a page that watches the avatar from Janus
    (web_client/janus.js, watch.js), in real Chromium, inside the lab's namespace."""
    reason = None if CHROMIUM.is_file() else "needs Chromium at /usr/bin/chromium (apt: chromium)"
    pytest.importorskip("playwright.sync_api")
    seen = in_lab("janus_browser_scenario.py", tmp_path, reason)
    assert not seen["errors"], seen["errors"]
    assert "watch.html?janus=" in seen["link"] and "&room=" in seen["link"], seen["link"]
    watch = seen["watch"]
    assert watch["phase"] == "live", (seen["message"], seen["janus_log"])
    assert watch["framesDecoded"] > 40
    assert watch["resource"].startswith("janus 10.213.0.1:8088 room ")
    assert seen["tracks"] == ["audio", "video"]
    frame = seen["canvas"]  # the portrait, not a blank frame
    assert (frame["width"], frame["height"]) == (512, 512) and frame["std"] > 20, frame
    assert not frame["paused"]
