"""espeak-ng through libespeak-ng: formant speech with phone timings from the synthesizer.

Voices: the eight English accents espeak-ng ships (en-gb, en-us, en-gb-scotland,
en-gb-x-rp, en-gb-x-gbclan, en-gb-x-gbcwmd, en-029, en-us-nyc), each plain and with every
voice variant in espeak-ng-data/voices/!v (m1..m8, f1..f5, klatt*, whisper, croak ...): about
800 voices, named "espeak-ng/en-us+m3". Variant names with spaces are left out.

Timings: each phone starts at its phoneme event's sample (exact). One correction: espeak
emits the event of a voiceless stop or affricate (p t k tʃ) at the burst, after a closure
it renders as silence at the end of the previous phone. The lips (for p) close at the
start of that silence, so the phone is moved back over the quiet run (18 dB under the
previous phone's peak; the echo of f3-like variants keeps it from being digital zero)
before the event, never more than 80% of the previous phone, and never into a pause.

Rate: espeak's words per minute, 175 x ``rate`` (0.46..2.57: espeak's 80..450 wpm; above
450 it time-compresses the audio and the events no longer match). Pitch: espeak's pitch
parameter, converted from the F0 ratio with a table measured on en-us, en-us+f3, en-gb and
klatt voices (median F0 over a sentence, within about 3%); 0.8..1.65. ``delivery``:
speech only (ValueError otherwise). ``seed``: unused; espeak is deterministic.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from training.phoneset import espeak_ipa
from training.tts.audio import to_model_rate
from training.tts.base import TtsError, check_prosody, split_voice
from training.tts.espeak_lib import EspeakLibrary, RawSynthesis, library
from training.tts.text import speakable
from training.tts.timeline import phones_from_segments
from training.utterance import Utterance

DEFAULT_WPM = 175
RATES = (80 / DEFAULT_WPM, 450 / DEFAULT_WPM)
# (espeak pitch parameter, median F0 relative to pitch 50), measured; see module docstring.
_PITCH_TABLE = ((20, 0.79), (30, 0.84), (40, 0.91), (50, 1.0), (60, 1.10), (70, 1.21),
                (80, 1.35), (90, 1.51), (100, 1.67))  # fmt: skip
PITCHES = (0.8, 1.65)
_BURST_PHONEMES = frozenset(("p", "t", "k", "tʃ", "t̪"))
_MAX_CLOSURE_SHARE = 0.8
_SILENCE_RMS = 10 ** (-50 / 20)
_CLOSURE_DROP = 10 ** (-18 / 20)
_MIN_CLOSURE_S = 0.01


def espeak_pitch(ratio: float) -> int:
    """espeak's pitch parameter for an F0 ratio, interpolating _PITCH_TABLE in log F0."""
    logs = [math.log(r) for _, r in _PITCH_TABLE]
    params = [p for p, _ in _PITCH_TABLE]
    return round(float(np.interp(math.log(ratio), logs, params)))


class EspeakEngine:
    name = "espeak-ng"

    def available(self) -> bool:
        return bool(self.voices())

    def voices(self) -> list[str]:
        return [f"{self.name}/{voice}" for voice in sorted(self._voice_ids())]

    @cache  # noqa: B019 (one engine object per process; the voice list never changes)
    def _voice_ids(self) -> dict[str, str]:
        """{"en-us+m3": "gmw/en-US+m3", ...}: our names -> espeak's voice identifiers."""
        try:
            lib = library()
        except TtsError:
            return {}
        accents = _english_accents(lib)
        variants_dir = lib.data_dir / "voices" / "!v"
        variants = sorted(
            p.name for p in variants_dir.iterdir() if p.is_file() and " " not in p.name
        ) if variants_dir.is_dir() else []  # fmt: skip
        ids = {}
        for language, identifier in accents.items():
            ids[language] = identifier
            for variant in variants:
                ids[f"{language}+{variant}"] = f"{identifier}+{variant}"
        return ids

    def synthesize(
        self, text: str, voice: str, rate: float = 1.0, pitch: float = 1.0,
        delivery: str = "speech", seed: int = 0,
    ) -> Utterance:  # fmt: skip
        if delivery != "speech":
            raise ValueError(f"espeak-ng can only speak (delivery {delivery!r}); use mbrola voices")
        check_prosody(self.name, rate, pitch, rates=RATES, pitches=PITCHES)
        name = split_voice(self.name, voice)
        identifier = self._voice_ids().get(name)
        if identifier is None:
            raise TtsError(f"espeak-ng has no voice {name!r}")
        spoken = speakable(text)
        raw = library().synthesize(
            spoken, identifier, round(DEFAULT_WPM * rate), espeak_pitch(pitch)
        )
        if raw.samples.size == 0 or not raw.phonemes:
            raise TtsError(f"espeak-ng produced no audio for {spoken!r}")
        seconds = raw.samples.size / raw.sample_rate
        phones = phones_from_segments(_segments(raw), espeak_ipa, seconds)
        audio = to_model_rate(raw.samples.astype(np.float32) / 32768.0, raw.sample_rate)
        return Utterance(
            audio=audio, phones=phones, text=spoken, engine=self.name, voice=voice,
            meta={"rate": rate, "pitch": pitch, "timing": "exact",
                  "espeak_version": library().version},
        )  # fmt: skip


def _english_accents(lib: EspeakLibrary) -> dict[str, str]:
    """{language: identifier} of espeak-ng's English voices (not its MBROLA ones)."""
    return {
        language: identifier
        for language, identifier in lib.list_voices()
        if language.startswith("en") and not identifier.startswith("mb/")
    }


def _segments(raw: RawSynthesis) -> list[tuple[str, float, float]]:
    """(IPA, start s, end s) per phoneme event, corrected where the audio says otherwise."""
    starts = [sample for sample, _ in raw.phonemes] + [raw.samples.size]
    names = [name for _, name in raw.phonemes]
    for i in range(1, len(names)):
        if names[i] in _BURST_PHONEMES and names[i - 1] != "":
            starts[i] = _closure_onset(raw.samples, raw.sample_rate, starts[i - 1], starts[i])
    spans = [[name, starts[i], max(starts[i + 1], starts[i])] for i, name in enumerate(names)]
    spans = _drop_voiced_pauses(raw.samples, raw.sample_rate, spans)
    return [(name, start / raw.sample_rate, end / raw.sample_rate) for name, start, end in spans]


def _closure_onset(samples: np.ndarray, rate: int, previous_start: int, burst: int) -> int:
    """Where the stop's closure begins: the start of the quiet run that ends at ``burst``.

    Quiet means 18 dB below the previous phone's loudest 2.5 ms; not plain digital silence,
    because variants with echo (f3, klatt ...) fill the closure with a faint reverb tail.
    """
    window = max(1, rate // 400)
    floor = previous_start + math.ceil((burst - previous_start) * (1.0 - _MAX_CLOSURE_SHARE))
    span = samples[previous_start:burst].astype(np.float32)
    usable = (len(span) // window) * window
    if usable == 0:
        return burst
    # windows aligned to end at the burst, so the run is measured back from it
    frames = span[len(span) - usable :].reshape(-1, window)
    level = np.sqrt(np.mean(frames**2, axis=1))
    quiet = level < level.max() * _CLOSURE_DROP
    loud = np.flatnonzero(~quiet)
    first_quiet = int(loud[-1]) + 1 if loud.size else 0
    onset = burst - (len(level) - first_quiet) * window
    if burst - onset < _MIN_CLOSURE_S * rate:
        return burst
    return max(onset, floor)


def _drop_voiced_pauses(samples: np.ndarray, rate: int, spans: list[list]) -> list[list]:
    """Give short word-gap "pauses" that are not silent to their neighbours.

    Between two vowels ("three apples") espeak emits a pause event but keeps voicing: the
    next vowel's glottal onset. Such a pause (under 100 ms, no 5 ms window below -50 dBFS)
    is split at its quietest window between the phones on either side.
    """
    window = rate // 200
    kept: list[list] = []
    for i, span in enumerate(spans):
        name, start, end = span
        inner = bool(kept) and i < len(spans) - 1 and spans[i + 1][0] != ""
        if name == "" and inner and window <= end - start < rate // 10:
            frames = samples[start : end - (end - start) % window].astype(np.float32) / 32768.0
            rms = np.sqrt(np.mean(frames.reshape(-1, window) ** 2, axis=1))
            if rms.min() > _SILENCE_RMS:
                split = start + int(np.argmin(rms)) * window
                kept[-1][2] = split
                spans[i + 1][1] = split
                continue
        kept.append(span)
    return kept
