"""Phones -> mouth targets (training/visemes.py) and prosody -> upper face (training/prosody.py).

Audio is synthesized here (a glottal pulse train through formant resonators), so the tests
need no TTS engine.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from contracts import motion_frame
from contracts.phones import ARPABET, Phone
from training import prosody, visemes
from training.utterance import SAMPLE_RATE

I = motion_frame.INDEX  # noqa: E741
FRAME = 0.04

# Vowel formants (Hz) of an adult male (Peterson and Barney).
FORMANTS = {
    "AA": (730, 1090, 2440),
    "AE": (660, 1720, 2410),
    "IY": (270, 2290, 3010),
    "UW": (300, 870, 2240),
    "AO": (570, 840, 2410),
    "EH": (530, 1840, 2480),
}


def phones_from(spec: list[tuple[str, float]], start: float = 0.0) -> list[Phone]:
    out, t = [], start
    for label, seconds in spec:
        out.append(Phone(label, t, t + seconds))
        t += seconds
    return out


def synth(phones: list[Phone], f0: tuple[float, ...] = (120.0, 120.0), seed: int = 0):
    """Crude speech: voiced vowels and nasals, noise fricatives, silent stops and pauses.
    F0 (Hz) is piecewise linear through the given knots, spread evenly over the audio."""
    rng = np.random.default_rng(seed)
    n = int(np.ceil(phones[-1].end * SAMPLE_RATE)) + SAMPLE_RATE // 5
    contour = np.interp(np.arange(n), np.linspace(0, n - 1, len(f0)), f0)
    pulses = np.diff(np.floor(np.cumsum(contour / SAMPLE_RATE)), prepend=0.0)
    source = signal.lfilter([1.0], [1.0, -0.95], pulses)
    out = np.zeros(n)
    radius = np.exp(-np.pi * 80.0 / SAMPLE_RATE)  # 80 Hz formant bandwidth
    for p in phones:
        a, b = int(p.start * SAMPLE_RATE), int(p.end * SAMPLE_RATE)
        if p.label in FORMANTS:
            x = source[a:b]
            for f in FORMANTS[p.label]:
                w = 2.0 * np.pi * f / SAMPLE_RATE
                x = signal.lfilter([1.0 - radius], [1.0, -2.0 * radius * np.cos(w), radius**2], x)
            out[a:b] = 0.5 * x / (np.abs(x).max() + 1e-9)
        elif p.label in ("S", "SH", "F", "TH", "HH"):
            hiss = signal.lfilter(
                *signal.butter(2, 3000 / 8000, "high"), rng.standard_normal(b - a)
            )
            out[a:b] = 0.05 * hiss
        elif p.label in ("M", "N", "NG", "L", "R", "W", "Y"):
            out[a:b] = 0.1 * signal.lfilter(*signal.butter(2, 400 / 8000), source[a:b])
    return out.astype(np.float32)


def frames_for(phones: list[Phone], tail: float = 0.2) -> int:
    return int(np.ceil((phones[-1].end + tail) / FRAME))


def lip_gap(motion: np.ndarray) -> np.ndarray:
    """Approximate lip opening in mouth widths, from the renderer's blendshape geometry
    (engines/rig.py: jawOpen drops the lower lip 0.6 widths, mouthClose lifts it 0.57, the
    lip raisers/lowerers and the funnel open the lips further)."""
    m = motion
    return (
        0.6 * m[:, I["jawOpen"]]
        - 0.57 * m[:, I["mouthClose"]]
        + 0.16 * m[:, I["mouthLowerDownLeft"]]
        + 0.13 * m[:, I["mouthUpperUpLeft"]]
        + 0.18 * m[:, I["mouthFunnel"]]
    )


def covering_frame(start: float, end: float) -> int:
    """The frame that overlaps [start, end) the most."""
    edges = np.arange(int(end / FRAME) + 2) * FRAME
    overlap = np.clip(np.minimum(edges[1:], end) - np.maximum(edges[:-1], start), 0, None)
    return int(np.argmax(overlap))


# --- the table ---------------------------------------------------------------------------


def test_every_phone_has_a_viseme_and_targets_are_in_range():
    assert set(visemes.PHONE_TO_VISEME) == set(ARPABET)
    assert 12 <= len(visemes.VISEME_NAMES) <= 16
    assert visemes.TARGETS.min() >= 0.0 and visemes.TARGETS.max() <= 0.8
    # Distinct classes look distinct: no two targets closer than 0.1 (L2).
    t = visemes.TARGETS
    dist = np.linalg.norm(t[:, None] - t[None], axis=-1) + np.eye(len(t))
    assert dist.min() > 0.1


# --- mouth shapes ------------------------------------------------------------------------


@pytest.mark.parametrize("label", ["P", "B", "M"])
@pytest.mark.parametrize("seconds", [0.03, 0.05, 0.09])
@pytest.mark.parametrize("offset", [0.0, 0.013, 0.027])
def test_bilabials_close_the_lips_between_open_vowels(label, seconds, offset):
    phones = phones_from([("AA", 0.15), (label, seconds), ("AA", 0.15)], start=0.3 + offset)
    closure = phones[1]
    for rng in (None, np.random.default_rng(7)):
        m = visemes.phones_to_motion(phones, frames_for(phones), rng=rng)
        k = covering_frame(closure.start, closure.end)
        assert m[k, I["jawOpen"]] <= 0.12
        assert m[k, I["mouthClose"]] >= m[k, I["jawOpen"]] - 1e-6
        assert m[k, I["mouthPressLeft"]] >= 0.3 and m[k, I["mouthPressRight"]] >= 0.3
        assert m[k, I["mouthLowerDownLeft"]] == 0.0 and m[k, I["mouthFunnel"]] == 0.0
        assert lip_gap(m)[k] < 0.01
        # ... and the vowels around it are open.
        assert lip_gap(m)[covering_frame(phones[0].start, phones[0].end)] > 0.25
        assert lip_gap(m)[covering_frame(phones[2].start, phones[2].end)] > 0.25


def test_labiodentals_tuck_the_lower_lip():
    phones = phones_from([("AA", 0.15), ("F", 0.08), ("AA", 0.15)], start=0.3)
    m = visemes.phones_to_motion(phones, frames_for(phones))
    k = covering_frame(phones[1].start, phones[1].end)
    assert m[k, I["mouthRollLower"]] >= 0.4
    assert m[k, I["jawOpen"]] <= 0.15
    assert lip_gap(m)[k] < 0.12


def test_open_vowel_opens_the_jaw():
    phones = phones_from([("AA", 0.25)], start=0.2)
    m = visemes.phones_to_motion(phones, frames_for(phones))
    k = covering_frame(phones[0].start, phones[0].end)
    assert m[k, I["jawOpen"]] >= 0.5
    assert m[k, I["mouthLowerDownLeft"]] >= 0.25
    assert m[k, I["mouthPucker"]] < 0.05


def test_rounded_and_spread_vowels():
    uw = phones_from([("UW", 0.25)], start=0.2)
    m = visemes.phones_to_motion(uw, frames_for(uw))
    k = covering_frame(uw[0].start, uw[0].end)
    assert m[k, I["mouthPucker"]] >= 0.5 and m[k, I["mouthFunnel"]] >= 0.25
    assert m[k, I["mouthStretchLeft"]] < 0.05
    iy = phones_from([("IY", 0.25)], start=0.2)
    m = visemes.phones_to_motion(iy, frames_for(iy))
    assert m[k, I["mouthStretchLeft"]] >= 0.25 and m[k, I["mouthPucker"]] < 0.05
    assert m[k, I["jawOpen"]] < 0.25


def test_short_vowels_undershoot():
    long = phones_from([("T", 0.08), ("AA", 0.2), ("T", 0.08)], start=0.2)
    short = phones_from([("T", 0.08), ("AA", 0.05), ("T", 0.08)], start=0.2)
    jaw_long = visemes.phones_to_motion(long, frames_for(long))[:, I["jawOpen"]].max()
    jaw_short = visemes.phones_to_motion(short, frames_for(short))[:, I["jawOpen"]].max()
    assert jaw_short < 0.8 * jaw_long
    assert jaw_short > 0.25  # still clearly open


def test_rounding_is_anticipated_but_not_too_early():
    phones = phones_from([("IY", 0.3), ("T", 0.04), ("K", 0.04), ("UW", 0.25)], start=0.2)
    uw = phones[3]
    m = visemes.phones_to_motion(phones, frames_for(phones))
    centres = (np.arange(len(m)) + 0.5) * FRAME
    pucker = m[:, I["mouthPucker"]]
    # Rounding shows on the frames just before the vowel (through the /t k/) ...
    lead = (centres > uw.start - 0.06) & (centres < uw.start)
    assert pucker[lead].max() > 0.2
    # ... but never more than 100 ms ahead of it.
    assert pucker[centres < uw.start - 0.1].max() < 0.01


def test_velars_take_the_lip_shape_of_the_vowel():
    phones = phones_from([("UW", 0.2), ("K", 0.08), ("UW", 0.2)], start=0.2)
    m = visemes.phones_to_motion(phones, frames_for(phones))
    k = covering_frame(phones[1].start, phones[1].end)
    assert m[k, I["mouthPucker"]] > 0.4


def test_silence_relaxes_to_rest():
    phones = phones_from([("AA", 0.2), ("SIL", 0.6), ("AA", 0.2)], start=0.2)
    m = visemes.phones_to_motion(phones, frames_for(phones))
    gap = phones[1]
    centres = (np.arange(len(m)) + 0.5) * FRAME
    middle = (centres > gap.start + 0.16) & (centres < gap.end - 0.1)
    assert middle.any()
    assert np.abs(m[middle][:, visemes.MOUTH_INDEX]).max() < 0.02
    # Leading and trailing silence too.
    assert np.abs(m[:2, visemes.MOUTH_INDEX]).max() < 0.02
    assert np.abs(m[-1, visemes.MOUTH_INDEX]).max() < 0.02


def random_phones(rng: np.random.Generator, seconds: float) -> list[Phone]:
    out, t = [], 0.1
    while t < seconds:
        label = ARPABET[int(rng.integers(len(ARPABET)))]
        d = float(rng.uniform(0.03, 0.2))
        out.append(Phone(label, t, t + d))
        t += d
    return out


def test_output_is_in_limits_smooth_and_deterministic():
    for seed in range(20):
        phones = random_phones(np.random.default_rng(seed), 4.0)
        n = frames_for(phones)
        m = visemes.phones_to_motion(phones, n, rng=np.random.default_rng(seed))
        assert m.shape == (n, motion_frame.DIM) and m.dtype == np.float32
        np.testing.assert_array_equal(m, motion_frame.clip(m))
        # Closures may snap shut in a frame; nothing else jumps further.
        assert np.abs(np.diff(m, axis=0)).max() <= 0.6
        again = visemes.phones_to_motion(phones, n, rng=np.random.default_rng(seed))
        np.testing.assert_array_equal(m, again)
        other = visemes.phones_to_motion(phones, n, rng=np.random.default_rng(seed + 100))
        assert not np.array_equal(m, other)


def test_without_audio_only_the_mouth_moves():
    phones = random_phones(np.random.default_rng(0), 2.0)
    m = visemes.phones_to_motion(phones, frames_for(phones), rng=np.random.default_rng(0))
    others = np.setdiff1d(np.arange(motion_frame.DIM), visemes.MOUTH_INDEX)
    assert np.all(m[:, others] == 0.0)


def test_dominant_visemes():
    phones = [*phones_from([("M", 0.08), ("AY", 0.2)], start=0.1), Phone("S", 0.6, 0.72)]
    v = visemes.dominant_visemes(phones, 20)
    names = [visemes.VISEME_NAMES[i] for i in v]
    assert v.dtype == np.int8 and len(v) == 20
    assert names[0] == "sil" and names[3] == "PBM"  # frame 3 centre 0.14 s
    assert names[5] == "AA"  # diphthong nucleus (0.18..0.30 s)
    assert names[7] == "IY"  # its off-glide (0.30..0.38 s)
    assert names[12] == "sil" and names[16] == "SZ" and names[19] == "sil"


# --- prosody -----------------------------------------------------------------------------


def continuous_speech(seconds: float, seed: int = 0) -> list[Phone]:
    """CV syllables without pauses."""
    rng = np.random.default_rng(seed)
    spec = []
    while sum(d for _, d in spec) < seconds:
        spec.append((("M", "N", "S", "L")[int(rng.integers(4))], float(rng.uniform(0.05, 0.09))))
        spec.append((tuple(FORMANTS)[int(rng.integers(len(FORMANTS)))], rng.uniform(0.08, 0.22)))
    return phones_from(spec, start=0.1)


def blink_onsets(motion: np.ndarray) -> np.ndarray:
    closed = motion[:, I["eyeBlinkLeft"]] > 0.5
    return np.flatnonzero(closed[1:] & ~closed[:-1]) + 1


def test_yin_follows_f0():
    phones = phones_from([("AA", 1.0)], start=0.1)
    audio = synth(phones, f0=(100.0, 200.0))
    n = len(audio) // 640
    feats = prosody.analyse(audio, n)
    centres = (np.arange(n) + 0.5) * FRAME
    inside = (centres > 0.2) & (centres < 1.0)
    assert feats.voiced[inside].all()
    expected = 100.0 + 100.0 * centres[inside] * SAMPLE_RATE / len(audio)
    np.testing.assert_allclose(feats.f0_hz[inside], expected, rtol=0.03)
    assert not feats.voiced[centres < 0.06].any()


def test_blinks_every_two_to_six_seconds():
    phones = continuous_speech(30.0)
    audio = synth(phones)
    n = len(audio) // 640
    for seed in range(3):
        m = visemes.phones_to_motion(phones, n, rng=np.random.default_rng(seed), audio=audio)
        onsets = blink_onsets(m)
        gaps = np.diff(onsets) * FRAME
        assert len(onsets) >= 5
        assert gaps.min() >= 2.0 - 0.08 and gaps.max() <= 6.0 + 0.08
        assert m[:, I["eyeBlinkLeft"]].max() >= 0.99  # every blink shows closed


def test_blinks_at_phrase_boundaries():
    spec = []
    for _ in range(6):
        spec += [("AA", 0.2), ("M", 0.06), ("IY", 0.2), ("SIL", 0.6)]
    phones = phones_from(spec, start=0.1)
    audio = synth(phones)
    n = len(audio) // 640
    pauses = [p for p in phones if p.label == "SIL"]
    hits = 0
    for seed in range(6):
        m = visemes.phones_to_motion(phones, n, rng=np.random.default_rng(seed), audio=audio)
        starts = blink_onsets(m) * FRAME
        hits += sum(any(p.start <= s <= p.start + 0.3 for s in starts) for p in pauses)
    assert hits / (6 * len(pauses)) > 0.4


def test_head_motion_is_smooth_bounded_and_differs_across_seeds():
    phones = continuous_speech(10.0)
    audio = synth(phones, f0=(110.0, 150.0))
    n = len(audio) // 640
    head = [I["headYaw"], I["headPitch"], I["headRoll"]]
    tracks = []
    for seed in range(3):
        m = visemes.phones_to_motion(phones, n, rng=np.random.default_rng(seed), audio=audio)
        tracks.append(m[:, head])
        assert np.abs(m[:, head]).max() <= max(prosody.HEAD_LIMIT_RAD.values())
        # < 2 degrees a frame (50 deg/s): a nod at its fastest, as fast as people nod
        assert np.abs(np.diff(m[:, head], axis=0)).max() < 0.035
        brows = m[:, [I["browInnerUp"], I["browOuterUpLeft"]]]
        assert np.abs(np.diff(brows, axis=0)).max() < 0.15
        gaze = m[:, [I["gazeX"], I["gazeY"]]]
        assert np.abs(gaze).max() <= 0.5 and np.abs(np.diff(gaze, axis=0)).max() < 0.4
        assert m[:, I["headPitch"]].std() > 0.005  # it nods
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.sqrt(np.mean((tracks[a] - tracks[b]) ** 2)) > 0.005


def test_rising_pitch_at_the_end_raises_the_brows():
    spec = [("AA", 0.2), ("N", 0.06), ("IY", 0.2), ("S", 0.08), ("AE", 0.25), ("UW", 0.3)]
    phones = phones_from(spec, start=0.1)
    n = int(np.ceil((phones[-1].end + 0.2) / FRAME))
    end = int(phones[-1].end / FRAME)
    brow = []
    # A question's final rise, a statement's fall.
    for f0 in ((120.0, 120.0, 120.0, 200.0), (150.0, 150.0, 120.0, 95.0)):
        audio = synth(phones, f0=f0)
        m = visemes.phones_to_motion(phones, n, rng=np.random.default_rng(1), audio=audio)
        brow.append(m[end - 4 : end + 1, I["browInnerUp"]].mean())
    assert brow[0] > 0.15 and brow[0] > brow[1] + 0.1
