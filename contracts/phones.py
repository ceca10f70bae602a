"""Phones: one label with its start and end in seconds, and the reference alignments.

The one ``Phone`` of the project: TTS wrappers emit them (training/tts), the viseme model
reads them (training/visemes.py), and the lip-sync measurements read the reference
alignments of real speech (``load_phones``: ../shared/assets/speech/*.phones.json and the
bundled clip). Labels are ARPAbet without stress digits plus ``SIL``; a ``Phone`` itself
checks nothing, a training ``Utterance`` checks its phones (training/utterance.py), since
the measurements also use pseudo-labels (``SP``, ``SPEECH``) for unaligned audio.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# The 39 CMU/ARPAbet phones plus silence.
ARPABET: tuple[str, ...] = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G",
    "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T",
    "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH", "SIL",
)  # fmt: skip


@dataclass(frozen=True)
class Phone:
    label: str
    start: float  # seconds from the start of the audio
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def check_phone(phone: Phone) -> None:
    """ValueError unless ``phone`` is an ARPAbet phone (or SIL) of positive length."""
    if phone.label not in ARPABET:
        raise ValueError(f"unknown phone {phone.label!r}")
    if not phone.end > phone.start >= 0.0:
        raise ValueError(f"bad phone timing {phone.start}..{phone.end}")


def load_phones(path: Path) -> list[Phone]:
    """A reference alignment (JSON: words with phones; b = begin s, d = duration s)."""
    words = json.loads(Path(path).read_text())["w"]
    return [Phone(p["t"].upper(), p["b"], p["b"] + p["d"]) for word in words for p in word["w"]]
