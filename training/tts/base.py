"""What every TTS engine wrapper offers, and the error it raises when the engine fails.

An engine turns text into an :class:`~training.utterance.Utterance`: 16 kHz float32 mono
audio plus ARPAbet phones whose times are exact for that audio, the ground truth that the
motion targets are built from. ``voices()`` names are engine-qualified ("mbrola/us1") so a
corpus manifest can hold voices of every engine side by side and hold whole voices out.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from training.utterance import Utterance

DELIVERIES = ("speech", "held", "song", "rap")


class TtsError(RuntimeError):
    """The engine is missing, crashed, timed out or produced output that cannot be used."""


@runtime_checkable
class TtsEngine(Protocol):
    name: str

    def available(self) -> bool:
        """Whether the engine's programs, libraries and at least one voice are installed."""
        ...

    def voices(self) -> list[str]:
        """Engine-qualified voice names, e.g. "espeak-ng/en-us+m3"; empty if unavailable."""
        ...

    def synthesize(
        self, text: str, voice: str, rate: float = 1.0, pitch: float = 1.0,
        delivery: str = "speech", seed: int = 0,
    ) -> Utterance:  # fmt: skip
        """Speak ``text``; ``rate`` > 1 is faster, ``pitch`` multiplies F0, ``delivery`` (one
        of DELIVERIES) speaks, holds some vowels as sung notes ("held"), sings the whole
        phrase to a melody ("song") or raps it on a beat ("rap"), choices drawn with
        ``seed``. Raises ValueError for a setting the engine cannot honour and TtsError when
        the engine fails."""
        ...


def check_prosody(
    engine: str, rate: float, pitch: float, *, rates: tuple[float, float],
    pitches: tuple[float, float] | None,
) -> None:  # fmt: skip
    """Reject rate/pitch outside what the engine can honour, rather than clamping silently.

    ``pitches`` None means the engine (or voice) cannot change pitch at all.
    """
    if not rates[0] <= rate <= rates[1]:
        raise ValueError(f"{engine}: rate {rate} outside {rates[0]}..{rates[1]}")
    if pitches is None:
        if pitch != 1.0:
            raise ValueError(f"{engine}: this voice cannot change pitch (got {pitch})")
    elif not pitches[0] <= pitch <= pitches[1]:
        raise ValueError(f"{engine}: pitch {pitch} outside {pitches[0]}..{pitches[1]}")


def split_voice(engine: str, voice: str) -> str:
    """The engine's own voice id from an engine-qualified name ("mbrola/us1" -> "us1")."""
    prefix = engine + "/"
    if not voice.startswith(prefix) or len(voice) == len(prefix):
        raise ValueError(f"{voice!r} is not a {engine} voice (expected '{prefix}<voice>')")
    return voice[len(prefix) :]
