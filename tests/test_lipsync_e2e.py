"""End to end: render real speech with `emote render`, track the face in the output video
with FaceMesh, and check the lip sync, the stillness in silence, the blinks and that the eyes
keep their identity. The numbers in docs/benchmarks.md come from the same code
(measure.lipsync, run by python -m bench.lipsync) over all the real speech clips."""

from __future__ import annotations

import numpy as np
import pytest

from contracts.paths import DEFAULT_PORTRAIT, DEFAULT_SPEECH
from engines.avatar import Avatar
from measure.facemesh import FaceTrack
from measure.lipsync import LipSyncReport, detect_blinks, evaluate_clip, eye_identity

PHONES = DEFAULT_SPEECH.with_name(DEFAULT_SPEECH.stem + ".phones.json")


@pytest.fixture(scope="module")
def rendered(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[LipSyncReport, list[np.ndarray], FaceTrack]:
    return evaluate_clip(
        DEFAULT_PORTRAIT, DEFAULT_SPEECH, PHONES, workdir=tmp_path_factory.mktemp("lipsync")
    )


@pytest.mark.slow
def test_the_face_is_tracked_in_every_frame(rendered) -> None:
    report, frames, _ = rendered
    assert report.tracked_fraction == 1.0
    assert report.frames == len(frames) > 200  # 7.1 s of speech + 2 s of room tone at 25 fps


@pytest.mark.slow
def test_mouth_follows_the_speech_with_lips_leading(rendered) -> None:
    report, _, _ = rendered
    assert report.correlation > 0.25
    assert -80.0 <= report.lag_ms <= 40.0


@pytest.mark.slow
def test_lips_close_on_bilabials_and_open_on_open_vowels(rendered) -> None:
    report, _, _ = rendered
    assert report.bilabials >= 5
    assert report.bilabial_closure >= 0.9
    assert report.vowel_to_bilabial >= 3.0


@pytest.mark.slow
def test_mouth_is_still_in_silence(rendered) -> None:
    report, _, _ = rendered
    assert report.silence_to_speech_std <= 0.10


@pytest.mark.slow
def test_eyes_blink_briefly_every_few_seconds(rendered) -> None:
    report, _, _ = rendered
    assert report.blinks >= 2  # 9 s of video, one blink every 2-6 s
    assert all(1.5 <= gap <= 7.0 for gap in report.blink_intervals_s), report.blink_intervals_s
    assert all(40 <= d <= 240 for d in report.blink_durations_ms), report.blink_durations_ms


@pytest.mark.slow
def test_eye_region_keeps_its_identity(rendered, mona_avatar: Avatar) -> None:
    _, frames, track = rendered
    open_eyes = track.eyes > 0.85 * np.nanmedian(track.eyes)
    scores = [
        eye_identity(mona_avatar.image, mona_avatar.landmarks[:, :2], frames[k], track.landmarks[k])
        for k in np.flatnonzero(open_eyes)[::5]
    ]
    assert len(scores) > 20
    assert np.median(scores) > 0.85 and min(scores) > 0.7, (np.median(scores), min(scores))


def test_one_blink_read_as_two_dips_counts_once() -> None:
    """A shut painted eye can read a little more open than a three-quarters shut one: the dips
    on closing and reopening, 3 frames apart, are one blink; 2 s later comes the next."""
    eyes = np.full(100, 0.3)
    eyes[10:12] = 0.15  # closing
    eyes[12] = 0.25  # shut, read above the threshold
    eyes[13:15] = 0.15  # reopening
    eyes[60:64] = 0.1
    onsets, durations = detect_blinks(eyes)
    assert onsets == [10, 60]
    assert durations == [200.0, 160.0]
    assert detect_blinks(np.full(50, 0.3)) == ([], [])
