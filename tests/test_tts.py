"""TTS engines for the synthetic corpus: audio format, ARPAbet phones, and timings that the
audio itself confirms (vowels loud, pauses and lip closures quiet, no shift of the labels
against the energy envelope). Engines that are not installed are skipped; run
scripts/install_tts.sh to install them all. Also the phone tables, text normalisation, the
.pho editing, and the seeded sentence generator.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from contracts.phones import ARPABET, Phone
from training.phoneset import UnknownPhoneError, espeak_ipa, to_arpabet
from training.sentences import sentences
from training.tts import ENGINES, TtsEngine, aligner, available_engines, engine_for
from training.tts.festival import FestivalEngine
from training.tts.measure import energy_lag_ms, start_errors_ms
from training.tts.pho import PhoLine, format_pho, parse_pho, sing
from training.tts.text import speakable
from training.tts.timeline import VOWELS, phones_from_segments
from training.utterance import SAMPLE_RATE, Utterance

SENTENCE = "Bob and Pam bought a map, a blue balloon and a pumpkin in Boston."
VOICES = {
    "espeak-ng": ("espeak-ng/en-us", "espeak-ng/en-gb+f3"),
    "mbrola": ("mbrola/us1", "mbrola/en1"),
    "festival": ("festival/kal_diphone", "festival/rab_diphone"),
    "flite": ("flite/slt", "flite/kal"),
    "pico": ("pico/en-US", "pico/en-GB"),
}
VOICE_PARAMS = [pytest.param(v, id=v) for voices in VOICES.values() for v in voices]
_HIGH_PASS = butter(4, 500, "highpass", fs=SAMPLE_RATE, output="sos")
_cache: dict[tuple, Utterance] = {}


def _engine(name: str) -> TtsEngine:
    engine = ENGINES[name]
    if not engine.available():
        pytest.skip(
            f"{name} is not installed (scripts/install_tts.sh; pico also needs pocketsphinx)"
        )
    return engine


def _speak(voice: str, text: str = SENTENCE, **kwargs: object) -> Utterance:
    engine = _engine(voice.split("/")[0])
    if voice not in engine.voices():
        pytest.skip(f"voice {voice} is not installed")
    key = (voice, text, tuple(sorted(kwargs.items())))
    if key not in _cache:
        _cache[key] = engine.synthesize(text, voice, **kwargs)
    return _cache[key]


def _db(audio: np.ndarray, start: float, end: float) -> float:
    part = audio[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
    return float(10.0 * np.log10(np.mean(part**2) + 1e-10))


def _first_half(phone: Phone) -> tuple[float, float]:
    return phone.start, (phone.start + phone.end) / 2


def _middle(start: float, end: float) -> tuple[float, float]:
    quarter = (end - start) / 4
    return start + quarter, end - quarter


# --- engines -----------------------------------------------------------------------------


def test_registry_lists_every_engine() -> None:
    assert set(ENGINES) == {"espeak-ng", "mbrola", "festival", "flite", "pico"}
    for name, engine in ENGINES.items():
        assert engine.name == name and isinstance(engine, TtsEngine)
        assert all(v.startswith(name + "/") for v in engine.voices())
    assert {e.name for e in available_engines()} <= set(ENGINES)
    assert engine_for("mbrola/us1") is ENGINES["mbrola"]


@pytest.mark.parametrize("voice", VOICE_PARAMS)
def test_audio_is_16k_float32_speech(voice: str) -> None:
    utt = _speak(voice)
    assert utt.audio.dtype == np.float32 and utt.audio.ndim == 1
    assert 1.5 < utt.seconds < 10.0
    assert np.abs(utt.audio).max() <= 1.0
    assert np.sqrt(np.mean(utt.audio**2)) > 0.01, "audio is (nearly) silent"
    assert utt.voice == voice and utt.engine == voice.split("/")[0]
    assert utt.text == speakable(SENTENCE)


@pytest.mark.parametrize("voice", VOICE_PARAMS)
def test_phones_are_ordered_arpabet_covering_the_audio(voice: str) -> None:
    utt = _speak(voice)
    labels = [p.label for p in utt.phones]
    assert set(labels) <= set(ARPABET)
    assert {"B", "P", "M", "AA"} <= set(labels) or {"B", "P", "M", "AO"} <= set(labels)
    for before, after in zip(utt.phones, utt.phones[1:], strict=False):
        assert after.start >= before.end - 1e-9, f"{before} overlaps {after}"
    assert utt.phones[-1].end <= utt.seconds + 1e-9
    covered = sum(p.end - p.start for p in utt.phones) / utt.seconds
    assert 0.8 <= covered <= 1.0 + 1e-9


@pytest.mark.parametrize("voice", VOICE_PARAMS)
def test_vowels_are_loud_and_pauses_quiet(voice: str) -> None:
    utt = _speak(voice)
    vowels = [_db(utt.audio, *_middle(p.start, p.end)) for p in utt.phones if p.label in VOWELS]
    pauses = [_db(utt.audio, p.start + 0.015, p.end - 0.015)
              for p in utt.phones if p.label == "SIL" and p.end - p.start >= 0.06]  # fmt: skip
    assert pauses, "the comma should make a pause"
    assert np.median(vowels) - max(pauses) > 20.0


@pytest.mark.parametrize("voice", VOICE_PARAMS)
def test_lips_are_closed_during_bilabial_stops(voice: str) -> None:
    """A p/b's closure (its first half) is much quieter above 500 Hz than the next vowel."""
    utt = _speak(voice)
    audio = sosfilt(_HIGH_PASS, utt.audio)
    contrasts = [
        _db(audio, *_middle(vowel.start, vowel.end)) - _db(audio, *_first_half(stop))
        for stop, vowel in zip(utt.phones, utt.phones[1:], strict=False)
        if stop.label in ("P", "B") and vowel.label in VOWELS
    ]  # fmt: skip
    assert len(contrasts) >= 5
    assert np.median(contrasts) > 10.0


@pytest.mark.parametrize("voice", VOICE_PARAMS)
def test_labels_line_up_with_the_energy_envelope(voice: str) -> None:
    """Shifting the labels does not fit the audio better than +-20 ms (30 ms aligned)."""
    utt = _speak(voice)
    limit = 30.0 if utt.meta.get("timing") == "aligned" else 20.0
    assert abs(energy_lag_ms([utt])) <= limit


@pytest.mark.parametrize("voice", [v[0] for v in VOICES.values()])
def test_faster_rate_shortens_speech(voice: str) -> None:
    normal, fast = _speak(voice), _speak(voice, rate=1.5)
    assert fast.seconds < 0.85 * normal.seconds
    assert fast.phones[-1].end < 0.85 * normal.phones[-1].end


def _median_f0(audio: np.ndarray) -> float:
    """Median F0 (Hz) of the loud 40 ms frames, by autocorrelation (60-400 Hz)."""
    size, hop, f0s = SAMPLE_RATE // 25, SAMPLE_RATE // 100, []
    for start in range(0, len(audio) - size, hop):
        frame = audio[start : start + size] - audio[start : start + size].mean()
        if np.sqrt(np.mean(frame**2)) < 0.02:
            continue
        corr = np.correlate(frame, frame, "full")[size - 1 :]
        lo, hi = SAMPLE_RATE // 400, SAMPLE_RATE // 60
        lag = lo + int(np.argmax(corr[lo:hi]))
        if corr[lag] > 0.6 * corr[0]:
            f0s.append(SAMPLE_RATE / lag)
    return float(np.median(f0s))


@pytest.mark.parametrize("voice", [v[0] for v in VOICES.values()])
def test_pitch_multiplies_f0(voice: str) -> None:
    ratio = _median_f0(_speak(voice, pitch=1.25).audio) / _median_f0(_speak(voice).audio)
    assert 1.15 < ratio < 1.35


def test_festival_batches_match_single_runs() -> None:
    festival = _engine("festival")
    assert isinstance(festival, FestivalEngine)
    single = _speak("festival/kal_diphone")
    batch = festival.synthesize_many(["Maybe.", SENTENCE], "festival/kal_diphone")
    assert [u.text for u in batch] == ["Maybe.", single.text]
    assert batch[1].phones == single.phones
    np.testing.assert_array_equal(batch[1].audio, single.audio)


def test_mbrola_sings_held_vowels() -> None:
    spoken = _speak("mbrola/us1")
    sung = _speak("mbrola/us1", delivery="held", seed=11)
    held = [p for p in sung.phones if p.label in VOWELS and p.end - p.start >= 0.4]
    assert held and all(p.end - p.start <= 1.5 for p in held)
    assert sung.seconds > spoken.seconds + 0.3
    assert _db(sung.audio, *_middle(held[0].start, held[0].end)) > -40.0  # sung, not silent
    again = ENGINES["mbrola"].synthesize(SENTENCE, "mbrola/us1", delivery="held", seed=11)
    assert again.phones == sung.phones


@pytest.mark.parametrize("delivery", ["song", "rap"])
def test_mbrola_sings_and_raps_with_marks_on_its_vowels(delivery: str) -> None:
    utt = _speak("mbrola/us2", delivery=delivery, seed=5)
    vowels = [p for p in utt.phones if p.label in VOWELS]
    beats = [a for a, _ in utt.marks["beats"]]
    assert len(beats) >= 2 and all(0 <= b < utt.seconds for b in beats)
    if delivery == "song":
        # Every sung note is one of the phones' vowels, exactly (the .pho is the timing).
        starts = {round(p.start, 3) for p in vowels}
        assert all(round(a, 3) in starts for a, _ in utt.marks["notes"])
        longest = max(b - a for a, b in utt.marks["notes"])
        assert longest >= 0.5
        a, b = max(utt.marks["notes"], key=lambda n: n[1] - n[0])
        assert _db(utt.audio, *_middle(a, b)) > -40.0  # the held note sounds
    else:
        rate = len(vowels) / (vowels[-1].start - vowels[0].start)
        assert 3.0 <= rate <= 7.5  # rests at phrase ends slow the average a little
    again = ENGINES["mbrola"].synthesize(SENTENCE, "mbrola/us2", delivery=delivery, seed=5)
    assert again.phones == utt.phones and again.marks == utt.marks


def test_unsupported_settings_raise_value_error() -> None:
    espeak = _engine("espeak-ng")
    with pytest.raises(ValueError):
        espeak.synthesize("Hello.", "espeak-ng/en-us", delivery="song")
    with pytest.raises(ValueError):
        _engine("mbrola").synthesize("Hello.", "mbrola/us1", delivery="yodel")
    with pytest.raises(ValueError):
        espeak.synthesize("Hello.", "espeak-ng/en-us", rate=5.0)
    with pytest.raises(ValueError):
        espeak.synthesize("Hello.", "mbrola/us1")


def test_pocketsphinx_alignment_agrees_with_exact_timings() -> None:
    """The aligner used for pico, checked on a voice whose timings are exact."""
    if not aligner.available():
        pytest.skip("pocketsphinx is not installed (pip install pocketsphinx)")
    exact = _speak("mbrola/us2")
    errors = np.abs(start_errors_ms(exact, aligner.align(exact.audio, exact.text)))
    assert errors.size >= 0.8 * sum(p.label != "SIL" for p in exact.phones)
    assert np.median(errors) <= 20.0 and np.mean(errors <= 40.0) >= 0.8


# --- phone tables, timeline, text, pho ---------------------------------------------------


def test_espeak_ipa_maps_diphthongs_length_stress_and_syllabics() -> None:
    assert espeak_ipa("aɪ") == ("AY",)
    assert espeak_ipa("ˈiː") == ("IY",)
    assert espeak_ipa("oːɹ") == ("AO", "R")
    assert espeak_ipa("aɪɚ") == ("AY", "ER")
    assert espeak_ipa("n̩") == ("AH", "N")
    assert espeak_ipa("əl") == ("AH", "L")
    assert espeak_ipa("a:") == ("AA",)
    assert espeak_ipa("") == ("SIL",)
    assert espeak_ipa("x") == ("K",)  # nearest English mouth shape, documented
    with pytest.raises(UnknownPhoneError):
        espeak_ipa("ʘ")


def test_engine_phone_sets() -> None:
    assert to_arpabet("mbrola-us", "p_h") == ("P",)
    assert to_arpabet("mbrola-us", "@U") == ("OW",)
    assert to_arpabet("mbrola-en1", "I@") == ("IH", "AH")
    assert to_arpabet("festival-radio", "pau") == ("SIL",)
    assert to_arpabet("festival-mrpa", "@@") == ("ER",)
    assert to_arpabet("flite-cmu", "axr") == ("ER",)
    assert to_arpabet("pocketsphinx", "+NSN+") == ("SIL",)
    with pytest.raises(UnknownPhoneError):
        to_arpabet("festival-radio", "qq")


def test_timeline_splits_multi_phones_and_keeps_every_millisecond() -> None:
    phones = phones_from_segments(
        [("", 0.0, 0.1), ("", 0.1, 0.2), ("oːɹ", 0.2, 0.5), ("p", 0.5, 0.8)], espeak_ipa, 0.7
    )
    assert [p.label for p in phones] == ["SIL", "AO", "R", "P"]
    assert phones[0].end == 0.2 and phones[1].end == pytest.approx(0.4)
    assert phones[-1].end == 0.7  # clipped to the audio


def test_speakable_writes_numbers_the_same_for_every_engine() -> None:
    assert speakable("In 1984, Bob paid $25 for 3.5 maps.") == (
        "In nineteen eighty four, Bob paid twenty five dollars for three point five maps."
    )
    assert speakable("We met on May 3, 2005 at 10:30!") == (
        "We met on May third, two thousand five at ten thirty!"
    )
    assert speakable('Dr. Bo said "hi" - 21st of 342.') == (
        "doctor Bo said hi, twenty first of three hundred forty two."
    )


def test_pho_round_trip_and_sung_notes() -> None:
    lines = parse_pho("_ 50\nb 65\nA 110 0 215 50 170 100 207\n; comment\n\n_ 100\n")
    assert [line.symbol for line in lines] == ["_", "b", "A", "_"]
    assert parse_pho(format_pho(lines))[2].pitch == lines[2].pitch
    sung = sing(lines, lambda s: s == "A", np.random.default_rng(0), notes=1)
    assert 400 <= sung[2].ms <= 1500 and len(sung[2].pitch) > 10
    assert sung[:2] == lines[:2] and isinstance(sung[2], PhoLine)


# --- sentences ---------------------------------------------------------------------------


def test_sentences_are_deterministic_and_varied() -> None:
    batch = sentences(3, 300)
    assert batch == sentences(3, 300)
    assert batch != sentences(4, 300)
    assert len(set(batch)) == 300
    lengths = [len(s.split()) for s in batch]
    assert min(lengths) >= 2 and max(lengths) <= 25 and np.std(lengths) > 4
    text = " ".join(batch)
    for mark in ("?", "!", ",", "$"):
        assert mark in text
    assert any(w.isdigit() and 1800 <= int(w) <= 2030 for w in text.replace(".", " ").split())
    assert any(month in text for month in ("January", "March", "May", "October"))
    words = text.lower().split()
    assert np.mean([any(c in w for c in "pbm") for w in words]) > 0.4  # bilabial-rich
