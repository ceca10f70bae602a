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

SAMPLE_RATE = 16_000

# The 39 CMU/ARPAbet phones plus silence.
ARPABET: tuple[str, ...] = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G",
    "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T",
    "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH", "SIL",
)  # fmt: skip


@dataclass(frozen=True)
class Phone:
    label: str  # one of ARPABET
    start: float  # seconds from the start of the audio
    end: float

    def __post_init__(self) -> None:
        if self.label not in ARPABET:
            raise ValueError(f"unknown phone {self.label!r}")
        if not self.end > self.start >= 0.0:
            raise ValueError(f"bad phone timing {self.start}..{self.end}")


@dataclass
class Utterance:
    audio: np.ndarray  # float32 mono at SAMPLE_RATE, in [-1, 1]
    phones: list[Phone]  # in time order, gaps allowed (read as silence)
    text: str
    engine: str  # "espeak-ng", "mbrola", "festival", "flite", "pico"
    voice: str  # engine-qualified voice name, e.g. "espeak-ng/en-us+m3"
    meta: dict[str, object] = field(default_factory=dict)  # augmentation applied, etc.

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE
