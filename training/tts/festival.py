"""festival: diphone, MBROLA and HTS voices, with segment end times from the utterance.

One ``festival --batch`` run loads the voice, synthesizes, and saves each utterance's wave
and Segment relation (``utt.save.segs``: each segment's end time); ``synthesize_many``
puts several utterances in one run, since loading the voice costs as much as a sentence
(measured: 50-60x real time batched, 5-7x one per run, diphone voices). The segments are the
units the waveform was built from, so the timings are festival's own, not an alignment.

Voices: every directory under /usr/share/festival/voices/*/ (kal_diphone, rab_diphone, plus
ked_diphone, us1/us2/us3/en1_mbrola and cmu_us_slt_arctic_hts where installed) except
don_diphone, whose segment times do not match its audio (EXCLUDED); named
"festival/kal_diphone". Phone sets: radio (American voices) and mrpa (British). us3_mbrola
timings are shifted by the us3 database's 20 ms audio delay.

Rate (0.4..3.0): Duration_Stretch divided by ``rate``; HTS voices ignore Duration_Stretch,
so they get the HTS engine's ``-r`` speed option instead. Pitch (0.5..2.0): every F0 target
multiplied by ``pitch`` in a hook that runs before waveform synthesis; HTS voices predict
their own F0 and festival passes no pitch shift to them, so pitch != 1 is a ValueError
there. ``delivery``: speech only (ValueError otherwise). ``seed``: unused; festival is
deterministic.
"""

from __future__ import annotations

import re
from pathlib import Path

from training.phoneset import FESTIVAL_MRPA, FESTIVAL_RADIO, Labels, UnknownPhoneError
from training.tts.audio import read_wav, to_model_rate
from training.tts.base import TtsError, check_prosody, split_voice
from training.tts.process import have, run_tool, scratch_dir
from training.tts.text import speakable
from training.tts.timeline import phones_from_segments
from training.utterance import Utterance

VOICE_ROOT = Path("/usr/share/festival/voices")
RATES = (0.4, 3.0)
PITCHES = (0.5, 2.0)
TIMEOUT_S = 120.0
_PHONE_SETS: dict[str, dict[str, Labels]] = {"radio": FESTIVAL_RADIO, "mrpa": FESTIVAL_MRPA}
# Voices left out: don_diphone (festival's "minimal" example voice, 10 kHz) labels its
# segments far from its audio: phone starts 45 ms off on average against the pocketsphinx
# aligner (11-16 ms for the other diphone voices), with vowels labelled as stops.
EXCLUDED = frozenset({"don_diphone"})
# Audio that lags the segment times, as for MBROLA's us3 (training/tts/mbrola.py): +26 ms
# against the aligner, +30 ms by energy lag.
AUDIO_DELAY_S = {"us3_mbrola": 0.020}

_SETUP = """\
(voice_{voice})
(define (emote_scale_f0 utt)
  (mapcar (lambda (target) (item.set_feat target "f0" (* {pitch} (item.feat target "f0"))))
          (utt.relation.items utt 'Target))
  utt)
{prosody}"""
_UTTERANCE = """\
(set! emote_utt (utt.synth (Utterance Text "{text}")))
(utt.save.segs emote_utt "{segs}")
(utt.save.wave emote_utt "{wav}" 'riff)
"""
_REPORT = """\
(format t "phoneset=%s\\n" (cadr (assoc 'name (PhoneSet.description '(name)))))
"""
_STRETCH = """\
(Parameter.set 'Duration_Stretch
  (/ (if (Parameter.get 'Duration_Stretch) (Parameter.get 'Duration_Stretch) 1.0) {rate}))
"""
_HTS_SPEED = '(set! hts_engine_params (append hts_engine_params (list (list "-r" {rate}))))\n'
_PITCH_HOOK = "(set! after_analysis_hooks (list emote_scale_f0))\n"


def is_hts(voice: str) -> bool:
    return voice.endswith("_hts")


class FestivalEngine:
    name = "festival"

    def available(self) -> bool:
        return bool(self.voices())

    def voices(self) -> list[str]:
        if not have("festival") or not VOICE_ROOT.is_dir():
            return []
        names = sorted(
            d.name for group in VOICE_ROOT.iterdir() if group.is_dir()
            for d in group.iterdir() if (d / "festvox").is_dir() and d.name not in EXCLUDED
        )  # fmt: skip
        return [f"{self.name}/{n}" for n in names]

    def synthesize(
        self, text: str, voice: str, rate: float = 1.0, pitch: float = 1.0,
        delivery: str = "speech", seed: int = 0,
    ) -> Utterance:  # fmt: skip
        if delivery != "speech":
            raise ValueError(f"festival can only speak (delivery {delivery!r}); use mbrola voices")
        return self.synthesize_many([text], voice, rate, pitch)[0]

    def synthesize_many(
        self, texts: list[str], voice: str, rate: float = 1.0, pitch: float = 1.0
    ) -> list[Utterance]:
        """Several utterances in one festival run: loading a voice costs 0.2-1 s, about as
        much as synthesizing a sentence, so corpus builds should batch. One failure fails
        the batch (TtsError); retry its texts one by one to find the culprit."""
        name = split_voice(self.name, voice)
        check_prosody(self.name, rate, pitch, rates=RATES,
                      pitches=None if is_hts(name) else PITCHES)  # fmt: skip
        if voice not in self.voices():
            raise TtsError(f"festival voice {name!r} is not installed")
        spoken = [speakable(text) for text in texts]
        prosody = ""
        if rate != 1.0:
            prosody += (_HTS_SPEED if is_hts(name) else _STRETCH).format(rate=rate)
        if pitch != 1.0:
            prosody += _PITCH_HOOK
        with scratch_dir() as tmp:
            paths = [(Path(tmp) / f"{i}.segs", Path(tmp) / f"{i}.wav") for i in range(len(texts))]
            script = _SETUP.format(voice=name, pitch=pitch, prosody=prosody) + "".join(
                _UTTERANCE.format(text=_scheme_string(t), segs=segs, wav=wav)
                for t, (segs, wav) in zip(spoken, paths, strict=True)
            ) + _REPORT  # fmt: skip
            (Path(tmp) / "run.scm").write_text(script)
            result = run_tool(["festival", "--batch", Path(tmp) / "run.scm"],
                              timeout=TIMEOUT_S + 10.0 * len(texts))  # fmt: skip
            output = result.stdout.decode(errors="replace")
            if "SIOD ERROR" in output or not all(s.is_file() and w.is_file() for s, w in paths):
                raise TtsError(f"festival {name} failed: {output.strip()[-500:]}")
            table = _phone_set(output, name)
            delay = AUDIO_DELAY_S.get(name, 0.0)
            utterances = []
            for text, (segs_path, wav_path) in zip(spoken, paths, strict=True):
                samples, sample_rate = read_wav(wav_path)
                segments = [
                    (p, s + delay, e + delay) for p, s, e in parse_segs(segs_path.read_text())
                ]
                phones = phones_from_segments(
                    segments, lambda s: _labels(table, name, s), len(samples) / sample_rate
                )
                utterances.append(Utterance(
                    audio=to_model_rate(samples, sample_rate), phones=phones, text=text,
                    engine=self.name, voice=voice,
                    meta={"rate": rate, "pitch": pitch, "timing": "exact"},
                ))  # fmt: skip
        return utterances


def parse_segs(text: str) -> list[tuple[str, float, float]]:
    """(phone, start, end) from ``utt.save.segs`` output: a ``#`` line, then
    ``end_time 100 name`` per segment; each segment starts where the previous one ended.
    (mrpa's silence is also called ``#``, so only a line that is just ``#`` is the header.)"""
    lines = text.splitlines()
    stripped = [line.strip() for line in lines]
    if "#" in stripped:
        lines = lines[stripped.index("#") + 1 :]
    segments, start = [], 0.0
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise TtsError(f"unexpected festival segment line {line!r}")
        end = float(parts[0])
        segments.append((parts[2], start, end))
        start = end
    return segments


def _phone_set(output: str, voice: str) -> dict[str, Labels]:
    match = re.search(r"phoneset=(\S+)", output)
    if not match or match.group(1) not in _PHONE_SETS:
        raise TtsError(f"festival voice {voice} uses an unknown phone set: {output[-200:]!r}")
    return _PHONE_SETS[match.group(1)]


def _labels(table: dict[str, Labels], voice: str, symbol: str) -> Labels:
    try:
        return table[symbol]
    except KeyError:
        raise UnknownPhoneError(
            f"festival {voice} phone {symbol!r} has no ARPAbet mapping"
        ) from None


def _scheme_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
