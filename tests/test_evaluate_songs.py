"""The singing, rap, head and blink measurements of `emote eval` (training/evaluate_songs.py)
on synthetic signals whose answer is known: no rendering, no FaceMesh."""

from __future__ import annotations

import numpy as np
import pytest

from contracts.clock import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from contracts.phones import Phone
from measure.facemesh import FaceTrack
from training.evaluate import ROWS, _pool_rendered, markdown_table, rendered_metrics
from training.evaluate_songs import (
    blinks_per_min,
    envelope_follow,
    head_px_std,
    held_note_metrics,
    held_notes,
    mouth_range,
    song_metrics,
    syllable_nuclei,
    syllable_peaks,
    voice_envelope_db,
    voiced_frames,
)

RNG = np.random.default_rng(7)


def _t(seconds: float) -> np.ndarray:
    return np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE


def _vowel(seconds: float, f0: float = 220.0) -> np.ndarray:
    """A harmonic tone (f0 and 7 harmonics, falling 6 dB/octave): voiced, in the voice band."""
    t = _t(seconds)
    return sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 9)) * 0.1


def _smooth_noise(n: int, width: int = 4) -> np.ndarray:
    x = np.convolve(RNG.normal(size=n + 4 * width), np.hanning(2 * width + 1), mode="same")
    return x[2 * width : 2 * width + n]


def _track(mouth: np.ndarray, eyes: np.ndarray | None = None) -> FaceTrack:
    n = len(mouth)
    eyes = np.full(n, 0.3) if eyes is None else eyes
    lm = np.zeros((478, 2), np.float32)
    return FaceTrack(mouth, np.full(n, 0.4), eyes, [lm] * n)


# ---- the audio readings -------------------------------------------------------------------


def test_voice_band_envelope_drops_bass_and_keeps_the_voice_band() -> None:
    n = 50
    bass = 0.3 * np.sin(2 * np.pi * 80 * _t(2.0))  # an accompaniment's bass line
    voice = 0.3 * np.sin(2 * np.pi * 1000 * _t(2.0))
    level_bass = voice_envelope_db(np.concatenate([bass, voice]), 2 * n)
    assert level_bass[n + 5 : -5].mean() - level_bass[5 : n - 5].mean() > 25.0  # bass floored
    assert level_bass.min() >= level_bass.max() - 40.0 - 1e-9  # the 40 dB floor


def test_voiced_frames_tell_a_harmonic_tone_from_noise() -> None:
    audio = np.concatenate([_vowel(1.0), 0.1 * RNG.normal(size=SAMPLE_RATE)])
    voiced = voiced_frames(audio, 50)
    assert voiced[2:23].all()
    assert not voiced[27:48].any()


# ---- envelope correlation -------------------------------------------------------------------


def test_envelope_corr_finds_a_mouth_40_ms_behind_the_voice() -> None:
    n = 200
    level = np.exp(_smooth_noise(n + 1))  # amplitude per frame, smooth
    carrier = np.sin(2 * np.pi * 1000 * _t(n * SAMPLES_PER_FRAME / SAMPLE_RATE))
    audio = 0.1 * np.repeat(level[:n], SAMPLES_PER_FRAME) * carrier
    envelope = voice_envelope_db(audio, n)
    mouth = np.empty(n)
    mouth[1:] = envelope[:-1]  # one frame (40 ms) late
    mouth[0] = envelope[0]
    corr, lag = envelope_follow(mouth, envelope)
    assert corr > 0.97
    assert lag == pytest.approx(40.0, abs=8.0)
    corr_early, lag_early = envelope_follow(envelope[1:], envelope[:-1])  # lips lead 40 ms
    assert lag_early == pytest.approx(-40.0, abs=8.0) and corr_early > 0.97


def test_envelope_corr_of_a_mouth_deaf_to_the_voice_is_near_zero() -> None:
    envelope = _smooth_noise(500)
    corr, _ = envelope_follow(_smooth_noise(500), envelope)
    assert abs(corr) < 0.35
    assert np.isnan(envelope_follow(np.full(500, 0.1), envelope)[0])  # a frozen mouth


# ---- held notes and jaw quiver ------------------------------------------------------------------


def test_held_notes_are_loud_steady_voiced_runs() -> None:
    db = np.linspace(-60.0, -40.0, 200)  # unvoiced background: the 60th percentile is in it
    voiced = np.zeros(200, bool)
    db[10:30] = -12.0  # a note of 20 frames
    db[40:45] = -12.0  # too short (5 frames, 0.2 s)
    db[50:60], db[60:75] = -12.0, -20.0  # an 8 dB step: two notes
    db[80:95] = -12.0  # loud but unvoiced (a cymbal): no note
    db[120:140] = -50.0  # voiced but quieter than the 60th percentile: no note
    voiced[[*range(10, 30), *range(40, 45), *range(50, 75), *range(120, 140)]] = True
    assert held_notes(db, voiced) == [(10, 30), (50, 60), (60, 75)]
    drift = db.copy()
    drift[10:30] = np.linspace(-12, -22, 20)  # a slow 10 dB decay stays one note
    assert held_notes(drift, voiced)[0] == (10, 30)


def test_held_open_drops_by_the_frames_the_mouth_closes() -> None:
    mouth = np.full(100, 0.01)
    mouth[::7] = 0.20  # speech elsewhere sets the clip's range: p5 0.01, p95 0.2
    notes = [(20, 42), (60, 82)]  # 2 notes of 22 frames: 20 judged frames each
    for a, b in notes:
        mouth[a:b] = 0.15  # open (threshold 0.01 + 0.3 * 0.19 = 0.067)
    open_all = held_note_metrics(mouth, notes)
    assert open_all["held_open"] == 1.0 and open_all["held_notes"] == 2
    closed = mouth.copy()
    closed[30:35] = 0.01  # 5 of the 40 judged frames close
    result = held_note_metrics(closed, notes)
    assert result["held_open"] == pytest.approx(35 / 40)
    assert result["held_mean_opening"] == pytest.approx((35 * 0.15 + 5 * 0.01) / 40)
    late = mouth.copy()
    late[20:22] = 0.01  # closed in the first 80 ms: the attack is not judged
    assert held_note_metrics(late, notes)["held_open"] == 1.0


def test_jaw_quiver_is_higher_for_a_quivering_mouth() -> None:
    base = np.zeros(100)
    base[::5] = 0.3  # the clip's range, outside the note
    notes = [(20, 60)]
    steady = base.copy()
    steady[20:60] = np.linspace(0.15, 0.18, 40)  # a slow opening: constant steps
    quiver = base.copy()
    quiver[20:60] = 0.15 + 0.02 * np.sin(2 * np.pi * 5.5 * np.arange(40) / FPS)  # vibrato
    q_steady = held_note_metrics(steady, notes)["jaw_quiver"]
    q_quiver = held_note_metrics(quiver, notes)["jaw_quiver"]
    assert q_steady < 1e-9
    # 5.5 Hz of amplitude 0.02 at 25 fps: steps of std ~0.02 * 2 sin(pi 5.5 / 25) / sqrt 2
    expected = 0.02 * 2 * np.sin(np.pi * 5.5 / FPS) / np.sqrt(2) / mouth_range(quiver)
    assert q_quiver == pytest.approx(expected, rel=0.15)


def test_held_notes_found_in_audio() -> None:
    gap = 0.002 * RNG.normal(size=SAMPLE_RATE)  # 1 s of near silence
    noise = 0.2 * RNG.normal(size=SAMPLE_RATE // 2)  # loud, unvoiced
    audio = np.concatenate([gap, _vowel(1.0), gap, noise, gap, _vowel(0.6, 300.0), gap])
    n = -(-len(audio) // SAMPLES_PER_FRAME)
    notes = held_notes(voice_envelope_db(audio, n), voiced_frames(audio, n))
    assert len(notes) == 2
    (a1, b1), (a2, b2) = notes
    assert abs(a1 - 25) <= 1 and abs(b1 - 50) <= 1  # 1.0-2.0 s
    assert abs(a2 - 112.5) <= 1 and abs(b2 - 127.5) <= 1  # 4.5-5.1 s


# ---- syllables --------------------------------------------------------------------------------


def _am_tone(seconds: float, rate: float = 5.0) -> np.ndarray:
    t = _t(seconds)
    return _vowel(seconds) * (0.02 + 0.98 * (0.5 - 0.5 * np.cos(2 * np.pi * rate * t)))


def test_syllable_nuclei_of_a_5_hz_modulated_tone() -> None:
    audio = _am_tone(4.0)
    envelope = voice_envelope_db(audio, 100)
    nuclei = syllable_nuclei(envelope)
    assert 19 <= len(nuclei) <= 20  # 5 per second (the first trough is at t = 0)
    assert np.all(np.diff(nuclei) == 5)
    # Peaks of the modulation at t = 0.1 + 0.2 k s: frame centres 0.02 + 0.04 k.
    assert abs(((nuclei[0] + 0.5) / FPS) % 0.2 - 0.1) < 0.03
    # Ripple under 6 dB is not a syllable.
    assert len(syllable_nuclei(-20 + 2 * np.sin(np.arange(100)))) == 0


def _follower(envelope: np.ndarray) -> np.ndarray:
    return 0.05 + 0.1 * (envelope - envelope.min()) / np.ptp(envelope)


def test_syllable_peaks_need_one_mouth_peak_per_syllable() -> None:
    envelope = voice_envelope_db(_am_tone(4.0), 100)
    nuclei = syllable_nuclei(envelope)
    mouth = _follower(envelope)
    assert syllable_peaks(mouth, nuclei) == 1.0
    half_rate = _follower(voice_envelope_db(_am_tone(4.0, rate=2.5), 100))
    assert syllable_peaks(half_rate, nuclei) == pytest.approx(0.5, abs=0.06)
    slow = mouth.copy()
    slow[50:] = mouth[50]  # the mouth stops in the middle
    assert syllable_peaks(slow, nuclei) == pytest.approx(0.5, abs=0.06)
    tremble = 0.1 + 0.001 * np.sin(np.pi * np.arange(100) / 2.5)  # tiny peaks in time
    tremble[:10] = 0.3  # a range set elsewhere: the trembles are under 10% of it
    assert syllable_peaks(tremble, nuclei) < 0.1


def test_syllable_peaks_need_the_peak_within_80_ms() -> None:
    # 2.5 syllables per second (10 frames apart): a peak 3 frames off is nobody's.
    envelope = voice_envelope_db(_am_tone(4.0, rate=2.5), 100)
    nuclei = syllable_nuclei(envelope)[1:-1]  # a peak on the first or last frame is no peak
    assert np.all(np.diff(nuclei) == 10)
    mouth = _follower(envelope)
    assert syllable_peaks(np.roll(mouth, 2), nuclei) == 1.0  # 80 ms late: in reach
    assert syllable_peaks(np.roll(mouth, -2), nuclei) == 1.0  # 80 ms early: in reach
    assert syllable_peaks(np.roll(mouth, 3), nuclei) == 0.0  # 120 ms: out of reach


# ---- head and blinks ----------------------------------------------------------------------------


def test_head_px_std_of_a_nose_on_a_circle_is_its_radius() -> None:
    angles = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    landmarks: list[np.ndarray | None] = []
    for a in angles:
        lm = np.full((478, 2), 256.0, np.float32)
        lm[1] = (256 + 12 * np.cos(a), 300 + 12 * np.sin(a))  # the nose tip
        landmarks.append(lm)
    landmarks[5] = None  # no face: skipped
    assert head_px_std(landmarks) == pytest.approx(12.0, rel=0.01)
    assert np.isnan(head_px_std([None, None]))


def test_blinks_per_min_counts_dips_per_minute() -> None:
    eyes = np.full(30 * FPS, 0.3)  # 30 s
    for onset in range(50, len(eyes), 100):  # every 4 s from 2 s: 7 blinks
        eyes[onset : onset + 3] = 0.1
    assert blinks_per_min(eyes) == pytest.approx(7 / 0.5)
    assert np.isnan(blinks_per_min(np.full(10, np.nan)))


# ---- one clip's row and the table ------------------------------------------------------


def test_song_metrics_on_a_synthetic_track() -> None:
    audio = np.concatenate([_am_tone(2.0), _vowel(1.5)])  # syllables, then a held note
    n = -(-len(audio) // SAMPLES_PER_FRAME)
    envelope = voice_envelope_db(audio, n)
    mouth = np.roll(0.02 + 0.1 * (envelope - envelope.min()) / np.ptp(envelope), 1)
    mouth[5] = np.nan  # a frame without a face
    row = song_metrics(_track(mouth), audio, "sing")
    assert row["envelope_corr"] > 0.9 and row["envelope_lag_ms"] == pytest.approx(40, abs=10)
    assert row["held_notes"] >= 1 and row["held_open"] == 1.0
    assert row["syllable_peaks"] > 0.8 and row["syllables"] >= 9
    assert row["tracked"] == pytest.approx(1 - 1 / n)
    assert row["head_px_std"] == 0.0 and row["blinks_per_min"] == 0.0
    rap = song_metrics(_track(mouth), audio, "rap")
    assert "held_open" not in rap and "jaw_quiver" not in rap


def test_table_has_singing_and_rap_rows() -> None:
    results = {
        "dsp": {
            "songs": {"mouth_range": 0.1, "held_open": 0.75, "jaw_quiver": 0.2},
            "rap": {"syllable_peaks": 0.6},
            "rendered": {"head_px_std": 11.0},
        },
        "_meta": {},
    }
    table = markdown_table(results)
    assert "| singing: mouth open on held notes | higher | 0.75 |" in table
    assert "| rap: syllables met by a mouth peak | higher | 0.6 |" in table
    assert "| head motion, nose-tip std px (real: 8-25) | in 8-25 | 11 |" in table
    sections = {section for section, *_ in ROWS}
    assert {"songs", "rap", "rendered"} <= sections


def test_speech_rows_carry_silence_motion_head_and_blinks() -> None:
    phones = [Phone("SIL", 0.0, 0.6), Phone("AA", 0.6, 0.9), Phone("M", 0.9, 1.0)]
    phones += [Phone("AA", 1.0, 1.4), Phone("SIL", 1.4, 2.0)]
    mouth = np.full(50, 0.01)
    mouth[15:23], mouth[25:35] = 0.1, 0.12
    mouth[40:50] = 0.01 + 0.01 * (np.arange(10) % 2)  # the mouth chatters in the last pause
    eyes = np.full(50, 0.3)
    eyes[30:33] = 0.1  # one blink in 2 s
    row = rendered_metrics(_track(mouth, eyes), np.zeros(2 * SAMPLE_RATE, np.float32), phones)
    speech = np.concatenate([mouth[15:25], mouth[25:35]])
    pauses = np.concatenate([mouth[:15], mouth[35:]])
    assert row["silence_motion"] == pytest.approx(pauses.std() / speech.std(), rel=0.05)
    assert row["blinks_per_min"] == pytest.approx(30.0)
    assert row["head_px_std"] == 0.0


def test_pooled_pauses_name_the_median_and_the_worst_clip() -> None:
    def row(pauses: float) -> dict:
        return {"silence_motion": pauses, "pbm_count": 3, "pbm_closure": 1.0, "viseme_auc": {}}

    # one clip whose jaw hangs open through its room tone carries the mean
    pooled = _pool_rendered([row(0.03), row(0.04), row(4.5), row(0.05)])
    assert pooled["silence_motion"] == pytest.approx(4.62 / 4)
    assert pooled["silence_motion_median"] == pytest.approx(0.045)
    assert pooled["silence_motion_worst"] == pytest.approx(4.5)
    keys = {key for section, key, *_ in ROWS if section == "rendered"}
    assert {"silence_motion_median", "silence_motion_worst"} <= keys
