"""The soak and churn bench (measure.soak): the process-tree readings, and a short run of the
script (python -m bench.soak) against its own server whose report has every field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from contracts.paths import REPO
from measure.soak import process_tree, read_resources


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
