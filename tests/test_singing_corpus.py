"""The corpus's sung and rapped deliveries, its accompaniment and its singing targets
(training/tts/pho.py, training/music.py, training/singing.py): pure functions, no TTS."""

from __future__ import annotations

import numpy as np
import pytest

from contracts import motion_frame
from contracts.phones import Phone
from training import music, prosody, singing
from training.augment import change_speed
from training.tts import pho
from training.utterance import SAMPLE_RATE, Utterance

VOWELS = {"a", "e", "i", "o", "u", "@"}
# "_ b a m p i t _ s o l a _ m u s e": three words, a pause, two more.
SPOKEN = [
    pho.PhoLine("_", 100),
    pho.PhoLine("b", 60),
    pho.PhoLine("a", 90, [(0, 120.0), (100, 110.0)]),
    pho.PhoLine("m", 70, [(50, 115.0)]),
    pho.PhoLine("p", 80),
    pho.PhoLine("i", 70, [(0, 125.0)]),
    pho.PhoLine("t", 60),
    pho.PhoLine("_", 250),
    pho.PhoLine("s", 90),
    pho.PhoLine("o", 110, [(0, 118.0)]),
    pho.PhoLine("l", 50),
    pho.PhoLine("a", 80, [(0, 112.0)]),
    pho.PhoLine("_", 300),
    pho.PhoLine("m", 60),
    pho.PhoLine("u", 100, [(0, 108.0)]),
    pho.PhoLine("s", 80),
    pho.PhoLine("e", 120, [(0, 105.0)]),
    pho.PhoLine("_", 200),
]


def _is_vowel(symbol: str) -> bool:
    return symbol in VOWELS


def _onsets(lines: list[pho.PhoLine]) -> list[float]:
    """Start (ms) of every vowel."""
    t, out = 0.0, []
    for line in lines:
        if _is_vowel(line.symbol):
            out.append(t)
        t += line.ms
    return out


@pytest.mark.parametrize("seed", range(6))
def test_song_puts_every_vowel_on_a_half_beat_and_holds_phrase_ends(seed: int) -> None:
    lines, marks = pho.song(SPOKEN, _is_vowel, np.random.default_rng(seed))
    onsets = np.array(_onsets(lines))
    beats = np.array([a for a, _ in marks["beats"]]) * 1000.0
    beat = float(np.median(np.diff(beats)))
    assert 60_000 / 140 - 1 <= beat <= 60_000 / 60 + 1
    half_beats = (onsets - onsets[0]) / (beat / 2)
    # Each vowel's onset lands on the grid to within the pho's whole milliseconds.
    assert np.abs(half_beats - np.round(half_beats)).max() * beat / 2 <= 1.0
    notes = marks["notes"]
    assert len(notes) == len(onsets)  # every vowel is a sung note
    assert max(b - a for a, b in notes) <= pho.SONG_FINAL_MAX_S + 1e-6
    assert all(pho.BREATH_S[0] - 0.002 <= b - a <= pho.BREATH_S[1] + 0.002
               for a, b in marks["breaths"])  # fmt: skip
    assert len(marks["breaths"]) >= 1  # the text's pauses end phrases
    assert lines[-1].symbol == "_"  # mbrola needs the closing silence
    assert all(len(line.pitch) <= pho._MAX_POINTS + 1 for line in lines)
    again, _ = pho.song(SPOKEN, _is_vowel, np.random.default_rng(seed))
    assert pho.format_pho(again) == pho.format_pho(lines)


@pytest.mark.parametrize("seed", range(6))
def test_rap_syllables_run_four_to_seven_a_second_on_the_slot_grid(seed: int) -> None:
    lines, marks = pho.rap(SPOKEN, _is_vowel, np.random.default_rng(seed))
    onsets = np.array(_onsets(lines))
    beats = np.array([a for a, _ in marks["beats"]])
    bpm = 60.0 / float(np.median(np.diff(beats)))
    assert pho.RAP_BPM[0] - 0.5 <= bpm <= pho.RAP_BPM[1] + 0.5
    beat_ms = 60_000.0 / bpm

    def off_grid_ms(division: int) -> float:
        slots = (onsets - onsets[0]) / (beat_ms / division)
        return float(np.abs(slots - np.round(slots)).max() * beat_ms / division)

    division = min((2, 3, 4), key=off_grid_ms)
    assert off_grid_ms(division) <= 1.0  # whole-ms pho durations, no drift
    rate = division * bpm / 60.0
    assert pho.RAP_SYLLABLES_PER_S[0] - 0.01 <= rate <= pho.RAP_SYLLABLES_PER_S[1] + 0.01
    assert marks["notes"] == []


def _utterance(seconds: float = 2.0) -> Utterance:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    voice = (0.3 * np.sin(2 * np.pi * 150 * t) * (t > 0.2) * (t < seconds - 0.2)).astype(np.float32)
    phones = [Phone("AA", 0.2, seconds - 0.2)]
    return Utterance(voice, phones, "a", "mbrola", "mbrola/us1",
                     marks={"notes": [(0.2, seconds - 0.2)]})  # fmt: skip


@pytest.mark.parametrize("kind", music.KINDS)
def test_accompany_shifts_the_voice_and_sets_the_level(kind: str) -> None:
    utt = _utterance()
    for seed in range(8):
        out = music.accompany(utt, np.random.default_rng(seed), kind)
        drawn = out.meta["music"]
        shift = round(drawn["intro_s"] * SAMPLE_RATE) / SAMPLE_RATE
        assert out.phones[0].start == pytest.approx(0.2 + shift)
        assert out.marks["notes"][0][0] == pytest.approx(0.2 + shift)
        assert out.vocals is not None and len(out.vocals) == len(out.audio)
        start = round(drawn["intro_s"] * SAMPLE_RATE)
        # The dry voice is the original, moved by the intro (and scaled with the mix).
        scale = float(out.vocals[start + 8000] / utt.audio[8000])
        np.testing.assert_allclose(out.vocals[start : start + len(utt.audio)], utt.audio * scale,
                                   atol=1e-5)  # fmt: skip
        band = out.audio.astype(np.float64) - out.vocals
        voiced = slice(start + int(0.2 * SAMPLE_RATE), start + int(1.8 * SAMPLE_RATE))
        vmr = 20 * np.log10(np.sqrt(np.mean(out.vocals[voiced] ** 2)) / np.sqrt(np.mean(band**2)))
        assert vmr == pytest.approx(drawn["vmr_db"], abs=0.5)
        lo, hi = music.VMR_DB[kind]
        assert lo - 0.5 <= vmr <= hi + 0.5
        beats = np.array([a for a, _ in out.marks["beats"]])
        assert beats.min() >= 0 and beats.max() < out.seconds
        assert np.allclose(np.diff(beats), 60.0 / drawn["bpm"])
        if start > SAMPLE_RATE // 2:  # an intro: the band plays alone
            assert np.abs(out.vocals[: start - 1]).max() == 0
            assert np.abs(band[: start - 1]).max() > 1e-3


def test_accompany_follows_the_delivery_beat_grid() -> None:
    utt = _utterance()
    utt.marks["beats"] = [(0.2 + 0.5 * k, 0.2 + 0.5 * k) for k in range(4)]
    out = music.accompany(utt, np.random.default_rng(3), "rap")
    assert out.meta["music"]["bpm"] == pytest.approx(120.0)
    shift = round(out.meta["music"]["intro_s"] * SAMPLE_RATE) / SAMPLE_RATE
    beats = np.array([a for a, _ in out.marks["beats"]])
    assert np.min(np.abs(beats - (0.2 + shift))) < 1e-6  # the drums land on the syllables


def test_sung_notes_open_wider_and_breaths_part_the_lips() -> None:
    n = 75  # 3 s
    motion = motion_frame.neutral(n).astype(np.float32)
    jaw = motion_frame.INDEX["jawOpen"]
    motion[:, jaw] = 0.4
    motion[30:33, jaw] = 0.05  # a closure between the notes
    voice = np.full(n * 640, 0.3, np.float32)
    marks = {"notes": [(0.2, 1.1), (1.4, 2.4)], "breaths": [(2.5, 2.9)]}
    out = singing.sung_motion(motion, marks, voice, np.random.default_rng(0))
    t = (np.arange(n) + 0.5) / 25
    inside = (t > 0.35) & (t < 1.0)
    assert (out[inside, jaw] > 0.4 * (1 + singing.SING_GAIN[0] * 0.9)).all()
    assert (out[inside, jaw] <= singing.JAW_MAX).all()
    np.testing.assert_array_equal(out[30:33], motion[30:33])  # the closure is untouched
    breath = (t > 2.6) & (t < 2.8)
    assert (out[breath, jaw] >= singing.BREATH_JAW[0] - 1e-6).all()
    head = motion_frame.HEAD_SLICE
    np.testing.assert_array_equal(out[:, head], motion[:, head])


def test_prosody_nods_to_the_beat() -> None:
    seconds, n = 8.0, 200
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    audio = 0.2 * np.sin(2 * np.pi * 140 * t)
    phones = [Phone("AA", 0.0, seconds)]
    beats = list(np.arange(0.0, seconds, 0.5))  # 2 Hz
    pitch = motion_frame.INDEX["headPitch"]

    def power_at_2hz(b: list[float]) -> float:
        total = 0.0
        for seed in range(8):
            rng = np.random.default_rng(seed)
            track = prosody.prosody_motion(audio, phones, n, rng, beats=b)[:, pitch]
            spectrum = np.abs(np.fft.rfft(track - track.mean()))
            total += spectrum[int(2.0 * seconds)]
        return total

    assert power_at_2hz(beats) > 3 * power_at_2hz([])


def test_speed_change_moves_marks_and_vocals() -> None:
    utt = music.accompany(_utterance(), np.random.default_rng(1), "song")
    faster = change_speed(utt, np.random.default_rng(0), factor=1.25)
    scale = faster.meta["augment"]["speed"]["time_scale"]
    assert faster.marks["notes"][0][0] == pytest.approx(utt.marks["notes"][0][0] * scale)
    assert faster.vocals is not None and len(faster.vocals) == len(faster.audio)
