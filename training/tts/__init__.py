"""Text-to-speech engines that give speech with exact (or aligned) phone timings.

``ENGINES`` maps engine names to wrappers; each follows :class:`TtsEngine`::

    from training.tts import ENGINES, available_engines
    engine = ENGINES["mbrola"]
    utt = engine.synthesize("Bob bought a map.", "mbrola/us1", rate=1.2, delivery="song", seed=7)

All engines speak the same normalised text (training/tts/text.py) and label phones in
ARPAbet (training/phoneset.py). Which engine supports which of rate, pitch and delivery is in
each module's docstring; an unsupported setting raises ValueError, an engine failure
TtsError. scripts/install_tts.sh installs every engine and voice used here.
"""

from __future__ import annotations

from training.tts.base import TtsEngine, TtsError
from training.tts.espeak import EspeakEngine
from training.tts.festival import FestivalEngine
from training.tts.flite import FliteEngine
from training.tts.mbrola import MbrolaEngine
from training.tts.pico import PicoEngine

ENGINES: dict[str, TtsEngine] = {
    engine.name: engine
    for engine in (EspeakEngine(), MbrolaEngine(), FestivalEngine(), FliteEngine(), PicoEngine())
}


def available_engines() -> list[TtsEngine]:
    """The engines installed on this machine, in ENGINES order."""
    return [engine for engine in ENGINES.values() if engine.available()]


def engine_for(voice: str) -> TtsEngine:
    """The engine of an engine-qualified voice name ("festival/kal_diphone")."""
    name = voice.split("/", 1)[0]
    if name not in ENGINES:
        raise ValueError(f"no engine {name!r} for voice {voice!r}")
    return ENGINES[name]


__all__ = ["ENGINES", "TtsEngine", "TtsError", "available_engines", "engine_for"]
