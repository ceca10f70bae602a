"""GStreamer's webrtcbin publishing over WHIP, run inside measure.janus_lab's network
namespace by tests/test_gst_whip.py. libnice (webrtcbin's ICE) pairs none of its addresses
with a server that offers 127.0.0.1 alone, as `emote serve` on loopback does, so here the
server binds the namespace's own address (10.213.0.1) and media stays inside the namespace.

The publisher (tests/gst_whip_publish.py, the system's Python) sends 1.5 s of silence then
5 s of speech; an aiortc WHEP viewer records the avatar; FaceMesh reads its mouth. Writes
what it saw as JSON to the path given."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import wave
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from contracts.paths import DEFAULT_SPEECH
from measure.janus_lab import DEFAULT_ADDRESS
from measure.mouth import mouth_openings
from measure.program import load_speech
from measure.server import serve
from measure.whip_clients import Viewer

SYSTEM_PYTHON = "/usr/bin/python3"
PUBLISHER = Path(__file__).with_name("gst_whip_publish.py")
LEAD_S = 1.5


def write_wav(path: Path) -> Path:
    speech = load_speech(DEFAULT_SPEECH)[: 48_000 * 5]
    samples = np.concatenate([np.zeros(int(48_000 * LEAD_S), np.float32), speech])
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48_000)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


async def scenario(url: str, wav: Path) -> dict[str, Any]:
    publisher = await asyncio.create_subprocess_exec(
        SYSTEM_PYTHON, str(PUBLISHER), f"{url}/whip", str(wav), "8",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert publisher.stdout is not None
    first = await asyncio.wait_for(publisher.stdout.readline(), 20)
    location = json.loads(first)["location"]
    async with aiohttp.ClientSession() as http:
        viewer = Viewer(url, location.rsplit("/", 1)[-1])
        await viewer.start(http)
        try:
            await asyncio.sleep(6.5)
            async with http.get(f"{url}/api/sessions/{viewer.session_id}") as r:
                stats = await r.json() if r.status == 200 else {}
        finally:
            await viewer.stop(http)
    out, err = await asyncio.wait_for(publisher.communicate(), 30)
    result: dict[str, Any] = {
        "publisher_rc": publisher.returncode,
        "publisher_err": err.decode()[-1500:],
        "published": json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else {},
        "audio_chunks_in": stats.get("audio_chunks_in"),
        "frames": len(viewer.video_t),
    }
    times, rms = np.asarray(viewer.audio_t), np.asarray(viewer.audio_rms)
    loud = np.flatnonzero(rms > 0.02)
    if len(loud):
        onset = times[loud[0]]  # the speech, as it came back with the frames
        frame_t = np.asarray(viewer.video_t)
        mouth = mouth_openings(viewer.frames)
        quiet = [mouth[n] for n in mouth if frame_t[n] < onset - 0.2]
        talking = [mouth[n] for n in mouth if onset + 0.4 < frame_t[n] < onset + 4.5]
        result.update(
            quiet_n=len(quiet),
            talking_n=len(talking),
            quiet_std=float(np.std(quiet)) if quiet else None,
            talking_std=float(np.std(talking)) if talking else None,
        )
    return result


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="emote-gst-whip-") as tmp:
        wav = write_wav(Path(tmp) / "speech.wav")
        with serve(1, Path(tmp) / "cache", host=DEFAULT_ADDRESS) as url:
            result = asyncio.run(scenario(url, wav))
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
