"""Janus dies and comes back while a session is published, run inside measure.janus_lab's
network namespace by tests/test_janus_fanout.py. The session must go on, its stats must say
the link was lost, and the server must publish it again into the new Janus by itself; after
an unpublish, it must stop trying. Writes what it saw as JSON to the path given."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from measure.janus_lab import Janus
from measure.janus_viewer import JanusViewer
from measure.server import serve
from measure.webrtc_client import Client


async def published(http: aiohttp.ClientSession, url: str, sid: str) -> dict[str, Any] | None:
    async with http.get(f"{url}/api/sessions/{sid}") as response:
        return (await response.json()).get("published")


async def wait_for(
    http: aiohttp.ClientSession, url: str, sid: str, ok: Any, timeout: float
) -> tuple[dict[str, Any] | None, float]:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        state = await published(http, url, sid)
        if ok(state):
            return state, time.monotonic() - started
        await asyncio.sleep(0.1)
    raise TimeoutError(f"published stayed {await published(http, url, sid)}")


async def scenario(url: str, folder: Path, first: Janus) -> dict[str, Any]:
    result: dict[str, Any] = {}
    client = Client(url, None)
    async with aiohttp.ClientSession() as http:
        await client.connect(http)
        try:
            await asyncio.wait_for(client.first_frame.wait(), 20)
            sid = str(client.session_id)
            before, _ = await wait_for(http, url, sid, lambda p: p and p.get("connected"), 20)
            assert first.proc is not None
            os.killpg(first.proc.pid, signal.SIGKILL)  # Janus dies
            first.proc.wait(5)
            killed = time.monotonic()
            frames_at_kill = len(client.received.video_t)
            lost, result["lost_after_s"] = await wait_for(
                http, url, sid, lambda p: p and "error" in p, 15
            )
            await asyncio.sleep(2.0)  # Janus stays away a while: the server keeps trying
            down_s = time.monotonic() - killed
            result["frames_while_janus_down_per_s"] = round(
                (len(client.received.video_t) - frames_at_kill) / down_s, 1
            )
            with Janus(folder) as second:  # Janus is back, same address
                again, result["republished_after_s"] = await wait_for(
                    http, url, sid, lambda p: p and p.get("connected"), 60
                )
                viewer = JanusViewer(second.base, again["room"], again["feed"])
                await viewer.start()
                waited = time.monotonic()
                while not viewer.received.video_t and time.monotonic() - waited < 10:
                    await asyncio.sleep(0.05)
                result["viewer_first_frame_s"] = round(time.monotonic() - waited, 2)
                await asyncio.sleep(2.0)  # the 2 s after its first frame
                await viewer.stop()
                result["viewer_frames_in_2s"] = len(viewer.received.video_t)
                async with http.delete(f"{url}/api/sessions/{sid}/publish") as r:
                    result["unpublish"] = r.status
                await asyncio.sleep(3.0)  # no retry may publish it again
                result["after_unpublish"] = await published(http, url, sid)
            result.update(before=before, lost=lost, again=again)
        finally:
            await client.close(http)
    return result


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="emote-janus-restart-") as tmp:
        folder = Path(tmp) / "janus"
        with (
            Janus(folder) as first,
            serve(1, Path(tmp) / "cache", options=("--publish-to", first.url)) as url,
        ):
            result = asyncio.run(scenario(url, folder, first))
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
