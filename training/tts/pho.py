"""MBROLA .pho files: read, write, and the prosody edits done on them.

A .pho line is ``symbol duration_ms [position_% f0_Hz]...``: MBROLA renders each phone for
exactly its duration, so the phone timings of the audio are the running sum of the
durations. Editing the file (time scale, F0 scale, held sung vowels) therefore changes the
speech and keeps timings exact, which no edit of the audio could.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

# A sung note: held 400-1500 ms on a flat or slowly gliding pitch with a light vibrato.
NOTE_MS = (400.0, 1500.0)
_VIBRATO_HZ = (4.5, 6.5)
_VIBRATO_SEMITONES = (0.0, 0.6)
_GLIDE_SEMITONES = (-3.0, 3.0)
_POINT_EVERY_MS = 20.0


@dataclass
class PhoLine:
    symbol: str
    ms: float
    pitch: list[tuple[float, float]] = field(default_factory=list)  # (% of phone, Hz)


def parse_pho(text: str) -> list[PhoLine]:
    """Phones of a .pho file; comments (``;``) and blank lines are skipped."""
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        content = raw.split(";", 1)[0].strip()
        if not content:
            continue
        parts = content.split()
        try:
            values = [float(v) for v in parts[1:]]
        except ValueError:
            raise ValueError(f"pho line {number}: {raw!r}") from None
        if not values or len(values) % 2 != 1:
            raise ValueError(f"pho line {number}: expected duration and pitch pairs: {raw!r}")
        pitch = list(zip(values[1::2], values[2::2], strict=True))
        lines.append(PhoLine(parts[0], values[0], pitch))
    return lines


def format_pho(lines: Iterable[PhoLine]) -> str:
    """The .pho text; durations in whole ms so the timings we report are the ones used."""
    out = []
    for line in lines:
        points = " ".join(f"{pos:.0f} {hz:.1f}" for pos, hz in line.pitch)
        out.append(f"{line.symbol} {round(line.ms)} {points}".rstrip())
    return "\n".join(out) + "\n"


def scale(lines: list[PhoLine], rate: float, pitch: float) -> list[PhoLine]:
    """Durations divided by ``rate``, F0 multiplied by ``pitch``; durations rounded to ms."""
    return [
        PhoLine(
            line.symbol, max(1, round(line.ms / rate)), [(p, hz * pitch) for p, hz in line.pitch]
        )
        for line in lines
    ]


def sing(
    lines: list[PhoLine], is_vowel: Callable[[str], bool], rng: np.random.Generator,
    notes: int | None = None,
) -> list[PhoLine]:  # fmt: skip
    """Hold ``notes`` vowels (1-3 by default) as sung notes.

    Longer vowels are likelier picks (stressed vowels carry the tune). Each becomes 400-1500
    ms on the nearest semitone of its spoken pitch, flat or gliding up to 3 semitones, with
    vibrato that starts a third of the way in, as singers' does.
    """
    candidates = [i for i, line in enumerate(lines) if is_vowel(line.symbol)]
    if not candidates:
        return lines
    count = min(len(candidates), notes if notes is not None else int(rng.integers(1, 4)))
    weights = np.array([lines[i].ms for i in candidates], dtype=np.float64)
    chosen = rng.choice(candidates, size=count, replace=False, p=weights / weights.sum())
    out = list(lines)
    for i in chosen:
        out[i] = _note(lines[i], _spoken_f0(lines, int(i)), rng)
    return out


def _spoken_f0(lines: list[PhoLine], index: int) -> float:
    """F0 at the phone, or of the nearest phone with pitch points (unvoiced ones have none)."""
    for distance in range(len(lines)):
        for j in (index - distance, index + distance):
            if 0 <= j < len(lines) and lines[j].pitch:
                return float(np.mean([hz for _, hz in lines[j].pitch]))
    return 120.0


def _note(line: PhoLine, f0: float, rng: np.random.Generator) -> PhoLine:
    ms = float(rng.uniform(*NOTE_MS))
    start = 440.0 * 2.0 ** (round(12.0 * math.log2(f0 / 440.0)) / 12.0)
    glide = 0.0 if rng.random() < 0.5 else float(rng.uniform(*_GLIDE_SEMITONES))
    vibrato_hz = float(rng.uniform(*_VIBRATO_HZ))
    depth = float(rng.uniform(*_VIBRATO_SEMITONES))
    points = []
    steps = max(2, int(ms / _POINT_EVERY_MS))
    for k in range(steps + 1):
        frac = k / steps
        t_s = frac * ms / 1000.0
        onset = min(1.0, max(0.0, (frac - 0.33) / 0.2))
        semitones = glide * frac + onset * depth * math.sin(2.0 * math.pi * vibrato_hz * t_s)
        points.append((100.0 * frac, start * 2.0 ** (semitones / 12.0)))
    return PhoLine(line.symbol, round(ms), points)
