"""Mouth targets for sung notes and in-breaths, on top of the spoken targets (visemes.py).

A singer opens wider than a speaker on the same vowel, more the louder and the longer the
note, and holds it open to the note's end (vibrato moves the pitch, not the jaw); between
phrases the mouth opens a little to breathe in. The spoken targets already give each
vowel its height (AA low, IY high) and seal every p/b/m; this scales the jaw and the lower
lip inside each sung note (``marks["notes"]``) and opens the mouth in each in-breath
(``marks["breaths"]``), with smooth ramps inside the spans so the consonants around them
(and their closures) are untouched.
"""

from __future__ import annotations

import numpy as np

from contracts import motion_frame
from training import prosody
from training.utterance import SAMPLE_RATE

_I = motion_frame.INDEX
# A note's jaw gain: 1 + SING_GAIN * length * loudness (both 0..1), at most JAW_MAX.
SING_GAIN = (0.35, 0.7)  # drawn per utterance: how big a singer's mouth is
NOTE_FULL_S = 0.6  # notes this long get the full gain; shorter ones part of it
LOUD_DB = (-14.0, -2.0)  # the note's level re the utterance's loud level: none .. full gain
JAW_MAX = 0.92
RAMP_IN_S, RAMP_OUT_S = 0.08, 0.06
# An in-breath: the jaw drops a little and the lips part.
BREATH_JAW = (0.1, 0.2)
BREATH_LIPS = 0.12


def _window(t: np.ndarray, start: float, end: float, ramp_in: float, ramp_out: float) -> np.ndarray:
    """0..1: smoothstep up over ``ramp_in`` after ``start``, down over ``ramp_out`` before
    ``end``, zero outside."""
    span = max(end - start, 1e-6)
    up = np.clip((t - start) / min(ramp_in, span / 2), 0.0, 1.0)
    down = np.clip((end - t) / min(ramp_out, span / 2), 0.0, 1.0)
    w = np.minimum(up, down)
    return w * w * (3.0 - 2.0 * w)


def _level_db(audio: np.ndarray, start: float, end: float, loud: float) -> float:
    a = audio[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
    if a.size == 0:
        return -100.0
    return 10.0 * np.log10(float(np.mean(np.square(a, dtype=np.float64))) + 1e-12) - loud


def _loud_level(audio: np.ndarray) -> float:
    """The utterance's loud level: 95th percentile of its 40 ms frame levels (dB)."""
    n = len(audio) // prosody.SAMPLES_PER_FRAME
    return float(np.percentile(prosody.frame_energy_db(audio, n), 95)) if n else 0.0


def sung_motion(
    motion: np.ndarray,
    marks: dict[str, list[tuple[float, float]]],
    voice: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """``motion`` (n_frames, DIM) with sung notes opened and in-breaths shown; ``voice`` is
    the dry vocal (its note levels set the gain)."""
    out = np.array(motion, np.float64, copy=True)
    t = prosody.frame_times(len(out))
    gain = float(rng.uniform(*SING_GAIN))
    loud = _loud_level(voice)
    jaw = _I["jawOpen"]
    lower = [_I["mouthLowerDownLeft"], _I["mouthLowerDownRight"]]
    upper = [_I["mouthUpperUpLeft"], _I["mouthUpperUpRight"]]
    for start, end in marks.get("notes", []):
        length = min(1.0, (end - start) / NOTE_FULL_S)
        level = _level_db(voice, start, end, loud)
        loudness = float(np.clip((level - LOUD_DB[0]) / (LOUD_DB[1] - LOUD_DB[0]), 0.0, 1.0))
        g = 1.0 + gain * length * (0.4 + 0.6 * loudness)
        w = _window(t, start, end, RAMP_IN_S, RAMP_OUT_S)
        out[:, jaw] += w * (np.minimum(out[:, jaw] * g, JAW_MAX) - out[:, jaw])
        for i in lower:
            out[:, i] += w * (np.minimum(out[:, i] * (0.5 + 0.5 * g), 0.8) - out[:, i])
        for i in upper:
            out[:, i] += w * (np.minimum(out[:, i] * (0.5 + 0.5 * g), 0.6) - out[:, i])
    for start, end in marks.get("breaths", []):
        w = _window(t, start, end, 0.1, 0.1)
        opening = float(rng.uniform(*BREATH_JAW))
        out[:, jaw] = np.maximum(out[:, jaw], w * opening)
        for i in lower:
            out[:, i] = np.maximum(out[:, i], w * BREATH_LIPS)
        close = [_I["mouthClose"], _I["mouthPressLeft"], _I["mouthPressRight"]]
        out[:, close] *= (1.0 - w)[:, None]
    return motion_frame.clip(out).astype(motion.dtype)
