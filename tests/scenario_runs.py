"""Running an integration's scenario in .venv-integrations and reading its frames back with
FaceMesh in .venv (the LiveKit and Pipecat tests)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from contracts.paths import DEFAULT_PORTRAIT, DEFAULT_SPEECH, REPO
from measure.facemesh import FaceTracker

INTEGRATIONS_PYTHON = Path(
    os.environ.get("EMOTE_INTEGRATIONS_PYTHON", REPO / ".venv-integrations" / "bin" / "python")
)
SCENARIOS = REPO / "tests" / "integrations"
SHUT = 0.006  # FaceMesh inner-lip gap / face height: rest reads <= 0.001, speech 0.02-0.04
OPEN = 0.02
BARGE_IN_S = 0.2  # issue 17: the mouth stops within 200 ms of the barge-in


def require_integrations() -> Path:
    """The integrations' python; CI must have it (./run.sh test sets it up)."""
    if not INTEGRATIONS_PYTHON.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{INTEGRATIONS_PYTHON} missing: ./run.sh test sets it up")
        pytest.skip("no .venv-integrations (./run.sh setup-integrations)")
    return INTEGRATIONS_PYTHON


def run_scenario(script: str, cache: Path, out: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    """(events, frame times from the scenario's start, FaceMesh mouth opening per frame)."""
    python = require_integrations()
    proc = subprocess.run(
        [
            str(python), str(SCENARIOS / script), "--out", str(out), "--cache", str(cache),
            "--portrait", str(DEFAULT_PORTRAIT), "--speech", str(DEFAULT_SPEECH),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = json.loads((out / "events.json").read_text())
    data = np.load(out / "frames.npz")
    times = data["times"] - events["start"]
    mouth = FaceTracker().track(list(data["frames"])).mouth
    return events, times, mouth


def run_checks(check: str) -> None:
    """pytest over one of tests/integrations/check_*.py in .venv-integrations."""
    python = require_integrations()
    proc = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(SCENARIOS / check)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout


def assert_barge_in(times: np.ndarray, mouth: np.ndarray, clear: float) -> None:
    """Open right before the barge-in; shut from 200 ms after it to the end (>= 1 s)."""
    assert mouth[times <= clear][-4:].max() > OPEN, "the barge-in did not land on an open mouth"
    after = times > clear + BARGE_IN_S
    assert after.sum() > 25
    worst = np.nanmax(mouth[after])
    assert worst < SHUT, f"mouth {worst:.3f} {BARGE_IN_S * 1000:.0f} ms after the barge-in"
