"""One synthesized utterance: audio plus the exact phone timings that produced it.

Every TTS engine wrapper returns these; the viseme model turns ``phones`` into motion
targets; augmentation changes ``audio`` (and, for tempo or held vowels, the timings).
Phone labels are ARPAbet without stress digits (``AA``, ``P``, ``SIL`` ...), the labels of
the reference alignments in ../shared/assets/speech, so training and evaluation share
one viseme model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from contracts.phones import ARPABET, Phone, check_phone

__all__ = ["ARPABET", "SAMPLE_RATE", "Phone", "Utterance"]

SAMPLE_RATE = 16_000


@dataclass
class Utterance:
    audio: np.ndarray  # float32 mono at SAMPLE_RATE, in [-1, 1]
    phones: list[Phone]  # in time order, gaps allowed (read as silence)
    text: str
    engine: str  # "espeak-ng", "mbrola", "festival", "flite", "pico"
    voice: str  # engine-qualified voice name, e.g. "espeak-ng/en-us+m3"
    meta: dict[str, object] = field(default_factory=dict)  # augmentation applied, etc.
    # Time marks (s) that move with the phones: "notes" (sung vowels), "breaths" (audible
    # in-breaths between sung phrases), "beats" (the accompaniment's beats, start == end).
    marks: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    # The voice alone, sample-aligned with ``audio``, once accompaniment is mixed in
    # (training/music.py): prosody is read from it, not from the mix.
    vocals: np.ndarray | None = None

    def __post_init__(self) -> None:
        for phone in self.phones:  # every engine's phones are ARPAbet with positive length
            check_phone(phone)

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    @property
    def dry(self) -> np.ndarray:
        """The voice without accompaniment (the audio itself when there is none)."""
        return self.audio if self.vocals is None else self.vocals

    def marks_scaled(
        self, scale: float, shift: float = 0.0
    ) -> dict[str, list[tuple[float, float]]]:
        """``marks`` with every time t mapped to t * scale + shift."""
        return {
            key: [(a * scale + shift, b * scale + shift) for a, b in spans]
            for key, spans in self.marks.items()
        }
