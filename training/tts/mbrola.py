"""MBROLA diphone voices driven by espeak-ng: recorded human diphones, exact timings.

``espeak-ng -v mb-us1 --pho`` does the text analysis and writes a .pho file (phone,
duration, pitch points); ``mbrola`` renders it, each phone lasting exactly its duration
(measured: an 87-minute pho renders within 10 ms of the summed durations). So the timings
are the pho's running sums, and every prosody change is an edit of the pho:

* rate: durations / ``rate`` (0.4..3.0); pitch: pitch points x ``pitch`` (0.5..2.0);
* ``delivery``: "held": 1-3 vowels (chosen with ``seed``) held 400-1500 ms as sung notes,
  flat or slowly gliding, with vibrato; "song": the whole phrase sung to a melody on a beat
  grid with held phrase-final notes, melismas and in-breaths; "rap": syllables on an 80-140
  bpm grid at 4-7 a second (training/tts/pho.py). Song and rap return ``marks`` (notes,
  breaths, beats) with the utterance.

Voices: mbrola/us1 (female), us2, us3 (male; American) and en1 (male; British), each when
both its MBROLA database and espeak-ng's mb-* voice are installed; 16 kHz output.
espeak-ng writes a few symbols these databases lack (``l/``, us3's ``O2``); they are renamed
to the nearest symbol the database has. A missing diphone (us3 has a few, e.g. h-j) is
rendered by MBROLA as silence for that diphone; such warnings are kept in ``meta``. The
us3 database's audio lags its .pho by about 20 ms (measured two ways, see AUDIO_DELAY_S),
so us3 timings are shifted by that much.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from training.phoneset import MBROLA_EN1, MBROLA_US, Labels, UnknownPhoneError
from training.tts import pho
from training.tts.audio import read_wav, to_model_rate
from training.tts.base import DELIVERIES, TtsError, check_prosody, split_voice
from training.tts.process import have, run_tool, scratch_dir
from training.tts.text import speakable
from training.tts.timeline import VOWELS, phones_from_segments
from training.utterance import Utterance

DATABASE_DIR = Path("/usr/share/mbrola")
VOICES = ("us1", "us2", "us3", "en1")
RATES = (0.4, 3.0)
PITCHES = (0.5, 2.0)
_RENAME = {"l/": "l", "O2": "O"}
# us3's audio lags its .pho by about 20 ms: phone starts measured +23 ms by the pocketsphinx
# aligner (+0..+8 on us1, us2, en1) and +25 ms by energy lag (+5..+10 on the others).
AUDIO_DELAY_S = {"us3": 0.020}


def _table(voice: str) -> dict[str, Labels]:
    return MBROLA_EN1 if voice == "en1" else MBROLA_US


class MbrolaEngine:
    name = "mbrola"

    def available(self) -> bool:
        return bool(self.voices())

    def voices(self) -> list[str]:
        if not (have("mbrola") and have("espeak-ng")):
            return []
        return [f"{self.name}/{v}" for v in VOICES if self._database(v).is_file()
                and _espeak_has_voice(v)]  # fmt: skip

    @staticmethod
    def _database(voice: str) -> Path:
        return DATABASE_DIR / voice / voice

    def synthesize(
        self, text: str, voice: str, rate: float = 1.0, pitch: float = 1.0,
        delivery: str = "speech", seed: int = 0,
    ) -> Utterance:  # fmt: skip
        check_prosody(self.name, rate, pitch, rates=RATES, pitches=PITCHES)
        name = split_voice(self.name, voice)
        if name not in VOICES or not self._database(name).is_file():
            raise TtsError(f"MBROLA voice {name!r} is not installed")
        spoken = speakable(text)
        table = _table(name)
        written = run_tool(["espeak-ng", "-v", f"mb-{name}", "--pho", "-q", spoken])
        lines = pho.parse_pho(written.stdout.decode())
        if not lines:
            raise TtsError(f"espeak-ng wrote an empty pho for {spoken!r}")
        lines = [pho.PhoLine(_RENAME.get(line.symbol, line.symbol), line.ms, line.pitch)
                 for line in lines]  # fmt: skip
        lines = pho.scale(lines, rate, pitch)
        if delivery not in DELIVERIES:
            raise ValueError(f"unknown delivery {delivery!r}; choose from {DELIVERIES}")
        rng = np.random.default_rng(seed)
        marks: dict[str, list[tuple[float, float]]] = {}
        vowel = lambda s: _is_vowel(table, s)  # noqa: E731
        if delivery == "held":
            lines = pho.sing(lines, vowel, rng)
        elif delivery == "song":
            lines, marks = pho.song(lines, vowel, rng)
        elif delivery == "rap":
            lines, marks = pho.rap(lines, vowel, rng)
        with scratch_dir() as tmp:
            pho_path, wav_path = Path(tmp) / "in.pho", Path(tmp) / "out.wav"
            pho_path.write_text(pho.format_pho(lines))
            result = run_tool(["mbrola", "-e", self._database(name), pho_path, wav_path])
            samples, sample_rate = read_wav(wav_path)
        warnings = sorted({ln.strip() for ln in result.stderr.decode().splitlines() if ln.strip()})
        seconds = len(samples) / sample_rate
        segments, t = [], AUDIO_DELAY_S.get(name, 0.0)
        for line in lines:
            segments.append((line.symbol, t, t + line.ms / 1000.0))
            t += line.ms / 1000.0
        phones = phones_from_segments(segments, lambda s: _labels(table, name, s), seconds)
        return Utterance(
            audio=to_model_rate(samples, sample_rate), phones=phones, text=spoken,
            engine=self.name, voice=voice,
            marks=_shifted(marks, AUDIO_DELAY_S.get(name, 0.0)),
            meta={"rate": rate, "pitch": pitch, "delivery": delivery, "seed": seed,
                  "timing": "exact", "mbrola_warnings": warnings},
        )  # fmt: skip


def _labels(table: dict[str, Labels], voice: str, symbol: str) -> Labels:
    try:
        return table[symbol]
    except KeyError:
        raise UnknownPhoneError(f"MBROLA {voice} phone {symbol!r} has no ARPAbet mapping") from None


def _shifted(
    marks: dict[str, list[tuple[float, float]]], delay: float
) -> dict[str, list[tuple[float, float]]]:
    return {k: [(a + delay, b + delay) for a, b in spans] for k, spans in marks.items()}


def _is_vowel(table: dict[str, Labels], symbol: str) -> bool:
    labels = table.get(symbol, ())
    return bool(labels) and labels[0] in VOWELS


def _espeak_has_voice(voice: str) -> bool:
    return f"mb/mb-{voice}" in _espeak_mbrola_voices()


@cache
def _espeak_mbrola_voices() -> frozenset[str]:
    """espeak-ng's MBROLA voice files ("mb/mb-us1", ...), listed once per process."""
    try:
        listing = run_tool(["espeak-ng", "--voices=mb"], timeout=10).stdout.decode()
    except TtsError:
        return frozenset()
    return frozenset(word for word in listing.split() if word.startswith("mb/"))
