"""Run a test's scenario script inside a fresh lab network namespace (measure.janus_lab):
for the tests whose WebRTC peers will not use loopback (Janus, GStreamer's libnice)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from measure.janus_lab import in_netns, netns, unavailable

REPO = Path(__file__).resolve().parent.parent


def in_lab(
    scenario: str,
    tmp_path: Path,
    extra_reason: str | None = None,
    needs_janus: bool = True,
) -> dict[str, Any]:
    """Run tests/``scenario`` inside a fresh lab namespace; the JSON it wrote. Skipped
    (failed as root, where ./run.sh test installs everything) when the lab cannot run
    or ``extra_reason`` says what else is missing."""
    reason = unavailable(needs_janus) or extra_reason
    if reason is not None:
        if os.geteuid() == 0:  # ./run.sh test installs janus and chromium as root
            pytest.fail(reason)
        pytest.skip(reason)
    out = tmp_path / "scenario.json"
    with netns() as name:
        done = subprocess.run(
            in_netns(name, [sys.executable, str(REPO / "tests" / scenario), str(out)]),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=240,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(out.read_text()))
