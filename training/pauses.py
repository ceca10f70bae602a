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

import numpy as np

from training.utterance import SAMPLE_RATE, Phone, Utterance

PAUSE_PROBABILITY = 0.4  # of utterances
LEAD_PROBABILITY = 0.5  # of those: silence before the speech as well as after it
LEAD_S = (0.2, 1.5)
TAIL_S = (0.5, 2.5)


def pad_silence(utt: Utterance, lead_s: float, tail_s: float) -> Utterance:
    """``utt`` with ``lead_s`` of silence before it and ``tail_s`` after it: phones and time
    marks shifted by the lead (whole samples), the voice-only track padded alike."""
    lead = round(lead_s * SAMPLE_RATE)
    tail = round(tail_s * SAMPLE_RATE)
    if lead < 0 or tail < 0:
        raise ValueError("pauses cannot be negative")
    shift = lead / SAMPLE_RATE

    def pad(x: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [np.zeros(lead, np.float32), np.asarray(x, np.float32), np.zeros(tail, np.float32)]
        )

    return dataclasses.replace(
        utt,
        audio=pad(utt.audio),
        phones=[Phone(p.label, p.start + shift, p.end + shift) for p in utt.phones],
        marks=utt.marks_scaled(1.0, shift),
        vocals=None if utt.vocals is None else pad(utt.vocals),
        meta={**utt.meta, "pauses": {"lead_s": round(shift, 4), "tail_s": tail / SAMPLE_RATE}},
    )


def with_pauses(utt: Utterance, rng: np.random.Generator) -> Utterance:
    """``utt`` padded with silence on ``PAUSE_PROBABILITY`` of draws (seeded by ``rng``)."""
    if rng.random() >= PAUSE_PROBABILITY:
        return utt
    lead = float(rng.uniform(*LEAD_S)) if rng.random() < LEAD_PROBABILITY else 0.0
    return pad_silence(utt, lead, float(rng.uniform(*TAIL_S)))
