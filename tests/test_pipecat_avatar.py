"""The Pipecat video service end to end (integrations/pipecat_avatar.py): a real Pipecat
pipeline (``Pipeline``, ``PipelineWorker``, ``WorkerRunner``) with ``EmoteVideoService``
feeding Pipecat's own ``BaseOutputTransport`` over a recording device that plays audio in
real time (tests/integrations/pipecat_scenario.py, run in .venv-integrations); the images
the transport wrote are read back with FaceMesh here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.avatar import Avatar
from tests.scenario_runs import OPEN, SHUT, assert_barge_in, run_checks, run_scenario

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(mona_avatar: Avatar, session_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    return run_scenario("pipecat_scenario.py", session_cache, tmp_path_factory.mktemp("pipecat"))


def test_video_at_the_transport_rate_and_audio_in_full(run) -> None:
    events, times, _ = run
    gaps = np.diff(times)
    assert gaps.max() < 0.1, f"a {gaps.max() * 1000:.0f} ms hole in the video"
    assert len(times) / (times[-1] - times[0]) == pytest.approx(25, abs=2)
    audio = np.array(events["audio"])
    sound = audio[audio[:, 2] > 0]
    played = sound[:, 1].sum() / 24_000
    # segment 1 whole; segment 2 until the interruption (+ the transport's 40 ms chunk)
    assert played == pytest.approx(2.0 + events["seg2"]["clear_after_s"], abs=0.1)
    assert sound[sound[:, 0] > events["seg2"]["clear_at"] + 0.05].size == 0
    assert events["interruptions"] == 1
    first = events["seg1"]["first_sound"] - events["seg1"]["sent_at"]
    assert first < 0.3, f"speech took {first * 1000:.0f} ms to start playing"


def test_mouth_moves_with_speech_and_stops_on_interruption(run) -> None:
    events, times, mouth = run
    assert np.isfinite(mouth).mean() >= 0.98
    start = events["start"]
    seg1 = events["seg1"]["first_sound"] - start
    seg2 = events["seg2"]["first_sound"] - start
    clear = events["seg2"]["clear_at"] - start
    assert np.nanmax(mouth[(times > 0.1) & (times < 0.95)]) < SHUT
    speaking1 = (times >= seg1) & (times <= seg1 + 2.0)
    assert (mouth[speaking1] > OPEN).sum() >= 4, "the mouth did not follow segment 1"
    # between the segments: shut again once the speech played out
    assert np.nanmax(mouth[(times > seg1 + 2.3) & (times < seg2 - 0.05)]) < SHUT
    speaking2 = (times >= seg2) & (times <= clear)
    assert (mouth[speaking2] > OPEN).sum() >= 2, "the mouth did not follow segment 2"
    assert_barge_in(times, mouth, clear)


def test_service_parts_in_their_environment() -> None:
    """Bad input, passthrough and a pipeline without a transport
    (tests/integrations/check_pipecat_service.py), with pytest in .venv-integrations."""
    run_checks("check_pipecat_service.py")
