"""Text to speech for text input (`POST /api/sessions/{id}/say`, `emote render --text`):
the offline engines that `scripts/install_tts.sh` installs for training, run one sentence at a
time so that speech can start after the first sentence is made.

Voices (``VOICES``): SVOX Pico (``pico2wave``: en-US, en-GB), flite (slt, kal, awb, rms) and
espeak-ng (en-us). ``voices()`` lists the ones installed here; the default is the first
of ``DEFAULT_ORDER`` installed. The text goes to the engine as one argument, never through a
shell, and none of these engines reads markup from it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import unicodedata
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

from engines.audio_io import AudioChunk, iter_audio

MAX_TEXT = 2000  # characters of one request
MAX_SENTENCE = 400  # a longer sentence is cut at spaces into pieces of at most this
SYNTH_TIMEOUT_S = 20.0


class TtsError(ValueError):
    """Text or voice that cannot be spoken; the message is one line for the user."""


@dataclass(frozen=True)
class Voice:
    name: str
    program: str  # the executable it needs
    engine: str
    language: str


VOICES: dict[str, Voice] = {
    v.name: v
    for v in (
        Voice("pico-en-US", "pico2wave", "SVOX Pico", "en-US"),
        Voice("pico-en-GB", "pico2wave", "SVOX Pico", "en-GB"),
        Voice("flite-slt", "flite", "flite", "en-US"),
        Voice("flite-kal", "flite", "flite", "en-US"),
        Voice("flite-awb", "flite", "flite", "en-GB (Scottish)"),
        Voice("flite-rms", "flite", "flite", "en-US"),
        Voice("espeak-en-us", "espeak-ng", "espeak-ng", "en-US"),
    )
}
DEFAULT_ORDER = ("pico-en-US", "flite-slt", "espeak-en-us")


def voices() -> list[str]:
    """The voices whose engine is installed on this machine."""
    return [name for name, v in VOICES.items() if shutil.which(v.program)]


def default_voice() -> str | None:
    have = set(voices())
    return next((name for name in DEFAULT_ORDER if name in have), None)


def check(text: object, voice: object = None) -> tuple[str, str]:
    """(clean text, voice name), or ``TtsError`` saying what is wrong."""
    if not isinstance(text, str):
        raise TtsError("'text' must be a string")
    # control characters (an engine may read some as commands) become spaces
    clean = "".join(" " if unicodedata.category(c).startswith("C") else c for c in text)
    clean = " ".join(clean.split())
    if not clean:
        raise TtsError("'text' is empty")
    if len(clean) > MAX_TEXT:
        raise TtsError(f"'text' is longer than {MAX_TEXT} characters")
    if voice is None:
        chosen = default_voice()
        if chosen is None:
            raise TtsError(
                "no text-to-speech engine is installed here (bash scripts/install_tts.sh)"
            )
        return clean, chosen
    if not isinstance(voice, str) or voice not in VOICES:
        raise TtsError(f"unknown voice {str(voice)[:40]!r}; choose from {', '.join(VOICES)}")
    if voice not in voices():
        raise TtsError(f"voice {voice!r} needs {VOICES[voice].program}, not installed here")
    return clean, voice


def sentences(text: str) -> list[str]:
    """Sentences (at . ! ? ; : and line ends), long ones cut at spaces."""
    parts = [p.strip() for p in re.split(r"(?<=[.!?;:])\s+", text) if p.strip()]
    out: list[str] = []
    for part in parts:
        while len(part) > MAX_SENTENCE:
            cut = part.rfind(" ", 0, MAX_SENTENCE)
            cut = cut if cut > 0 else MAX_SENTENCE
            out.append(part[:cut])
            part = part[cut:].strip()
        if part:
            out.append(part)
    return out


def synthesize(sentence: str, voice: str, wav: Path) -> None:
    """One sentence into ``wav`` with ``voice``'s engine."""
    v = VOICES[voice]
    if v.program == "pico2wave":
        cmd = ["pico2wave", "-l", v.language, "-w", str(wav), sentence]
    elif v.program == "flite":
        cmd = ["flite", "-voice", voice.removeprefix("flite-"), "-t", sentence, "-o", str(wav)]
    else:
        cmd = ["espeak-ng", "-v", "en-us", "-w", str(wav), "--", sentence]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=SYNTH_TIMEOUT_S)
    except (subprocess.SubprocessError, OSError) as e:
        raise TtsError(f"{v.engine} failed on the text ({type(e).__name__})") from e


def to_wav(text: str, voice: str, path: Path) -> float:
    """``text`` spoken by ``voice`` into a 48 kHz 16-bit mono WAV at ``path``; seconds."""
    import wave

    import numpy as np

    from engines.audio_io import OUTPUT_RATE

    pcm = [chunk.output for chunk in speak(text, voice)]
    samples = np.concatenate(pcm) if pcm else np.zeros(0, np.float32)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(OUTPUT_RATE)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return len(samples) / OUTPUT_RATE


def speak(text: str, voice: str) -> Generator[AudioChunk]:
    """``text`` spoken by ``voice``, as the session's 20 ms chunks (16 kHz and 48 kHz),
    sentence by sentence: the first chunks come once the first sentence is made."""
    with tempfile.TemporaryDirectory(prefix="emote-tts-") as tmp:
        for i, sentence in enumerate(sentences(text)):
            wav = Path(tmp) / f"{i}.wav"
            synthesize(sentence, voice, wav)
            yield from iter_audio(wav)
            wav.unlink(missing_ok=True)
