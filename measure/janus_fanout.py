"""One avatar watched by N viewers through Janus, measured as the latency bench measures a
session (measure.latency), inside measure.janus_lab's private network.

``run`` starts Janus and ``emote serve --publish-to`` it, opens one direct session that sends
real speech and receives the avatar (``measure.webrtc_client.Client``: the reference), waits
until the server has published the session into its VideoRoom, subscribes ``viewers``
``JanusViewer``s, and records everything for ``duration`` seconds. The first ``decoded``
viewers decode what they receive; the others only count frames and packets as they arrive
(``counted_report``: ``frames``, ``fps``, ``audio_packets``), so that this one process can
stand for many viewers. Then, per decoding receiver:

* ``fps``, ``frames``: frames received over the steady part (after the first second);
  ``frames_vs_direct``, ``audio_vs_direct``: frames and audio packets against the session's
  own peer's over the time the viewer was receiving (1: none missing);
* ``mouth_vs_sound_ms``: the bench's measure of the A/V offset before the generator's own
  lead is taken off (measure.latency): minus the delay at which the mouth (FaceMesh on every
  frame, by arrival) best correlates with the level of the audio received with it (by
  arrival); ``mouth_vs_sound_corr`` its correlation. Every frame, because each receiver
  counts its own frames: with every 2nd, receivers that began on the other parity read the
  mouth 40 ms apart, and their readings fell into clusters ±19 ms apart;
* for Janus viewers, ``av_offset_vs_direct_ms``: their ``mouth_vs_sound_ms`` less the direct
  session's: what the SFU adds to the A/V offset, as the bench reads it (0: intact);
  ``video_delay_vs_direct_ms`` and ``audio_delay_vs_direct_ms``: how far their mouth follows
  the direct session's mouth, and their sound its sound (the SFU hop, by the same
  cross-correlation; the sound's is the sharper), and ``av_shift_ms``, the audio's delay less
  the video's: the same change of the A/V offset, read without FaceMesh's noise on the
  sound side (+: the picture now further ahead).

Then, through the API, the session is unpublished (``DELETE .../publish``: its room goes),
unpublished again (404), published again (201) and again (409), and closed; ``api`` holds
the statuses and how many rooms Janus lists at each step (none once the session is closed).
Also the CPU time Janus and the server used per second of the run. Must run as root inside
the namespace (``bench.janus_fanout`` and tests/test_janus_fanout.py arrange it).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from contracts.paths import DEFAULT_SPEECH
from measure.janus_lab import DEFAULT_ADDRESS, Janus
from measure.janus_viewer import JanusViewer
from measure.latency import returned_envelope
from measure.mouth import mouth_levels, mouth_openings
from measure.program import load_speech, speech_program
from measure.server import serve_process
from measure.webrtc_client import Client, Received
from measure.xcorr import xcorr_lag
from stream_server.janus_api import JanusSession

LEAD_S = 1.5  # silence before the speech
KEEP_EVERY = 1  # every frame measured (every 2nd put receivers 40 ms apart: see docs)
PUBLISH_WAIT_S = 20.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _keep(n: int, t: float) -> bool:
    return n % KEEP_EVERY == 0


def mouth_track(got: Received) -> tuple[np.ndarray, np.ndarray]:
    """(arrival times, openings as a fraction from closed to open) of the measured frames."""
    vt = np.asarray(got.video_t)
    mouth = mouth_openings(got.kept)
    if not mouth:
        return np.zeros(0), np.zeros(0)
    closed, opened, _ = mouth_levels(np.asarray(list(mouth.values())))
    frames = sorted(mouth)
    values = np.asarray([(mouth[n] - closed) / max(opened - closed, 1e-6) for n in frames])
    return vt[frames], values


Track = tuple[np.ndarray, np.ndarray]


def _fps(times: list[float]) -> float:
    """Frames per second after the first second."""
    t = np.asarray(times)
    steady = t[t > t[0] + 1.0] if len(t) else t
    return round(len(steady) / (steady[-1] - steady[0]), 2) if len(steady) > 1 else 0.0


def counted_report(got: Received) -> dict:
    """A viewer that did not decode (``JanusViewer(decode=False)``): what arrived, when."""
    return {
        "decoded": False,
        "frames": len(got.video_complete_t),
        "fps": _fps(got.video_complete_t),
        "audio_packets": len(got.audio_t),
    }


def receiver_report(got: Received, reference: tuple[Track, Track] | None) -> dict:
    vt = np.asarray(got.video_t)
    times, mouth = mouth_track(got)
    lag, corr = xcorr_lag([(times, mouth, *returned_envelope(got))])
    report: dict[str, Any] = {
        "decoded": True,
        "frames": len(vt),
        "fps": _fps(got.video_t),
        "audio_packets": len(got.audio_t),
        "frames_measured": len(mouth),
        "mouth_vs_sound_ms": None if lag is None else -lag,
        "mouth_vs_sound_corr": corr,
    }
    if reference is not None:
        direct_mouth, direct_sound = reference
        video_delay, video_corr = xcorr_lag([(times, mouth, *direct_mouth)])
        audio_delay, audio_corr = xcorr_lag([(*returned_envelope(got), *direct_sound)])
        report["video_delay_vs_direct_ms"] = video_delay
        report["video_delay_corr"] = video_corr
        report["audio_delay_vs_direct_ms"] = audio_delay
        report["audio_delay_corr"] = audio_corr
        report["av_shift_ms"] = (
            None
            if video_delay is None or audio_delay is None
            else round(audio_delay - video_delay, 1)
        )
    return report


async def _published(http: aiohttp.ClientSession, url: str, session_id: str) -> dict:
    deadline = time.monotonic() + PUBLISH_WAIT_S
    while time.monotonic() < deadline:
        async with http.get(f"{url}/api/sessions/{session_id}") as response:
            published = (await response.json()).get("published")
        if published and "room" in published:
            return published
        if published and "error" in published:
            raise RuntimeError(f"the session was not published: {published['error']}")
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the session was not published within {PUBLISH_WAIT_S:.0f} s")


async def _videoroom(base: str, body: dict[str, Any]) -> dict[str, Any]:
    """One synchronous VideoRoom request through a Janus session of its own."""
    async with aiohttp.ClientSession() as http:
        janus = JanusSession(http, base)
        await janus.create()
        try:
            return await janus.request(await janus.attach(), body)
        finally:
            await janus.close()


async def _rooms(base: str) -> list[dict[str, Any]]:
    """The VideoRoom's rooms, as Janus lists them."""
    return list((await _videoroom(base, {"request": "list"}))["list"])


async def _api_round(
    http: aiohttp.ClientSession, url: str, session_id: str, janus: str
) -> dict[str, Any]:
    """Unpublish and publish again through the API: the statuses, and Janus's rooms."""
    route = f"{url}/api/sessions/{session_id}/publish"
    api: dict[str, Any] = {"rooms_published": len(await _rooms(janus))}
    async with http.delete(route) as r:
        api["unpublish"] = r.status
    api["rooms_unpublished"] = len(await _rooms(janus))
    async with http.delete(route) as r:
        api["unpublish_again"] = r.status
    async with http.post(route) as r:
        api["publish"] = r.status
        api["republished"] = await r.json()
    async with http.post(route) as r:
        api["publish_again"] = r.status
    room = api["republished"].get("room")
    listed = await _videoroom(janus, {"request": "listparticipants", "room": room})
    api["displays"] = [p.get("display") for p in listed["participants"]]
    api["rooms_republished"] = len(await _rooms(janus))
    return api


async def _session(url: str, viewers: int, speech_s: float, decoded: int) -> dict[str, Any]:
    """Run the session and its viewers; what they received (analysed by ``analyse``)."""
    speech = load_speech(DEFAULT_SPEECH)[: int(48_000 * speech_s)]
    program = speech_program(speech, lead_s=LEAD_S, tail_s=0.5)
    direct = Client(url, program, keep=_keep)
    watchers: list[JanusViewer] = []
    async with aiohttp.ClientSession() as http:
        await direct.connect(http)
        try:
            assert direct.session_id is not None
            published = await _published(http, url, direct.session_id)
            joined = time.monotonic()
            where = (published["janus"], published["room"], published["feed"])
            for n in range(viewers):
                viewer = JanusViewer(*where, keep=_keep, decode=n < decoded)
                await viewer.start()
                watchers.append(viewer)
            join_s = time.monotonic() - joined
            await asyncio.sleep(program.duration_s + 1.0)
            stats = await direct.stats(http) or {}
        finally:
            for viewer in watchers:
                await viewer.stop()
        try:
            api = await _api_round(http, url, direct.session_id, published["janus"])
        finally:
            await direct.close(http)
        await asyncio.sleep(1.0)
        api["rooms_after_close"] = len(await _rooms(published["janus"]))
    return {
        "api": api,
        "published": published,
        "viewers_joined_s": round(join_s, 2),
        "direct": direct.received,
        "viewers": [(v.decode, v.received) for v in watchers],
        "server_session": {k: stats.get(k) for k in ("session_id", "frames_dropped", "published")},
    }


def coverage(got: Received, direct: Received) -> dict[str, float | None]:
    """A viewer's frames and audio packets against the session's own peer's over the time
    the viewer was receiving (a viewer joins once the session is published, later)."""
    frames = got.video_t or got.video_complete_t
    if len(frames) < 2:
        return {"frames_vs_direct": None, "audio_vs_direct": None}
    start, end = frames[0], frames[-1]
    direct_frames = sum(start <= t <= end for t in direct.video_t)
    direct_audio = sum(start <= t <= end for t in direct.audio_t)
    audio = sum(start <= t <= end for t in got.audio_t)
    return {
        "frames_vs_direct": round(len(frames) / max(direct_frames, 1), 3),
        "audio_vs_direct": round(audio / max(direct_audio, 1), 3),
    }


def analyse(raw: dict[str, Any]) -> dict[str, Any]:
    direct: Received = raw["direct"]
    reference = (mouth_track(direct), returned_envelope(direct))
    direct_report = receiver_report(direct, None)
    reports = [
        receiver_report(got, reference) if decoded else counted_report(got)
        for decoded, got in raw["viewers"]
    ]
    for (_, got), report in zip(raw["viewers"], reports, strict=True):
        report.update(coverage(got, direct))
        if not report["decoded"]:
            continue
        ours, theirs = report["mouth_vs_sound_ms"], direct_report["mouth_vs_sound_ms"]
        report["av_offset_vs_direct_ms"] = (
            None if ours is None or theirs is None else round(ours - theirs, 1)
        )
    return {**raw, "direct": direct_report, "viewers": reports}


def run(
    viewers: int, speech_s: float = 8.0, decoded: int = 5, address: str = DEFAULT_ADDRESS
) -> dict:
    """The measurement (inside the lab's namespace, as root); the first ``decoded`` viewers
    decode and are read with FaceMesh, the others only count what arrives."""
    with (
        tempfile.TemporaryDirectory(prefix="emote-janus-") as folder,
        Janus(Path(folder), address) as janus,
    ):
        assert janus.proc is not None
        options = ("--publish-to", janus.url)
        with serve_process(1, options=options) as (url, server_pid):
            cpu0 = (cpu_seconds(janus.proc.pid), cpu_seconds(server_pid), time.monotonic())
            raw = asyncio.run(_session(url, viewers, speech_s, decoded))
            cpu1 = (cpu_seconds(janus.proc.pid), cpu_seconds(server_pid), time.monotonic())
        wall = cpu1[2] - cpu0[2]
        result = analyse(raw)
        result["cpu_cores"] = {
            "janus": round((cpu1[0] - cpu0[0]) / wall, 3),
            "server": round((cpu1[1] - cpu0[1]) / wall, 3),
        }
        result["janus_log_tail"] = janus.tail(800)
    result["viewers_asked"] = viewers
    return result
