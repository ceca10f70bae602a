"""Long pauses in the corpus (training/pauses.py) and the drifted-mouth history
(training/dataset.py): pure functions, no TTS."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from contracts import motion_frame
from contracts.phones import Phone
from training import pauses
from training.dataset import AugmentConfig, WindowSampler, load_utterances, motion_statistics
from training.utterance import SAMPLE_RATE, Utterance
from training.visemes import phones_to_motion

JAW = motion_frame.INDEX["jawOpen"]


def _sentence() -> Utterance:
    """1.2 s: "ah-ma-ah" ending on an open vowel, sung (a note and a breath mark), with a
    voice-only track as a band's mix would have."""
    n = int(1.2 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    voice = (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
    phones = [Phone("AA", 0.0, 0.5), Phone("M", 0.5, 0.6), Phone("AA", 0.6, 1.2)]
    marks = {"notes": [(0.6, 1.2)], "breaths": [(0.0, 0.05)]}
    return Utterance(voice, phones, "ama", "mbrola", "mbrola/us1", marks=marks, vocals=voice)


def test_pad_silence_moves_phones_marks_and_the_voice_alike() -> None:
    utt = _sentence()
    out = pauses.pad_silence(utt, 0.5, 1.5)
    lead = int(0.5 * SAMPLE_RATE)
    assert len(out.audio) == len(utt.audio) + int(2.0 * SAMPLE_RATE)
    assert out.vocals is not None and len(out.vocals) == len(out.audio)
    np.testing.assert_array_equal(out.audio[lead : lead + len(utt.audio)], utt.audio)
    assert not out.audio[:lead].any() and not out.audio[lead + len(utt.audio) :].any()
    assert [(p.label, p.start, p.end) for p in out.phones] == [
        (p.label, pytest.approx(p.start + 0.5), pytest.approx(p.end + 0.5)) for p in utt.phones
    ]
    assert out.marks["notes"][0] == pytest.approx((1.1, 1.7))
    assert out.meta["pauses"] == {"lead_s": 0.5, "tail_s": 1.5}
    assert utt.phones[0].start == 0.0 and len(utt.audio) == int(1.2 * SAMPLE_RATE)  # untouched
    with pytest.raises(ValueError):
        pauses.pad_silence(utt, -0.1, 0.5)


def test_the_targets_shut_the_mouth_in_a_padded_pause() -> None:
    """The viseme targets read the padding as silence: the jaw open on the last vowel is shut
    within ~0.3 s of the speech's end and stays shut to the end of the pause."""
    out = pauses.pad_silence(_sentence(), 0.0, 2.0)
    n = len(out.audio) // 640
    motion = phones_to_motion(out.phones, n, rng=np.random.default_rng(0), audio=out.audio)
    t = (np.arange(n) + 0.5) / 25
    assert motion[(t > 0.7) & (t < 1.15), JAW].max() > 0.3  # the last vowel is open
    assert motion[t > 1.5, JAW].max() < 0.05


def test_with_pauses_pads_a_share_of_utterances_within_the_ranges() -> None:
    utt = _sentence()
    drawn = [pauses.with_pauses(utt, np.random.default_rng(seed)) for seed in range(400)]
    padded = [d.meta["pauses"] for d in drawn if "pauses" in d.meta]
    assert abs(len(padded) / len(drawn) - pauses.PAUSE_PROBABILITY) < 0.08
    tails = np.array([p["tail_s"] for p in padded])
    leads = np.array([p["lead_s"] for p in padded])
    assert tails.min() >= pauses.TAIL_S[0] - 1e-3 and tails.max() <= pauses.TAIL_S[1] + 1e-3
    assert 0.3 < (leads > 0).mean() < 0.7
    assert leads.max() <= pauses.LEAD_S[1] + 1e-3
    same = pauses.with_pauses(utt, np.random.default_rng(7))
    again = pauses.with_pauses(utt, np.random.default_rng(7))
    assert same.meta.get("pauses") == again.meta.get("pauses")  # seeded


def _phrases() -> Utterance:
    """1.4 s: "ah-ma" | 120 ms of silence (a SIL phone) | "ah-pa", with a note mark across the
    silence and a voice-only track."""
    n = int(1.4 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    voice = (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
    voice[int(0.6 * SAMPLE_RATE) : int(0.72 * SAMPLE_RATE)] = 0.0
    phones = [
        Phone("AA", 0.0, 0.4), Phone("M", 0.4, 0.45), Phone("AA", 0.45, 0.6),
        Phone("SIL", 0.6, 0.72),
        Phone("AA", 0.72, 1.0), Phone("P", 1.0, 1.05), Phone("AA", 1.05, 1.4),
    ]  # fmt: skip
    marks = {"notes": [(0.5, 0.9)], "beats": [(1.1, 1.1)]}
    return Utterance(voice, phones, "ama apa", "mbrola", "mbrola/us1", marks=marks, vocals=voice)


def test_inner_silences_are_the_gaps_between_spoken_phones() -> None:
    utt = _phrases()
    assert pauses.inner_silences(utt) == [pytest.approx((0.6, 0.72))]
    # a gap without a SIL phone counts; one under INNER_MIN_S does not
    gapped = replace(utt, phones=[p for p in utt.phones if p.label != "SIL"])
    assert pauses.inner_silences(gapped) == [pytest.approx((0.6, 0.72))]
    tight = replace(utt, phones=[Phone("AA", 0.0, 0.6), Phone("M", 0.62, 1.4)])
    assert pauses.inner_silences(tight) == []


def test_insert_silence_splits_the_audio_and_moves_what_follows() -> None:
    utt = _phrases()
    out = pauses.insert_silence(utt, 0.66, 0.5)
    cut, n = int(0.66 * SAMPLE_RATE), int(0.5 * SAMPLE_RATE)
    assert len(out.audio) == len(utt.audio) + n
    np.testing.assert_array_equal(out.audio[:cut], utt.audio[:cut])
    np.testing.assert_array_equal(out.audio[cut + n :], utt.audio[cut:])
    assert not out.audio[cut : cut + n].any()
    assert out.vocals is not None and len(out.vocals) == len(out.audio)
    spans = [(p.label, round(p.start, 4), round(p.end, 4)) for p in out.phones]
    assert spans[:3] == [(p.label, p.start, p.end) for p in utt.phones[:3]]  # before: as was
    assert spans[3] == ("SIL", 0.6, 1.22)  # spanning the point: lengthened
    assert spans[4:] == [
        (p.label, round(p.start + 0.5, 4), round(p.end + 0.5, 4)) for p in utt.phones[4:]
    ]
    assert out.marks["notes"][0] == pytest.approx((0.5, 1.4))  # spans it: lengthened
    assert out.marks["beats"][0] == pytest.approx((1.6, 1.6))  # after it: moved
    with pytest.raises(ValueError):
        pauses.insert_silence(utt, 2.0, 0.5)


def test_the_targets_shut_the_mouth_in_a_stretched_inner_pause() -> None:
    """Speech on both sides: the jaw open on the vowels before and after, shut in between."""
    out = pauses.insert_silence(_phrases(), 0.66, 0.8)  # a 0.92 s pause from 0.6 s
    n = len(out.audio) // 640
    motion = phones_to_motion(out.phones, n, rng=np.random.default_rng(0), audio=out.audio)
    t = (np.arange(n) + 0.5) / 25
    assert motion[(t > 0.1) & (t < 0.35), JAW].max() > 0.3
    assert motion[(t > 1.6) & (t < 1.75), JAW].max() > 0.3
    assert motion[(t > 0.95) & (t < 1.3), JAW].max() < 0.05


def test_with_inner_pause_stretches_one_inner_silence_on_a_share_of_draws() -> None:
    utt = _phrases()
    assert pauses.with_inner_pause(utt, np.random.default_rng(0), 0.0) is utt  # off
    drawn = [pauses.with_inner_pause(utt, np.random.default_rng(s), 0.5) for s in range(300)]
    stretched = [d for d in drawn if d is not utt]
    assert abs(len(stretched) / len(drawn) - 0.5) < 0.1
    for d in stretched:
        pause = d.meta["pauses"]
        assert pauses.INNER_S[0] - 1e-3 <= pause["inner_s"] <= pauses.INNER_S[1] + 1e-3
        assert pause["inner_at_s"] == pytest.approx(0.6)
        assert len(d.audio) - len(utt.audio) == pytest.approx(
            (pause["inner_s"] - 0.12) * SAMPLE_RATE,
            abs=2,  # inner_s is rounded to 0.1 ms
        )
    # nothing to stretch: unchanged; and seeded
    alone = replace(utt, phones=[Phone("AA", 0.0, 1.4)])
    assert pauses.with_inner_pause(alone, np.random.default_rng(1), 1.0) is alone
    one = pauses.with_inner_pause(utt, np.random.default_rng(5), 1.0)
    assert one.meta == pauses.with_inner_pause(utt, np.random.default_rng(5), 1.0).meta
    # edge padding after it keeps both records
    padded = pauses.pad_silence(one, 0.2, 0.5)
    assert padded.meta["pauses"]["inner_s"] == one.meta["pauses"]["inner_s"]
    assert padded.meta["pauses"]["lead_s"] == 0.2


def test_a_drifted_history_offsets_only_the_mouth_and_alike_in_every_frame(
    tmp_path: Path,
) -> None:
    from tests.test_motion_model import write_toy_corpus

    utterances = load_utterances(write_toy_corpus(tmp_path / "c", train=2, val=1), "train")
    _, std = motion_statistics(utterances)
    base = AugmentConfig.none()
    drift = replace(base, history_drift_prob=1.0, history_drift_max=0.6)
    a = WindowSampler(utterances, std, base, seed=5).sample(64)
    b = WindowSampler(utterances, std, drift, seed=5).sample(64)
    np.testing.assert_array_equal(a.target, b.target)
    np.testing.assert_array_equal(a.mel, b.mel)
    delta = b.history - a.history
    others = np.setdiff1d(np.arange(motion_frame.DIM), motion_frame.MOUTH_INDICES)
    assert not delta[:, :, others].any()
    mouth = delta[:, :, motion_frame.MOUTH_INDICES]
    assert np.abs(mouth).max() > 0.0
    # One offset per window and field, the same in each of its frames (unless clipped).
    clipped = (b.history == motion_frame.LOWER) | (b.history == motion_frame.UPPER)
    kept = np.ma.masked_array(mouth, clipped[:, :, motion_frame.MOUTH_INDICES])
    assert (kept.max(1) - kept.min(1)).max() < 1e-5
