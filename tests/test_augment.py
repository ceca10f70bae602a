"""Audio augmentation (training/augment.py): timing stays true, levels are what was asked."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from scipy import signal

from contracts.phones import Phone
from training import augment
from training.utterance import SAMPLE_RATE, Utterance


def voice(seconds: float, f0: float, seed: int) -> np.ndarray:
    """A vowel-like buzz: glottal pulses through two resonances, with a slow tremor."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    contour = f0 * (1.0 + 0.05 * np.sin(2 * np.pi * rng.uniform(2, 5) * np.arange(n) / SAMPLE_RATE))
    pulses = np.diff(np.floor(np.cumsum(contour / SAMPLE_RATE)), prepend=0.0)
    x = signal.lfilter([1.0], [1.0, -0.95], pulses)
    for f in rng.uniform((500, 1200), (800, 2200)):
        r = np.exp(-np.pi * 100 / SAMPLE_RATE)
        x = signal.lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * f / SAMPLE_RATE), r * r], x)
    return x / np.abs(x).max()


def utterance(seed: int = 0, level: float = 0.3) -> Utterance:
    """Three 'words' separated by silences; phones mark them (and the silences) exactly."""
    audio = np.zeros(int(2.0 * SAMPLE_RATE))
    phones = [Phone("SIL", 0.0, 0.25)]
    t = 0.25
    for i, seconds in enumerate((0.35, 0.25, 0.4)):
        a = int(t * SAMPLE_RATE)
        word = voice(seconds, 100.0 + 30.0 * i, seed + i)
        audio[a : a + len(word)] = level * word * np.hanning(len(word)) ** 0.2
        phones.append(Phone(("AA", "IY", "UW")[i], t, t + seconds))
        phones.append(Phone("SIL", t + seconds, t + seconds + 0.2))
        t += seconds + 0.2
    return Utterance(audio.astype(np.float32), phones, "a b c", "synth", "synth/test")


def lag_samples(x: np.ndarray, reference: np.ndarray) -> int:
    """Delay of x relative to the reference, by cross-correlation."""
    c = signal.correlate(x, reference, mode="full", method="fft")
    return int(np.argmax(c)) - (len(reference) - 1)


def onset(x: np.ndarray) -> int:
    return int(np.argmax(np.abs(x) > 0.2 * np.abs(x).max()))


def word_onset(audio: np.ndarray, phone: Phone) -> int:
    """Sample of the first strong excitation in a phone's span (from 50 ms before it)."""
    a = int((phone.start - 0.05) * SAMPLE_RATE)
    return a + onset(audio[a : int(phone.end * SAMPLE_RATE)])


@pytest.mark.parametrize("bitrate", [12_000, 24_000, 64_000])
@pytest.mark.parametrize("application", ["voip", "audio"])
def test_opus_round_trip_keeps_alignment(bitrate, application):
    utt = utterance()
    out = augment.opus_round_trip(utt, np.random.default_rng(0), bitrate, application)
    assert len(out.audio) == len(utt.audio) and out.audio.dtype == np.float32
    assert abs(lag_samples(out.audio, utt.audio)) <= SAMPLE_RATE // 1000  # within 1 ms
    assert np.corrcoef(out.audio, utt.audio)[0, 1] > 0.7
    assert out.phones == utt.phones
    assert out.meta["augment"]["opus"]["bitrate"] == bitrate


def test_speed_change_moves_the_phones_with_the_audio():
    utt = utterance()
    for factor in (0.9, 1.07):
        out = augment.change_speed(utt, np.random.default_rng(0), factor)
        scale = out.meta["augment"]["speed"]["time_scale"]
        assert abs(scale - 1.0 / factor) < 0.001
        assert abs(len(out.audio) - len(utt.audio) * scale) <= 1
        for before, after in zip(utt.phones, out.phones, strict=True):
            assert after.label == before.label
            assert after.start == pytest.approx(before.start * scale, abs=1e-9)
            assert after.end == pytest.approx(before.end * scale, abs=1e-9)
        # Each word's first glottal pulse moves exactly as its phone did (within 1 ms).
        for before, after in zip(utt.phones, out.phones, strict=True):
            if before.label != "SIL":
                start = word_onset(utt.audio, before)
                assert abs(word_onset(out.audio, after) - start * scale) <= 16


def test_reverb_does_not_shift_the_onset():
    utt = utterance()
    for rt60 in (0.1, 0.4, 0.8):
        out = augment.add_reverb(utt, np.random.default_rng(1), rt60=rt60, drr_db=0.0)
        assert len(out.audio) == len(utt.audio)
        assert lag_samples(out.audio, utt.audio) == 0
        assert abs(onset(out.audio) - onset(utt.audio)) <= 16
        # The room is audible: energy in the silence after the last word.
        tail = slice(int(1.68 * SAMPLE_RATE), int(1.71 * SAMPLE_RATE))
        assert np.abs(out.audio[tail]).max() > 1e-4


@pytest.mark.parametrize("kind", ["white", "pink", "brown", "babble"])
@pytest.mark.parametrize("snr_db", [5.0, 20.0, 40.0])
def test_noise_hits_the_requested_snr(kind, snr_db):
    utt = utterance()
    others = [voice(1.3, 150.0, 5), voice(0.9, 210.0, 6)]
    out = augment.add_noise(utt, np.random.default_rng(2), snr_db, kind, others=others)
    clean = utt.audio.astype(np.float64)
    noise = out.audio.astype(np.float64) - clean
    mask = augment.speech_mask(utt)
    measured = 10 * np.log10(np.mean(clean[mask] ** 2) / np.mean(noise[mask] ** 2))
    assert abs(measured - snr_db) < 1.0
    assert out.meta["augment"]["noise"] == {"kind": kind, "snr_db": snr_db}


def test_babble_needs_other_audio():
    with pytest.raises(ValueError):
        augment.add_noise(utterance(), np.random.default_rng(0), 10.0, "babble")
    kinds = {
        augment.add_noise(utterance(), np.random.default_rng(s)).meta["augment"]["noise"]["kind"]
        for s in range(30)
    }
    assert kinds == {"white", "pink", "brown"}


def test_gain_never_clips():
    loud = utterance(level=0.8)
    out = augment.change_gain(loud, np.random.default_rng(0), 6.0)
    assert np.abs(out.audio).max() <= augment.PEAK + 1e-6
    ratio = out.audio[loud.audio != 0] / loud.audio[loud.audio != 0]
    assert np.allclose(ratio, ratio[0], rtol=1e-4)  # a pure scale: no clipped peaks
    assert out.meta["augment"]["gain"]["applied_db"] < 6.0
    quiet = augment.change_gain(loud, np.random.default_rng(0), -20.0)
    assert np.allclose(quiet.audio, loud.audio * 0.1, atol=1e-6)
    for seed in range(20):
        out = augment.change_gain(loud, np.random.default_rng(seed))
        assert np.abs(out.audio).max() <= augment.PEAK + 1e-6


def test_eq_is_zero_phase_and_telephone_cuts_the_lows():
    utt = utterance()
    rng = np.random.default_rng(3)
    for _ in range(5):
        out = augment.equalize(utt, rng)
        assert len(out.audio) == len(utt.audio)
        assert lag_samples(out.audio, utt.audio) == 0
    phone_line = augment.equalize(utt, rng, [{"type": "telephone", "low": 300.0, "high": 3400.0}])
    freqs, before = signal.welch(utt.audio, SAMPLE_RATE, nperseg=1024)
    _, after = signal.welch(phone_line.audio, SAMPLE_RATE, nperseg=1024)
    low = (freqs > 50) & (freqs < 150)
    assert after[low].sum() < 0.05 * before[low].sum()


def test_biquad_gains():
    for kind, freq, probe in (
        ("low", 200.0, 50.0),
        ("high", 4000.0, 7000.0),
        ("peak", 1000.0, 1000.0),
    ):
        sos = augment.biquad(kind, freq, 6.0, 1.0)
        _, h = signal.sosfreqz(sos, worN=[probe], fs=SAMPLE_RATE)
        assert 20 * np.log10(abs(h[0])) == pytest.approx(6.0, abs=0.5)


def test_augment_chain_is_deterministic_and_recorded():
    utt = utterance()
    utt.meta["source"] = "test"
    others = [voice(1.0, 180.0, 9)]
    seen = set()
    for seed in range(12):
        a = augment.augment(utt, np.random.default_rng(seed), others=others)
        b = augment.augment(utt, np.random.default_rng(seed), others=others)
        np.testing.assert_array_equal(a.audio, b.audio)
        assert a.phones == b.phones and a.meta == b.meta
        record = a.meta["augment"]
        assert a.meta["source"] == "test"
        assert all(op in record for op in record["chain"])
        json.dumps(record)  # goes into the manifest
        assert np.abs(a.audio).max() <= augment.PEAK + 1e-6 and a.audio.dtype == np.float32
        scale = len(a.audio) / len(utt.audio)
        assert a.phones[-1].end * SAMPLE_RATE <= len(a.audio) + 2 * scale
        seen.update(record["chain"])
    assert seen == {"speed", "eq", "reverb", "noise", "gain", "opus"}
    assert utt.meta == {"source": "test"}  # the input is untouched
    calm = augment.augment(utt, np.random.default_rng(0), strength=0.0)
    assert calm.meta["augment"] == {"chain": []}
    np.testing.assert_array_equal(calm.audio, utt.audio)


def test_augment_draws_do_not_depend_on_the_audio_length():
    """The corpus draws the motion style from the same generator after augmenting, and a TTS
    engine can return a slightly longer take: the chain, its parameters and what the
    generator draws next must not change with the length."""
    short = utterance()
    longer = dataclasses.replace(short, audio=np.concatenate([short.audio, short.audio[:4000]]))
    for seed in range(12):
        rng_a, rng_b = np.random.default_rng(seed), np.random.default_rng(seed)
        a, b = augment.augment(short, rng_a), augment.augment(longer, rng_b)
        assert a.meta["augment"]["chain"] == b.meta["augment"]["chain"]
        for op in ("noise", "opus", "speed"):
            if op in a.meta["augment"]:
                assert a.meta["augment"][op] == b.meta["augment"][op]
        assert rng_a.random() == rng_b.random()
