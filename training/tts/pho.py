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


# --- whole sung and rapped phrases ---------------------------------------------------------
#
# ``song`` and ``rap`` re-time a spoken .pho so every syllable's vowel starts on a rhythmic
# grid, and return the marks the motion targets and the accompaniment need (seconds from the
# pho's start): "notes" (each sung vowel), "breaths" (the in-breath pauses between sung
# phrases), "beats" (the grid's beats, start == end), "tempo" ((bpm, bpm)). Consonants
# between two vowels end the first vowel's slot, compressed when the slot is short, so the
# next vowel still lands on its beat.

SONG_BPM = (60.0, 140.0)
SONG_NOTE_BEATS = (0.5, 1.0, 1.0, 1.0, 1.5, 2.0)  # a syllable's note, in beats
SONG_FINAL_BEATS = (2.0, 3.0, 4.0)  # the phrase's last note is held
SONG_FINAL_MAX_S = 3.0
SONG_PHRASE_SYLLABLES = (4, 9)
BREATH_S = (0.25, 0.5)
MELISMA_P = 0.3  # of notes >= 0.6 s: the vowel steps through 2-4 notes
SONG_VIBRATO_SEMITONES = (0.2, 0.6)
RAP_BPM = (80.0, 140.0)
RAP_SYLLABLES_PER_S = (4.0, 7.0)
RAP_LONG_P = 0.2  # a syllable held for two slots
RAP_REST_SLOTS = (1, 3)  # at phrase ends
PAUSE_MS = 100.0
TRAILING_SILENCE_MS = 150  # a "_" line at least this long ends a phrase
MAJOR = (0, 2, 4, 5, 7, 9, 11)  # semitones of each scale degree above the tonic
MINOR = (0, 2, 3, 5, 7, 8, 10)
_CONSONANT_MIN_MS = 20.0
_MAX_POINTS = 80  # mbrola reads about 1 kB of a .pho line: 3 s notes get 37 ms points


def semitone_hz(semitones: float) -> float:
    """The pitch ``semitones`` above A440 (below when negative), in Hz."""
    return 440.0 * 2.0 ** (semitones / 12.0)


def _semitones(hz: float) -> float:
    return 12.0 * math.log2(hz / 440.0)


def _median_f0(lines: list[PhoLine]) -> float:
    points = [hz for line in lines for _, hz in line.pitch]
    return float(np.median(points)) if points else 120.0


def _syllables(
    lines: list[PhoLine], is_vowel: Callable[[str], bool]
) -> tuple[list[PhoLine], list[tuple[PhoLine, list[PhoLine], bool]]]:
    """(leading silence and consonants, [(vowel, consonants after it, phrase ends after
    it)]); later pauses ("_") are dropped, a long one ends the phrase."""
    lead: list[PhoLine] = []
    out: list[tuple[PhoLine, list[PhoLine], bool]] = []
    for line in lines:
        if line.symbol == "_" and not out:
            lead.append(line)  # the opening silence
            continue
        if line.symbol == "_":
            if out and line.ms >= PAUSE_MS:
                vowel, after, _ = out[-1]
                out[-1] = (vowel, after, True)
            continue
        if is_vowel(line.symbol):
            out.append((line, [], False))
        elif out:
            out[-1][1].append(line)
        else:
            lead.append(line)
    return lead, out


def _fit(consonants: list[PhoLine], budget_ms: float) -> list[float]:
    """Consonant durations squeezed (never stretched) to fit ``budget_ms``."""
    total = sum(c.ms for c in consonants)
    if total <= budget_ms or not consonants:
        return [c.ms for c in consonants]
    scale = budget_ms / total
    return [max(_CONSONANT_MIN_MS, c.ms * scale) for c in consonants]


def _flat(hz: float) -> list[tuple[float, float]]:
    return [(0.0, hz), (100.0, hz)]


def _sung_vowel(
    ms: float, hz: float, previous_hz: float | None, scale: tuple[int, ...], root: float,
    rng: np.random.Generator,
) -> list[tuple[float, float]]:  # fmt: skip
    """Pitch points of one sung vowel: a short glide from the previous note, a melisma on
    some long notes, vibrato from a third of the way into notes over 400 ms."""
    targets = [hz]
    if ms >= 600.0 and rng.random() < MELISMA_P:
        degree = round(_semitones(hz) - root)
        for _ in range(int(rng.integers(1, 4))):
            degree += int(rng.choice([-2, -1, 1, 2]))
            octave, step = divmod(degree, 12)
            nearest = min(scale, key=lambda s: abs(s - step))
            targets.append(semitone_hz(root + 12 * octave + nearest))
    vibrato_hz = float(rng.uniform(*_VIBRATO_HZ))
    depth = float(rng.uniform(*SONG_VIBRATO_SEMITONES)) if ms > 400.0 else 0.0
    glide_ms = min(60.0, 0.2 * ms)
    steps = max(2, min(_MAX_POINTS, int(ms / _POINT_EVERY_MS)))
    points = []
    for k in range(steps + 1):
        frac = k / steps
        t_ms = frac * ms
        piece = min(len(targets) - 1, int(frac * len(targets)))
        base = _semitones(targets[piece])
        if piece == 0 and previous_hz is not None and t_ms < glide_ms:
            base = _semitones(previous_hz) + (base - _semitones(previous_hz)) * t_ms / glide_ms
        onset = min(1.0, max(0.0, (frac - 0.33) / 0.2))
        wobble = onset * depth * math.sin(2.0 * math.pi * vibrato_hz * t_ms / 1000.0)
        points.append((100.0 * frac, semitone_hz(base + wobble)))
    return points


def _place(
    out: list[PhoLine], vowel: PhoLine, after: list[PhoLine], after_ms: list[float],
    t: int, next_onset: float, pitch: Callable[[float], list[tuple[float, float]]],
    consonant_pitch: Callable[[PhoLine], list[tuple[float, float]]],
) -> tuple[int, tuple[float, float]]:  # fmt: skip
    """Append a vowel that starts at ``t`` (ms) and its following consonants, so that what
    comes next starts at round(next_onset); returns the new time and the vowel's span (s)."""
    rounded = [max(1, round(ms)) for ms in after_ms]
    vowel_ms = max(30, round(next_onset) - t - sum(rounded))
    out.append(PhoLine(vowel.symbol, vowel_ms, pitch(vowel_ms)))
    span = (t / 1000.0, (t + vowel_ms) / 1000.0)
    t += vowel_ms
    for c, ms in zip(after, rounded, strict=True):
        out.append(PhoLine(c.symbol, ms, consonant_pitch(c)))
        t += ms
    return t, span


def song(
    lines: list[PhoLine], is_vowel: Callable[[str], bool], rng: np.random.Generator
) -> tuple[list[PhoLine], dict[str, list[tuple[float, float]]]]:
    """The phrase sung: every vowel a note of a melody in a major or minor key near the
    voice's pitch, each starting on a half-beat of a 60-140 bpm grid; phrases of 4-9
    syllables end on a note held 2-4 beats (at most 3 s) whose slot ends with an in-breath
    pause of 250-500 ms."""
    lead, syllables = _syllables(lines, is_vowel)
    if not syllables:
        return lines, {}
    bpm = float(rng.uniform(*SONG_BPM))
    beat_ms = 60_000.0 / bpm
    scale = MAJOR if rng.random() < 0.6 else MINOR
    root = round(_semitones(_median_f0(lines))) + int(rng.integers(-3, 3))
    degree = int(rng.integers(0, 5))
    phrase_left = int(rng.integers(*SONG_PHRASE_SYLLABLES))
    out: list[PhoLine] = [PhoLine(c.symbol, round(c.ms), []) for c in lead]
    t = round(sum(line.ms for line in out))
    first_onset = float(t)
    onset = first_onset
    marks: dict[str, list[tuple[float, float]]] = {"notes": [], "breaths": []}
    previous_hz: float | None = None
    for n, (vowel, after, pause) in enumerate(syllables):
        phrase_left -= 1
        last = n == len(syllables) - 1
        phrase_end = pause or phrase_left <= 0 or last
        beats = float(rng.choice(SONG_FINAL_BEATS if phrase_end else SONG_NOTE_BEATS))
        beats = min(beats, max(0.5, math.floor(2.0 * SONG_FINAL_MAX_S * 1000.0 / beat_ms) / 2))
        slot = beats * beat_ms
        breath = 1000.0 * float(rng.uniform(*BREATH_S)) if phrase_end and not last else 0.0
        degree = int(np.clip(degree + rng.choice([-2, -1, -1, 0, 1, 1, 2]), -3, 9))
        octave, step = divmod(degree, 7)
        hz = semitone_hz(root + 12 * octave + scale[step])
        after_ms = _fit(after, 0.45 * (slot - breath))
        glide_from = previous_hz

        def pitch(ms: float, hz: float = hz, glide_from: float | None = glide_from) -> list:
            return _sung_vowel(ms, hz, glide_from, scale, root, rng)

        def voiced(c: PhoLine, hz: float = hz) -> list[tuple[float, float]]:
            return [(50.0, hz)] if c.pitch else []

        t, span = _place(out, vowel, after, after_ms, t, onset + slot - breath, pitch, voiced)
        marks["notes"].append(span)
        previous_hz = hz
        onset += slot
        if breath:
            out.append(PhoLine("_", max(1, round(onset) - t), []))
            marks["breaths"].append((t / 1000.0, round(onset) / 1000.0))
            t = round(onset)
            phrase_left = int(rng.integers(*SONG_PHRASE_SYLLABLES))
    marks["beats"] = [(float(b), float(b)) for b in np.arange(first_onset, t, beat_ms) / 1000.0]
    out.append(PhoLine("_", TRAILING_SILENCE_MS, []))  # mbrola ends on a silence
    return out, marks


def rap(
    lines: list[PhoLine], is_vowel: Callable[[str], bool], rng: np.random.Generator
) -> tuple[list[PhoLine], dict[str, list[tuple[float, float]]]]:
    """The phrase rapped: 80-140 bpm, syllables on 8ths, triplets or 16ths (whichever gives
    4-7 syllables a second), a fifth of them held two slots, rests of 1-3 slots at phrase
    ends; the spoken melody kept, flattened toward the mean, a semitone up on the beat."""
    lead, syllables = _syllables(lines, is_vowel)
    if not syllables:
        return lines, {}
    while True:
        bpm = float(rng.uniform(*RAP_BPM))
        per_beat = [k for k in (2, 3, 4) if RAP_SYLLABLES_PER_S[0] <= k * bpm / 60.0
                    <= RAP_SYLLABLES_PER_S[1]]  # fmt: skip
        if per_beat:
            break
    division = int(rng.choice(per_beat))
    beat_ms = 60_000.0 / bpm
    slot_ms = beat_ms / division
    mean = _semitones(_median_f0(lines))
    out: list[PhoLine] = [PhoLine(c.symbol, round(c.ms), []) for c in lead]
    t = round(sum(line.ms for line in out))
    first_onset = float(t)
    marks: dict[str, list[tuple[float, float]]] = {"notes": [], "breaths": []}
    slot_index = 0
    for n, (vowel, after, pause) in enumerate(syllables):
        slots = 2 if rng.random() < RAP_LONG_P else 1
        spoken = [hz for _, hz in vowel.pitch] or [semitone_hz(mean)]
        semis = mean + 0.5 * (_semitones(float(np.mean(spoken))) - mean)
        semis += 1.0 if slot_index % division == 0 else 0.0
        slot_index += slots
        after_ms = _fit(after, 0.6 * slot_ms)

        def pitch(ms: float, semis: float = semis) -> list[tuple[float, float]]:
            return _flat(semitone_hz(semis))

        next_onset = first_onset + slot_index * slot_ms
        t, _ = _place(out, vowel, after, after_ms, t, next_onset, pitch, lambda c: c.pitch)
        if pause and n < len(syllables) - 1:
            rest = int(rng.integers(RAP_REST_SLOTS[0], RAP_REST_SLOTS[1] + 1))
            slot_index += rest
            end = round(first_onset + slot_index * slot_ms)
            out.append(PhoLine("_", max(1, end - t), []))
            if rest >= 2:
                marks["breaths"].append((t / 1000.0, end / 1000.0))
            t = end
    marks["beats"] = [(float(b), float(b)) for b in np.arange(first_onset, t, beat_ms) / 1000.0]
    out.append(PhoLine("_", TRAILING_SILENCE_MS, []))  # mbrola ends on a silence
    return out, marks
