"""Onsets after pauses (training/evaluate_onsets.py): the burst program and the readings, on
synthetic audio and tracks whose answers are known."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from contracts.phones import Phone
from measure.facemesh import FaceTrack
from training.evaluate_onsets import (
    SILENCE_S,
    Burst,
    burst_program,
    onset_metrics,
)


def _clip() -> tuple[np.ndarray, list[tuple[float, list[Phone]]]]:
    audio = np.arange(16_000 * 5, dtype=np.float32) / 1e6  # a ramp: positions are readable
    words = [
        (0.5, [Phone("B", 0.5, 0.56), Phone("AA", 0.56, 0.8)]),
        (1.0, [Phone("S", 1.0, 1.1), Phone("IY", 1.1, 1.3)]),
        (2.3, [Phone("M", 2.3, 2.38), Phone("AY", 2.38, 2.6), Phone("T", 2.6, 2.7)]),
        (3.0, [Phone("OW", 3.0, 3.3)]),
    ]
    return audio, words


def test_the_program_cuts_at_word_starts_after_a_second_of_room_tone() -> None:
    audio, words = _clip()
    program, bursts, pauses = burst_program([(audio, words)])
    assert [round(b.start, 3) for b in bursts] == [1.0, 2.8]  # cuts at 0.5 and 2.3 s
    first, second = bursts[0], bursts[1]
    assert first.bilabials == ((1.0, 1.06),) and abs(first.vowel - 1.06) < 1e-9
    # The burst's first sample is the word's first sample.
    assert program[round(first.start * 16_000)] == audio[round(0.5 * 16_000)]
    assert abs(second.vowel - (second.start + 0.08)) < 1e-9
    assert all(abs(b - a - SILENCE_S) < 1e-9 for a, b in pauses)
    assert len(pauses) == len(bursts) + 1


def _track(opening_at: list[float], seconds: float = 6.0, shut: tuple = ()) -> FaceTrack:
    n = int(seconds * 25)
    centres = (np.arange(n) + 0.5) / 25
    mouth = np.full(n, 0.002)
    for t in opening_at:
        mouth[(centres >= t) & (centres < t + 0.3)] = 0.03
    for a, b in shut:
        mouth[(centres >= a) & (centres < b)] = 0.002
    return FaceTrack(mouth, np.full(n, 0.3), np.full(n, 0.3), [None] * n)


def test_onsets_are_timed_against_the_first_vowel() -> None:
    bursts = [Burst(1.0, 1.1, ()), Burst(2.8, 2.9, ()), Burst(4.5, 4.6, ((4.5, 4.58),))]
    pauses = [(0.0, 1.0), (1.8, 2.8), (3.5, 4.5), (5.2, 6.0)]
    # On time (+20 ms), 200 ms early (on the consonant), and on time after a shut p/b/m.
    result = onset_metrics(_track([1.12, 2.7, 4.62]), bursts, pauses)
    assert result["onsets"] == 3 and result["onset_missed"] == 0
    assert abs(result["onset_in_window"] - 2 / 3) < 1e-9
    assert result["onset_earliest_ms"] < -150
    assert result["bilabials_shut"] == 1.0
    # A mouth that opens through the p/b/m, and one that never opens for a burst.
    leaky = onset_metrics(_track([1.12, 4.5]), bursts, pauses)
    assert leaky["bilabials_shut"] == 0.0 and leaky["onset_missed"] == 1
    assert leaky["pause_open"] == 0.0 and result["pause_open"] > 0.0  # 2.7 s: early, in a pause


def test_a_mouth_hanging_open_in_the_pauses_is_counted() -> None:
    bursts = [Burst(1.0, 1.1, ()), Burst(2.8, 2.9, ()), Burst(4.5, 4.6, ())]
    pauses = [(0.0, 1.0), (1.8, 2.8), (3.5, 4.5), (5.2, 6.0)]
    track = _track([1.12, 2.92, 4.62])
    centres = (np.arange(len(track.mouth)) + 0.5) / 25
    hanging = track.mouth.copy()
    hanging[(centres >= 2.0) & (centres < 2.8)] = 0.02  # the second pause, 0.8 s of it
    hanging[(centres >= 3.7) & (centres < 4.5)] = 0.02  # and the third
    result = onset_metrics(replace(track, mouth=hanging), bursts, pauses)
    quiet = sum(((centres >= a + 0.2) & (centres < b)).sum() for a, b in pauses)
    assert abs(result["pause_open"] - 40 / quiet) < 1e-9
