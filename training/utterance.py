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

    def __post_init__(self) -> None:
        for phone in self.phones:  # every engine's phones are ARPAbet with positive length
            check_phone(phone)

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE
