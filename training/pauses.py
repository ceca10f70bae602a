"""Silence around an utterance: the long pauses a live session is mostly made of.

A synthesized sentence starts and ends within a few tens of milliseconds of its speech, so
the corpus had almost no window whose 405 ms of audio context is all silence. A live session
is full of them (a voice agent waiting for its turn, a presenter pausing), and there the
learned model's mouth drifted open with nothing in the audio to say so: on the live bench's
program (bursts of speech between 1.2-1.8 s silences) the jaw stood 0.36-0.73 open before 14
of 23 onsets (docs/benchmarks.md, "A mouth that stays shut in pauses"). Padding
utterances with silence (before music and augmentation, so a band plays on and room noise
fills it like the rest of the take) gives the model those windows, with the targets a pause
has: the mouth shut, blinks and breathing going on (training/visemes.py, prosody.py read
gaps as silence).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from training.utterance import SAMPLE_RATE, Phone, Utterance

PAUSE_PROBABILITY = 0.4  # of utterances
LEAD_PROBABILITY = 0.5  # of those: silence before the speech as well as after it
LEAD_S = (0.2, 1.5)
TAIL_S = (0.5, 2.5)
# Pauses *between* phrases, speech on both sides: the pauses of a talker, and of every pause
# the eval reads on real speech. A synthesized sentence has almost none (34 silences of
# >= 320 ms inside 1368 speech utterances of a 3 h corpus: docs/benchmarks.md, "Where the
# pause motion comes from"). Stretching one of its inner silences makes one
# (``CorpusConfig.inner_pause_probability``, 0.5 of speech; measured on two teacher seeds:
# docs/benchmarks.md, "Pauses between phrases in the corpus").
INNER_S = (0.3, 1.2)  # the stretched silence's length
INNER_MIN_S = 0.04  # the shortest gap between spoken phones that may be stretched


def pad_silence(utt: Utterance, lead_s: float, tail_s: float) -> Utterance:
    """``utt`` with ``lead_s`` of silence before it and ``tail_s`` after it: phones and time
    marks shifted by the lead (whole samples), the voice-only track padded alike."""
    lead, tail = round(lead_s * SAMPLE_RATE), round(tail_s * SAMPLE_RATE)
    if lead < 0 or tail < 0:
        raise ValueError("pauses cannot be negative")
    tailed = insert_silence(utt, len(utt.audio) / SAMPLE_RATE, tail_s)
    out = insert_silence(tailed, 0.0, lead_s)
    pauses = dict(utt.meta.get("pauses", {}) or {})  # type: ignore[call-overload]
    pauses |= {"lead_s": round(lead / SAMPLE_RATE, 4), "tail_s": tail / SAMPLE_RATE}
    return dataclasses.replace(out, meta={**utt.meta, "pauses": pauses})


def with_pauses(utt: Utterance, rng: np.random.Generator) -> Utterance:
    """``utt`` padded with silence on ``PAUSE_PROBABILITY`` of draws (seeded by ``rng``)."""
    if rng.random() >= PAUSE_PROBABILITY:
        return utt
    lead = float(rng.uniform(*LEAD_S)) if rng.random() < LEAD_PROBABILITY else 0.0
    return pad_silence(utt, lead, float(rng.uniform(*TAIL_S)))


def inner_silences(utt: Utterance) -> list[tuple[float, float]]:
    """(start, end) in seconds of the silences between consecutive spoken phones (SIL phones
    and gaps are both silence) of at least ``INNER_MIN_S``: pauses with speech on both
    sides."""
    spoken = [p for p in utt.phones if p.label != "SIL"]
    pairs = itertools.pairwise(spoken)
    return [(a.end, b.start) for a, b in pairs if b.start - a.end >= INNER_MIN_S]


def insert_silence(utt: Utterance, at: float, seconds: float) -> Utterance:
    """``utt`` with ``seconds`` of silence inserted at ``at`` (s, to the sample): the audio
    and the voice-only track split there, phones and time marks after it shifted, one that
    spans it lengthened."""
    cut = round(at * SAMPLE_RATE)
    n = round(seconds * SAMPLE_RATE)
    if not 0 <= cut <= len(utt.audio) or n < 0:
        raise ValueError(f"cannot insert {seconds} s of silence at {at} s")
    at, shift = cut / SAMPLE_RATE, n / SAMPLE_RATE

    def split(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        return np.concatenate([x[:cut], np.zeros(n, np.float32), x[cut:]])

    def span(a: float, b: float) -> tuple[float, float]:
        if a >= at:  # after the point: moved whole
            return a + shift, b + shift
        return a, (b + shift if b > at else b)  # spanning it: lengthened

    phones = [Phone(p.label, *span(p.start, p.end)) for p in utt.phones]
    marks = {key: [span(a, b) for a, b in spans] for key, spans in utt.marks.items()}
    return dataclasses.replace(
        utt,
        audio=split(utt.audio),
        phones=phones,
        marks=marks,
        vocals=None if utt.vocals is None else split(utt.vocals),
    )


def with_inner_pause(utt: Utterance, rng: np.random.Generator, probability: float) -> Utterance:
    """On ``probability`` of draws (seeded by ``rng``), one inner silence of ``utt`` (drawn
    among ``inner_silences``) stretched to a length drawn from ``INNER_S``, in its middle;
    ``utt`` itself when it has none or the draw says no."""
    if probability <= 0.0 or rng.random() >= probability:
        return utt
    gaps = inner_silences(utt)
    if not gaps:
        return utt
    start, end = gaps[int(rng.integers(len(gaps)))]
    target = float(rng.uniform(*INNER_S))
    if target <= end - start:
        return utt
    out = insert_silence(utt, (start + end) / 2, target - (end - start))
    pauses = {"inner_at_s": round(start, 4), "inner_s": round(target, 4)}
    return dataclasses.replace(out, meta={**out.meta, "pauses": pauses})
