"""The LiveKit Agents avatar worker end to end (integrations/livekit_avatar.py): livekit-agents'
own sending side (``DataStreamAudioOutput``) talks to our worker (their
``DataStreamAudioReceiver`` + ``AvatarRunner`` around ``EmoteVideoGenerator``) through an
in-process room double; the frames that leave through livekit's ``VideoSource`` are read back
with FaceMesh here. The scenario runs in .venv-integrations (livekit needs protobuf>=5,
mediapipe protobuf<5): tests/integrations/livekit_scenario.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from contracts.paths import DEFAULT_SPEECH
from engines.avatar import Avatar
from tests.scenario_runs import (
    BARGE_IN_S,
    OPEN,
    SHUT,
    assert_barge_in,
    run_checks,
    run_scenario,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(mona_avatar: Avatar, session_cache: Path, tmp_path_factory: pytest.TempPathFactory):
    return run_scenario("livekit_scenario.py", session_cache, tmp_path_factory.mktemp("livekit"))


def test_protocol_as_livekit_agents_speaks_it(run) -> None:
    events, _, _ = run
    streams = events["streams"]
    assert [s["topic"] for s in streams] == ["lk.audio_stream"] * 2
    assert [s["attributes"]["sample_rate"] for s in streams] == ["24000", "16000"]
    assert events["avatar_attributes"] == {"lk.publish_on_behalf": "agent-1"}
    assert sorted(events["published"]) == ["LocalAudioTrack", "LocalVideoTrack"]
    rpcs = events["rpcs"]
    assert all(r["response"] == "ok" for r in rpcs)
    clear = [r for r in rpcs if r["method"] == "lk.clear_buffer"]
    assert len(clear) == 1 and clear[0]["caller"] == "agent-1"
    assert clear[0]["answered_at"] - clear[0]["at"] < BARGE_IN_S
    started = [r for r in rpcs if r["method"] == "lk.playback_started"]
    assert len(started) == 2  # one per segment, none for the interrupted tail
    finished = [json.loads(r["payload"]) for r in rpcs if r["method"] == "lk.playback_finished"]
    assert finished[0]["playback_position"] == pytest.approx(2.0, abs=0.05)
    assert finished[0]["interrupted"] is False
    assert finished[1]["interrupted"] is True
    # interrupted 0.75 s after its start: what was played (+ the 100 ms synchronizer queue)
    after = events["seg2"]["clear_after_s"]
    assert after <= finished[1]["playback_position"] <= after + 0.25
    # the agent's side agrees (its AudioOutput events)
    assert [f["interrupted"] for f in events["playback_finished"]] == [False, True]


def test_video_paced_at_25_fps_with_its_audio(run) -> None:
    events, times, _ = run
    gaps = np.diff(times)
    assert gaps.max() < 0.1, f"a {gaps.max() * 1000:.0f} ms hole in the video"
    end = times[-1]
    assert len(times) / end == pytest.approx(25, abs=1.5)
    audio = np.array(events["audio"])
    played = audio[:, 2].sum() / 24_000
    # segment 1 whole, segment 2 up to the barge-in; nothing of it after
    assert played == pytest.approx(2.0 + events["seg2"]["finished"]["position"], abs=0.1)
    assert audio[audio[:, 0] > events["seg2"]["clear_at"] + 0.01, 2].sum() == 0
    first_audio = audio[0, 0] - events["seg1"]["sent_at"]
    assert first_audio < 0.3, f"speech took {first_audio * 1000:.0f} ms to start playing"


def test_mouth_moves_with_speech_and_stops_on_barge_in(run) -> None:
    events, times, mouth = run
    assert np.isfinite(mouth).mean() >= 0.98
    start = events["start"]
    seg1 = events["playback_started"][0] - start
    seg2 = events["playback_started"][1] - start
    clear = events["seg2"]["clear_at"] - start
    idle = (times > 0.1) & (times < 0.95)
    assert np.nanmax(mouth[idle]) < SHUT, "the mouth moved before any audio"
    speaking1 = (times >= seg1) & (times <= seg1 + 2.0)
    assert (mouth[speaking1] > OPEN).sum() >= 4, "the mouth did not follow segment 1"
    speaking2 = (times >= seg2) & (times <= clear)
    assert (mouth[speaking2] > OPEN).sum() >= 2, "the mouth did not follow segment 2"
    # After the barge-in the speech would have gone on for 3 s (the clip's alignment: 'much
    # there might be prudently in his power...'); the mouth must be shut within 200 ms and
    # stay shut.
    assert_barge_in(times, mouth, clear)


def test_scenario_interrupts_speech_not_a_pause() -> None:
    """The barge-in lands inside running speech (else the test above proves nothing)."""
    words = json.loads(DEFAULT_SPEECH.with_suffix(".phones.json").read_text())["w"]
    cut = 3.0 + 0.85  # segment 2 starts 3.0 s into the clip; interrupted ~0.85 s in
    spoken = [w for w in words if w["t"] != "<sil>" and cut < w["b"] < cut + 1.2]
    assert len(spoken) >= 4


def test_worker_parts_in_their_environment() -> None:
    """Dispatch metadata, join token and load (tests/integrations/check_livekit_worker.py),
    with pytest in .venv-integrations."""
    run_checks("check_livekit_worker.py")
