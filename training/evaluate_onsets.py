"""Speech onsets after silence, read from rendered frames (`emote eval`).

A voice agent speaks in bursts: silence, then a sentence that starts abruptly, often on a
consonant. The mouth should start to open for the first vowel, not before the sound and not
late, and stay shut through a p/b/m before it.

The program (``burst_program``): each real speech clip with a reference alignment
(../shared/assets/speech) is cut at word starts at least ``EVERY_S`` apart, and each piece
is played after ``SILENCE_S`` (1 s) of the recording's own room tone (its leading silence,
mirrored back and forth), so every burst starts at a word's first phone after a long pause.

Per burst, on the FaceMesh track of the rendered frames (the mouth: inner-lip gap over face
height, ``fill_nan``; frame k shows the audio [40k, 40k + 40) ms, read at its centre):

* the **closed level** is the median mouth over the frames of the pauses (from 200 ms after
  a pause starts to its end), the **open threshold** closed + ``OPEN_FRACTION`` x (p95 of
  the whole track - closed);
* the **mouth onset** is the centre of the first frame at or above the threshold from 300 ms
  before the burst's first vowel to 400 ms after it (none: "missed");
* ``error_ms`` = mouth onset - the first vowel's start (reference alignment); the target
  window is -60..+40 ms (lips may lead a little, as people's do);
* a **bilabial** (P, B, M) between the burst start and its first vowel is **shut** if every
  frame whose centre lies inside it reads below the threshold;
* **open in pauses**: the share of the pauses' frames (from 200 ms in) whose mouth is open
  by the bench's measure, i.e. at or above the 5th percentile of the whole track plus
  ``OPEN_FRACTION`` of the way to its 95th. The closed level above is the pauses' own
  median, so a mouth that hangs open in the pauses raises it and hides itself from the
  onset readings; this one does not (a mouth shut in the pauses reads ~0).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contracts.clock import FPS, SAMPLE_RATE
from contracts.phones import Phone
from measure.facemesh import FaceTrack
from measure.lipsync import BILABIALS, fill_nan
from training.prosody import VOWELS

EVERY_S = 1.6
SILENCE_S = 1.0
OPEN_FRACTION = 0.15
WINDOW_MS = (-60.0, 40.0)
SEARCH_S = (-0.3, 0.4)


@dataclass(frozen=True)
class Burst:
    start: float  # s in the program: the burst's first sample
    vowel: float  # s: its first vowel's start
    bilabials: tuple[tuple[float, float], ...]  # (start, end) s of p/b/m before that vowel


def _label(text: str) -> str:
    return text.upper().rstrip("012")


def read_words(path: Path) -> list[tuple[float, list[Phone]]]:
    """(start s, phones) of every word of a reference alignment (.phones.json), silences out."""
    data = json.loads(Path(path).read_text())
    words = []
    for word in data["w"]:
        phones = [
            Phone(_label(p["t"]), float(p["b"]), float(p["b"]) + float(p["d"]))
            for p in word.get("w", [])
            if float(p["d"]) > 0
        ]
        if phones and _label(word["t"]) not in ("<SIL>", "SIL", "<S>", "</S>"):
            words.append((float(word["b"]), phones))
    return words


def burst_program(
    clips: list[tuple[np.ndarray, list[tuple[float, list[Phone]]]]],
) -> tuple[np.ndarray, list[Burst], list[tuple[float, float]]]:
    """(audio, bursts, pauses) of the program built from (audio, words) clips (module
    docstring); pauses are (start, end) s."""
    pieces: list[np.ndarray] = []
    bursts: list[Burst] = []
    pauses: list[tuple[float, float]] = []
    t = 0.0
    for audio, words in clips:
        lead = max(int(min(words[0][0], 0.5) * SAMPLE_RATE) - 160, 160) if words else 160
        tone = audio[:lead]
        room = np.resize(np.concatenate([tone, tone[::-1]]), round(SILENCE_S * SAMPLE_RATE))
        cuts: list[int] = []
        for i, (start, _) in enumerate(words):
            if not cuts or start - words[cuts[-1]][0] >= EVERY_S:
                cuts.append(i)
        for n, i in enumerate(cuts):
            end_word = cuts[n + 1] if n + 1 < len(cuts) else len(words)
            a = round(words[i][0] * SAMPLE_RATE)
            last = words[end_word - 1][1][-1].end
            b = min(round(last * SAMPLE_RATE), len(audio))
            pieces += [room, audio[a:b]]
            pauses.append((t, t + SILENCE_S))
            t += SILENCE_S
            offset = t - words[i][0]
            phones = [p for _, ps in words[i:end_word] for p in ps]
            first = next((p for p in phones if p.label in VOWELS), None)
            if first is not None:
                before = tuple(
                    (p.start + offset, p.end + offset)
                    for p in phones
                    if p.label in BILABIALS and p.end <= first.start
                )
                bursts.append(Burst(t, first.start + offset, before))
            t += (b - a) / SAMPLE_RATE
    pieces.append(room if clips else np.zeros(0, np.float32))
    pauses.append((t, t + SILENCE_S))
    return np.concatenate(pieces).astype(np.float32), bursts, pauses


def onset_metrics(
    track: FaceTrack, bursts: list[Burst], pauses: list[tuple[float, float]]
) -> dict[str, float]:
    """Onset readings of one rendered program (module docstring)."""
    mouth = fill_nan(track.mouth)
    centres = (np.arange(len(mouth)) + 0.5) / FPS
    quiet = np.zeros(len(mouth), bool)
    for a, b in pauses:
        quiet |= (centres >= a + 0.2) & (centres < b)
    closed = float(np.median(mouth[quiet])) if quiet.any() else float(np.percentile(mouth, 5))
    threshold = closed + OPEN_FRACTION * (float(np.percentile(mouth, 95)) - closed)
    errors: list[float] = []
    missed = 0
    shut, bilabials = 0, 0
    for burst in bursts:
        window = (centres >= burst.vowel + SEARCH_S[0]) & (centres <= burst.vowel + SEARCH_S[1])
        above = np.flatnonzero(window & (mouth >= threshold))
        if len(above) == 0:
            missed += 1
        else:
            errors.append(1000.0 * (centres[above[0]] - burst.vowel))
        for a, b in burst.bilabials:
            inside = (centres >= a) & (centres < b)
            if inside.any():
                bilabials += 1
                shut += bool((mouth[inside] < threshold).all())
    floor = float(np.percentile(mouth, 5))
    open_level = floor + OPEN_FRACTION * (float(np.percentile(mouth, 95)) - floor)
    pause_open = float((mouth[quiet] >= open_level).mean()) if quiet.any() else float("nan")
    err = np.asarray(errors)
    within = int(np.sum((err >= WINDOW_MS[0]) & (err <= WINDOW_MS[1])))
    return {
        "onsets": float(len(bursts)),
        "onset_in_window": within / max(len(bursts), 1),
        "onset_median_ms": float(np.median(err)) if len(err) else float("nan"),
        "onset_earliest_ms": float(err.min()) if len(err) else float("nan"),
        "onset_latest_ms": float(err.max()) if len(err) else float("nan"),
        "onset_missed": float(missed),
        "bilabials_before_vowel": float(bilabials),
        "bilabials_shut": shut / bilabials if bilabials else float("nan"),
        "pause_open": pause_open,
    }
