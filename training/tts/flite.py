"""flite: CMU's small synthesizer (diphone kal, clustergen awb/rms/slt) with -psdur timings.

``flite -psdur`` prints every segment with its end time in the generated wave
("pau:0.164 hh:0.255 ..."), the same segments the waveform was built from.

Voices: those ``flite -lv`` lists (kal, kal16, awb, rms, slt) except the limited-domain
awb_time, which can only say the time. kal speaks at 8 kHz (upsampled; no energy above 4
kHz), the others at 16 kHz.

Rate (0.4..3.0): the ``duration_stretch`` feature, the voice's default (1.1 for kal, 1.0
otherwise) divided by ``rate``. Pitch (0.5..2.0): the ``f0_shift`` feature, which
multiplies F0 (measured 1.5 -> x1.53 on kal, awb and slt); rms ignores it, so pitch != 1 is
a ValueError for rms. ``delivery`` other than speech: not supported (ValueError). ``seed``: unused.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from training.phoneset import FLITE_CMU, Labels, UnknownPhoneError
from training.tts.audio import read_wav, to_model_rate
from training.tts.base import TtsError, check_prosody, split_voice
from training.tts.process import have, run_tool, scratch_dir
from training.tts.text import speakable
from training.tts.timeline import phones_from_segments
from training.utterance import Utterance

RATES = (0.4, 3.0)
PITCHES = (0.5, 2.0)
_DEFAULT_STRETCH = {"kal": 1.1, "kal16": 1.1}
_NO_PITCH = frozenset({"rms"})
_LIMITED_DOMAIN = frozenset({"awb_time"})


class FliteEngine:
    name = "flite"

    def available(self) -> bool:
        return bool(self.voices())

    def voices(self) -> list[str]:
        return [f"{self.name}/{v}" for v in _listed_voices() if v not in _LIMITED_DOMAIN]

    def synthesize(
        self, text: str, voice: str, rate: float = 1.0, pitch: float = 1.0,
        delivery: str = "speech", seed: int = 0,
    ) -> Utterance:  # fmt: skip
        if delivery != "speech":
            raise ValueError(f"flite can only speak (delivery {delivery!r}); use mbrola voices")
        name = split_voice(self.name, voice)
        check_prosody(self.name, rate, pitch, rates=RATES,
                      pitches=None if name in _NO_PITCH else PITCHES)  # fmt: skip
        if voice not in self.voices():
            raise TtsError(f"flite has no voice {name!r}")
        spoken = speakable(text)
        features = []
        if rate != 1.0:
            features += ["--setf", f"duration_stretch={_DEFAULT_STRETCH.get(name, 1.0) / rate}"]
        if pitch != 1.0:
            features += ["--setf", f"f0_shift={pitch}"]
        with scratch_dir() as tmp:
            wav_path = Path(tmp) / "out.wav"
            result = run_tool(
                ["flite", "-voice", name, "-psdur", *features, "-t", spoken, "-o", wav_path]
            )
            samples, sample_rate = read_wav(wav_path)
        segments = parse_psdur(result.stdout.decode())
        seconds = len(samples) / sample_rate
        phones = phones_from_segments(segments, lambda s: _labels(name, s), seconds)
        return Utterance(
            audio=to_model_rate(samples, sample_rate), phones=phones, text=spoken,
            engine=self.name, voice=voice,
            meta={"rate": rate, "pitch": pitch, "timing": "exact"},
        )  # fmt: skip


def parse_psdur(text: str) -> list[tuple[str, float, float]]:
    """(phone, start, end) from ``-psdur`` output: "name:end" tokens, in order."""
    segments, start = [], 0.0
    for token in text.split():
        phone, sep, end_text = token.rpartition(":")
        if not sep or not phone:
            raise TtsError(f"unexpected flite -psdur token {token!r}")
        end = float(end_text)
        segments.append((phone, start, end))
        start = end
    if not segments:
        raise TtsError("flite printed no segments")
    return segments


@cache
def _listed_voices() -> tuple[str, ...]:
    if not have("flite"):
        return ()
    try:
        listing = run_tool(["flite", "-lv"], timeout=10).stdout.decode()
    except TtsError:
        return ()
    return tuple(listing.split(":", 1)[-1].split())


def _labels(voice: str, symbol: str) -> Labels:
    try:
        return FLITE_CMU[symbol]
    except KeyError:
        raise UnknownPhoneError(f"flite {voice} phone {symbol!r} has no ARPAbet mapping") from None
