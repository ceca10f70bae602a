"""Engine segment lists -> the Utterance's ARPAbet phone list, without losing time.

Engines report (symbol, start, end) in seconds. This maps each symbol through a phone set
(training/phoneset.py), shares a multi-label symbol's time among its labels, clips to the
audio, merges runs of silence and checks the result is ordered and non-overlapping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from contracts.phones import Phone
from training.phoneset import Labels
from training.tts.base import TtsError
from training.utterance import SAMPLE_RATE

VOWELS = frozenset(
    ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW")
)
# Share of a multi-label symbol's time per label: a vowel lasts about twice as long as the
# consonant or glide around it (AO R in "four", AY ER in "fire", AH N in "button").
_WEIGHT_VOWEL = 2.0
_WEIGHT_OTHER = 1.0
_EPS = 1e-6
MIN_PHONE_S = 1.0 / SAMPLE_RATE

Segment = tuple[str, float, float]


def split_labels(labels: Labels, start: float, end: float) -> list[tuple[str, float, float]]:
    """Share [start, end) among ``labels`` in proportion to their weights."""
    weights = [_WEIGHT_VOWEL if label in VOWELS else _WEIGHT_OTHER for label in labels]
    total = sum(weights)
    pieces: list[tuple[str, float, float]] = []
    t = start
    for i, (label, weight) in enumerate(zip(labels, weights, strict=True)):
        t_end = end if i == len(labels) - 1 else t + (end - start) * weight / total
        pieces.append((label, t, t_end))
        t = t_end
    return pieces


def phones_from_segments(
    segments: Iterable[Segment], to_labels: Callable[[str], Labels], seconds: float
) -> list[Phone]:
    """ARPAbet phones for engine segments on audio ``seconds`` long.

    Segments past the end of the audio are clipped (engines pad or trim a few ms); a piece
    shorter than one sample joins its predecessor so no time goes unlabelled; adjacent
    silences merge. Raises TtsError if segments go back in time, which means the engine's
    output was misread.
    """
    pieces: list[list] = []  # [label, start, end]
    for symbol, start, end in segments:
        if end < start - _EPS:
            raise TtsError(f"segment {symbol!r} ends before it starts ({start}..{end})")
        for label, p_start, p_end in split_labels(to_labels(symbol), start, end):
            p_start, p_end = max(p_start, 0.0), min(p_end, seconds)
            if p_end - p_start <= _EPS:
                continue
            if pieces and p_start < pieces[-1][2] - 1e-4:
                raise TtsError(f"segment {symbol!r} at {p_start:.4f} s overlaps its predecessor")
            if pieces:
                p_start = max(p_start, pieces[-1][2])
            if pieces and (
                p_end - p_start < MIN_PHONE_S
                or (label == "SIL" and pieces[-1][0] == "SIL" and p_start - pieces[-1][2] < _EPS)
            ):
                pieces[-1][2] = p_end
                continue
            pieces.append([label, p_start, p_end])
    return [Phone(label, start, end) for label, start, end in pieces if end > start]
