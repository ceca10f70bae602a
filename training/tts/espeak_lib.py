"""ctypes binding to libespeak-ng: synthesize in-process and collect phoneme events.

libespeak-ng reports, for every phoneme it generates, an ``espeakEVENT_PHONEME`` whose
``sample`` field is the phoneme's first sample in the output (at 22050 Hz), so phone
timings come straight from the synthesizer rather than from an aligner. Initialised with
``AUDIO_OUTPUT_SYNCHRONOUS`` the library calls our callback with audio blocks and events
during ``espeak_Synth``; with ``PHONEME_EVENTS | PHONEME_IPA`` the event names are IPA.

The library keeps global state, so one process-wide instance serves all callers behind a
lock; worker processes each load their own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.tts.base import TtsError

# speak_lib.h
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_PHONEME_IPA = 0x0002
INITIALIZE_DONT_EXIT = 0x8000
EVENT_LIST_TERMINATED = 0
EVENT_PHONEME = 7
CHARS_UTF8 = 1
PARAM_RATE = 1
PARAM_PITCH = 3
EE_OK = 0


class _EventId(ctypes.Union):
    _fields_ = (("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8))


class _Event(ctypes.Structure):
    _fields_ = (
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    )


class _Voice(ctypes.Structure):
    _fields_ = (
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),  # priority byte, language, NUL, ... NUL
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    )


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass
class RawSynthesis:
    """int16 samples at ``sample_rate`` and (first sample, IPA name) per phoneme event."""

    samples: np.ndarray
    sample_rate: int
    phonemes: list[tuple[int, str]]


class EspeakLibrary:
    """The loaded, initialised library. Use :func:`library` to get the shared instance."""

    def __init__(self) -> None:
        path = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self._lib = ctypes.CDLL(path)
        except OSError as exc:
            raise TtsError(f"libespeak-ng is not installed: {exc}") from exc
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_Initialize.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                                ctypes.c_int)  # fmt: skip
        self._lib.espeak_SetVoiceByName.argtypes = (ctypes.c_char_p,)
        self._lib.espeak_SetParameter.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int)
        self._lib.espeak_Synth.argtypes = (
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        )  # fmt: skip
        self._lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        self._lib.espeak_ListVoices.argtypes = (ctypes.c_void_p,)
        self._lib.espeak_Info.restype = ctypes.c_char_p
        self._lib.espeak_Info.argtypes = (ctypes.POINTER(ctypes.c_char_p),)
        options = INITIALIZE_PHONEME_EVENTS | INITIALIZE_PHONEME_IPA | INITIALIZE_DONT_EXIT
        self.sample_rate = self._lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, None, options)
        if self.sample_rate <= 0:
            raise TtsError("espeak_Initialize failed (espeak-ng-data missing?)")
        data_path = ctypes.c_char_p()
        self.version = (self._lib.espeak_Info(ctypes.byref(data_path)) or b"").decode()
        self.data_dir = Path((data_path.value or b"").decode())
        self._blocks: list[np.ndarray] = []
        self._phonemes: list[tuple[int, str]] = []
        self._callback = _SynthCallback(self._on_synth)  # keep a reference: C holds it
        self._lib.espeak_SetSynthCallback(self._callback)
        self.lock = threading.Lock()

    def _on_synth(self, wav, count: int, events) -> int:
        if count > 0:
            self._blocks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == EVENT_PHONEME:
                raw = bytes(event.id.string)  # up to 8 bytes, NUL-padded unless full
                # A name cut mid-character decodes to U+FFFD, which no phone table maps, so
                # the caller fails loudly (an exception here would vanish inside ctypes).
                name = raw.split(b"\0")[0].decode("utf-8", errors="replace")
                self._phonemes.append((event.sample, name))
            i += 1
        return 0  # continue synthesis

    def list_voices(self) -> list[tuple[str, str]]:
        """(main language, identifier) of every voice, e.g. ("en-us", "gmw/en-US")."""
        with self.lock:
            entries = self._lib.espeak_ListVoices(None)
            voices = []
            i = 0
            while entries[i]:
                entry = entries[i].contents
                languages = entry.languages or b"\0"
                voices.append((languages[1:].decode(), (entry.identifier or b"").decode()))
                i += 1
            return voices

    def synthesize(self, text: str, voice: str, words_per_minute: int, pitch: int) -> RawSynthesis:
        """Speak ``text`` with an espeak voice name ("en-us+m3"), rate in words per minute
        (80..450) and espeak pitch (0..100, 50 is the voice's own)."""
        with self.lock:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
                raise TtsError(f"espeak-ng has no voice {voice!r}")
            self._lib.espeak_SetParameter(PARAM_RATE, words_per_minute, 0)
            self._lib.espeak_SetParameter(PARAM_PITCH, pitch, 0)
            self._blocks, self._phonemes = [], []
            data = text.encode() + b"\0"
            status = self._lib.espeak_Synth(data, len(data), 0, 0, 0, CHARS_UTF8, None, None)
            if status != EE_OK:
                raise TtsError(f"espeak_Synth failed with status {status}")
            samples = np.concatenate(self._blocks) if self._blocks else np.zeros(0, np.int16)
            return RawSynthesis(samples, self.sample_rate, self._phonemes)


_library: EspeakLibrary | None = None
_library_lock = threading.Lock()


def library() -> EspeakLibrary:
    """The process-wide library, loaded and initialised on first use."""
    global _library
    with _library_lock:
        if _library is None:
            _library = EspeakLibrary()
        return _library
