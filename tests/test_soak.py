"""The soak and churn bench (measure.soak): the process-tree readings, and a short run of the
script (python -m bench.soak) against its own server whose report has every field."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from test_server_hardening import close

from contracts.paths import DEFAULT_SPEECH, REPO
from measure.program import load_speech, speech_program
from measure.server import serve_process
from measure.soak import process_tree, process_usage, read_resources, speaking_client


def test_a_reading_sums_a_process_and_its_children() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in process_tree(os.getpid())
        alone = read_resources(child.pid, "x", 0.0)
        tree = read_resources(os.getpid(), "x", 0.0)
    finally:
        child.kill()
        child.wait()
    assert alone.processes == 1 and alone.rss_mb and alone.threads and alone.fds
    assert tree.processes is not None and tree.processes >= 2
    assert tree.rss_mb and tree.server_rss_mb and tree.rss_mb > tree.server_rss_mb
    assert tree.shm_files >= 0 and read_resources(None, "x", 0.0).rss_mb is None


@pytest.mark.slow
def test_a_short_soak_and_churn_report_every_reading(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    command = [sys.executable, "-m", "bench.soak", "--sessions", "1", "--duration", "15"]
    command += ["--warmup-s", "5", "--interval", "3", "--churn", "3", "--churn-warmup", "1"]
    command += ["--settle-s", "2", "--cache-dir", str(tmp_path / "cache"), "--json", str(out)]
    done = subprocess.run(command, cwd=REPO, check=True, capture_output=True, text=True)
    assert "PASS" in done.stdout or "FAIL" in done.stdout
    report = json.loads(out.read_text())

    soak = report["soak"]
    (session,) = soak["sessions"]
    assert session["frames_received"] > 15 * 10 and session["fps"] > 10
    assert session["frames_sent"] and session["frames_dropped"] is not None
    assert soak["baseline"]["t_s"] - soak["started_s"] >= 5
    assert soak["end"]["t_s"] > soak["baseline"]["t_s"]
    assert soak["rss_growth_pct"] is not None

    churn = report["churn"]
    assert [s["index"] for s in churn["sessions"]] == [0, 1, 2]
    assert churn["sessions_ok"] == 3 and churn["sessions_failed"] == 0
    assert all(s["frames_received"] > 0 for s in churn["sessions"])
    assert set(churn["per_session"]["rss_mb"]) == {"first_half", "second_half"}
    assert churn["per_session"]["threads"]["first_half"] is not None

    labels = [s["label"] for s in report["samples"]]
    assert labels[0] == "soak-before" and labels.count("soak") == 5  # every 3 s for 15 s
    assert {"soak-after", "churn-before", "churn-after", "churn-settled"} <= set(labels)
    for reading in report["samples"]:
        assert reading["rss_mb"] > reading["server_rss_mb"] > 50, reading
        assert reading["threads"] > reading["server_threads"] > 0, reading
        assert reading["fds"] > reading["server_fds"] > 0, reading
        assert reading["processes"] >= 2, reading  # the server and its render processes
        assert reading["shm_mapped"] >= 1, reading  # the render processes' frame blocks
    for reading in (r for r in report["samples"] if r["label"] == "soak"):
        assert len(reading["sessions"]) == 1 and reading["sessions"][0]["fps"] > 0
    names = {t["name"] for t in report["targets"]}
    assert "soak: RSS growth < 5%" in names and "churn: fds back to baseline" in names
    assert all(t["passed"] in (True, False) for t in report["targets"])


@pytest.mark.slow
def test_a_closed_session_gives_its_threads_back_at_once(tmp_path: Path) -> None:
    """A session's ffmpeg threads (aiortc's Opus encoder, PyAV's audio filter graphs) go
    when it closes, not at some later full collection: before stream_server.gc_policy,
    and while a cancelled task's frame kept its session, each closed session left 4-6
    threads (38 -> 70 over 200 sessions)."""

    def server_threads(pid: int) -> int:
        usage = process_usage(pid)
        assert usage is not None
        return usage.threads

    speech = speech_program(load_speech(DEFAULT_SPEECH)[: 16_000 * 3], 0.2, 0.2)

    async def sessions(url: str, count: int) -> None:
        for _ in range(count):  # each sends speech: the server decodes, resamples, re-encodes
            client = speaking_client(url, speech)
            async with aiohttp.ClientSession() as http:
                await client.connect(http)
            deadline = time.monotonic() + 20.0
            while len(client.received.video_t) < 25 or len(client.received.audio_t) < 25:
                assert time.monotonic() < deadline, "no video or audio came back"
                await asyncio.sleep(0.05)
            await close(client)

    with serve_process(1, cache_dir=tmp_path / "cache") as (url, pid):
        asyncio.run(sessions(url, 2))  # the event loop's executor grows to what it needs
        time.sleep(1.0)
        before = server_threads(pid)
        asyncio.run(sessions(url, 4))
        time.sleep(1.0)
        after = server_threads(pid)
    # A second executor worker may start once (to_thread calls that overlap); nothing else.
    assert after <= before + 1, (before, after)
