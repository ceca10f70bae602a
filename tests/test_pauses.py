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
