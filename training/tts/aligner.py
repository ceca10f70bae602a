"""Forced phone alignment with pocketsphinx 5, for engines that print no timings (pico).

pocketsphinx's bundled US English acoustic model and CMU dictionary align a known word
sequence to audio in two passes: a word-level pass (``set_align_text``) and a phone-level
pass over the same audio (``set_alignment``), with ``bestpath=False`` (lattice rescoring
serves recognition, not a forced word sequence). Synthetic voices sit far from the
model's training speech, so the beams are much wider than the defaults (which often fail
to reach the end of the sentence); if a pass still fails, it is retried once with wider
beams on a fresh decoder. Cepstral mean normalisation is per utterance (``cmn=batch``) so
results do not depend on what was aligned before.

Words the dictionary lacks get espeak-ng's pronunciation (its IPA mapped to ARPAbet).
A decoder is cached per process and is not thread-safe: parallelise with processes.

Accuracy, measured against voices whose timings are exact (``python -m training.tts.measure
--sentences 12``, 3100 phone starts): on recorded-diphone and statistical voices (MBROLA
us1/us2/en1, festival kal, flite slt/awb) median error 8-10 ms, mean 11-15 ms, 80-85% within
20 ms, bias -8..+7 ms; on espeak-ng's formant voices, furthest from human speech, median
12-13 ms but mean 19-29 ms (occasional 50-100 ms misses around pauses). Frames are 10 ms.
"""

from __future__ import annotations

import importlib.util
from functools import cache

import numpy as np

from training.phoneset import espeak_ipa
from training.tts.base import TtsError
from training.tts.text import words
from training.utterance import SAMPLE_RATE

FRAMES_PER_SECOND = 100
_BEAMS = (1e-100, 1e-200)


def available() -> bool:
    return importlib.util.find_spec("pocketsphinx") is not None


class PhoneAligner:
    """A reusable pocketsphinx decoder set up for forced alignment."""

    def __init__(self, beam: float = _BEAMS[0]) -> None:
        try:
            import pocketsphinx
        except ImportError as exc:
            raise TtsError("pocketsphinx is not installed (pip install pocketsphinx)") from exc
        self._decoder = pocketsphinx.Decoder(
            samprate=SAMPLE_RATE, bestpath=False, lm=None, cmn="batch", loglevel="FATAL",
            beam=beam, pbeam=beam, wbeam=beam,
        )  # fmt: skip

    def align(self, audio: np.ndarray, text: str) -> list[tuple[str, float, float]]:
        """(ARPAbet phone or SIL, start s, end s) for ``text`` spoken in 16 kHz ``audio``."""
        word_list = words(text)
        if not word_list:
            raise TtsError("nothing to align")
        for word in word_list:
            if self._decoder.lookup_word(word) is None:
                self._decoder.add_word(word, " ".join(pronounce(word)), True)
        pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16).tobytes()
        self._decoder.set_align_text(" ".join(word_list))
        self._decode(pcm)
        if self._decoder.hyp() is None:
            raise TtsError("pocketsphinx could not align the words to the audio")
        self._decoder.set_alignment()
        self._decode(pcm)
        alignment = self._decoder.get_alignment()
        if alignment is None:
            raise TtsError("pocketsphinx produced no phone alignment")
        seconds = len(audio) / SAMPLE_RATE
        segments = []
        for word in alignment:
            for phone in word:
                start = phone.start / FRAMES_PER_SECOND
                end = min((phone.start + phone.duration) / FRAMES_PER_SECOND, seconds)
                segments.append((phone.name, start, end))
        return segments

    def _decode(self, pcm: bytes) -> None:
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, full_utt=True)
        self._decoder.end_utt()


def align(audio: np.ndarray, text: str) -> list[tuple[str, float, float]]:
    """Align with this process's shared decoder; retry once with wider beams."""
    try:
        return _aligner(_BEAMS[0]).align(audio, text)
    except (TtsError, RuntimeError):
        _aligner.cache_clear()  # a failed search can leave the decoder in a bad state
    try:
        return _aligner(_BEAMS[1]).align(audio, text)
    except RuntimeError as exc:
        raise TtsError(f"pocketsphinx alignment failed: {exc}") from exc


@cache
def _aligner(beam: float) -> PhoneAligner:
    return PhoneAligner(beam)


@cache
def pronounce(word: str) -> tuple[str, ...]:
    """ARPAbet pronunciation from espeak-ng (en-us) for a word the dictionary lacks."""
    from training.tts.espeak_lib import library  # only needed for out-of-dictionary words

    raw = library().synthesize(word, "gmw/en-US", 175, 50)
    labels = tuple(
        label for _, name in raw.phonemes for label in espeak_ipa(name) if label != "SIL"
    )
    if not labels:
        raise TtsError(f"no pronunciation for {word!r}")
    return labels
