"""SVOX pico (pico2wave): two natural-sounding voices, timed by forced alignment.

pico2wave prints no timings, so the phones come from pocketsphinx aligning the spoken
words to the audio (training/tts/aligner.py). Unlike the other engines these timings are
estimates: 10 ms frames, median boundary error about 9-10 ms and 80-85% within 20 ms on
natural-sounding voices whose true timings are known (``python -m training.tts.measure``),
so ``meta["timing"]`` is "aligned" rather than "exact".

Voices: pico/en-US (female, American) and pico/en-GB (female, British), 16 kHz.
Rate and pitch use pico's own markup, ``<speed level>`` and ``<pitch level>`` (100 = the
voice's own): rate 0.5..2.0 (pico does not shorten pauses, so speech at ``rate`` 1.5 is
about 1.3x shorter overall); pitch 0.5..2.0 multiplies F0 (measured 1.5 -> x1.51).
``delivery`` other than speech: not supported (ValueError). ``seed``: unused; pico is deterministic.
"""

from __future__ import annotations

from pathlib import Path

from training.phoneset import to_arpabet
from training.tts import aligner
from training.tts.audio import read_wav, to_model_rate
from training.tts.base import TtsError, check_prosody, split_voice
from training.tts.process import have, run_tool, scratch_dir
from training.tts.text import speakable
from training.tts.timeline import phones_from_segments
from training.utterance import SAMPLE_RATE, Utterance

LANG_DIR = Path("/usr/share/pico/lang")
LANGUAGES = ("en-US", "en-GB")
RATES = (0.5, 2.0)
PITCHES = (0.5, 2.0)


class PicoEngine:
    name = "pico"

    def available(self) -> bool:
        return bool(self.voices())

    def voices(self) -> list[str]:
        if not (have("pico2wave") and aligner.available()):
            return []
        return [f"{self.name}/{lang}" for lang in LANGUAGES
                if (LANG_DIR / f"{lang}_ta.bin").is_file()]  # fmt: skip

    def synthesize(
        self, text: str, voice: str, rate: float = 1.0, pitch: float = 1.0,
        delivery: str = "speech", seed: int = 0,
    ) -> Utterance:  # fmt: skip
        if delivery != "speech":
            raise ValueError(f"pico can only speak (delivery {delivery!r}); use mbrola voices")
        check_prosody(self.name, rate, pitch, rates=RATES, pitches=PITCHES)
        lang = split_voice(self.name, voice)
        if voice not in self.voices():
            raise TtsError(f"pico voice {lang!r} is not installed (or pocketsphinx is missing)")
        spoken = speakable(text)
        markup = spoken
        if pitch != 1.0:
            markup = f'<pitch level="{round(100 * pitch)}">{markup}</pitch>'
        if rate != 1.0:
            markup = f'<speed level="{round(100 * rate)}">{markup}</speed>'
        with scratch_dir() as tmp:
            wav_path = Path(tmp) / "out.wav"
            run_tool(["pico2wave", "-l", lang, "-w", wav_path, markup])
            samples, sample_rate = read_wav(wav_path)
        audio = to_model_rate(samples, sample_rate)
        segments = aligner.align(audio, spoken)
        phones = phones_from_segments(
            segments, lambda s: to_arpabet("pocketsphinx", s), len(audio) / SAMPLE_RATE
        )
        return Utterance(
            audio=audio, phones=phones, text=spoken, engine=self.name, voice=voice,
            meta={"rate": rate, "pitch": pitch, "timing": "aligned"},
        )  # fmt: skip
