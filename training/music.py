"""Synthesized accompaniment mixed under a voice: drums, bass, chords and a lead line.

Users feed the avatar songs and raps with their music in them; the mouth must follow the
voice and ignore the band. So part of the corpus has a band under the voice, and often a
few bars of it alone before and after the voice (an intro and an outro, where the targets
keep the mouth shut), with a lead instrument in the voice's own pitch range playing in those
instrumental stretches and the sung phrases' breath pauses: the model must learn that a
pitched, sustained sound that is not a voice does not open the mouth.

Everything is additive synthesis in numpy from a seeded generator: a kick (falling sine),
a snare (band-passed noise and a tone), hi-hats (high-passed noise), a bass on the chord
roots, chords as a sustained pad or struck plucks, and the lead (a vibrato tone with a few
harmonics). The key is drawn near the voice's pitch, the progression from a few common
ones, the tempo and the beat phase from the delivery's own beat grid when it has one
(training/tts/pho.py), so a rap's drums land on its syllables. The level is a voice to
music ratio over the voiced samples, as a mixing engineer sets it: 0-12 dB for songs,
3-14 for raps, 12-25 for speech over background music.

``accompany`` returns a new :class:`Utterance`: the mix as ``audio``, the dry voice (shifted
by the intro) as ``vocals``, phones and marks shifted by the intro, and what was drawn in
``meta["music"]``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy import signal

from contracts.phones import Phone
from training.augment import rms, speech_mask
from training.tts.pho import MAJOR, MINOR, semitone_hz
from training.utterance import SAMPLE_RATE, Utterance

KINDS = ("song", "rap", "background")
VMR_DB = {"song": (0.0, 12.0), "rap": (3.0, 14.0), "background": (12.0, 25.0)}
INTRO_S = (0.4, 2.5)
OUTRO_S = (0.3, 1.5)
INTRO_P = {"song": 0.75, "rap": 0.75, "background": 0.3}
PEAK = 0.99
# Chord roots as scale degrees, one chord a bar.
PROGRESSIONS = {
    False: ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 4), (5, 3, 0, 4)),
    True: ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2)),
}


@dataclass(frozen=True)
class Arrangement:
    """What plays: tempo and beat phase, key, the parts, the level and the instrumental
    stretches around the voice."""

    bpm: float
    first_beat_s: float  # a beat time (after the intro shift); the grid extends both ways
    root: int  # semitones re A440 of the key's tonic, in the voice's range
    minor: bool
    progression: tuple[int, ...]
    drums: bool
    hats_per_beat: int  # 2: eighths, 4: sixteenths
    bass: bool
    chords: str  # "pad", "pluck" or "none"
    lead: bool
    vmr_db: float
    intro_s: float
    outro_s: float


def _voice_root(utt: Utterance) -> int:
    """The voice's median pitch in semitones re A440 (from its voiced frames)."""
    from training.prosody import analyse

    n_frames = max(1, len(utt.dry) // (SAMPLE_RATE // 25))
    feats = analyse(utt.dry, n_frames)
    f0 = float(np.median(feats.f0_hz[feats.voiced])) if feats.voiced.any() else 150.0
    return round(12.0 * np.log2(f0 / 440.0))


def draw_arrangement(kind: str, utt: Utterance, rng: np.random.Generator) -> Arrangement:
    """A seeded arrangement for ``kind`` (one of KINDS) under ``utt``."""
    if kind not in KINDS:
        raise ValueError(f"unknown accompaniment {kind!r}; choose from {KINDS}")
    beats = [a for a, _ in utt.marks.get("beats", [])]
    if len(beats) >= 2:
        bpm = 60.0 / float(np.median(np.diff(beats)))
        first = beats[0]
    else:
        bpm = float(rng.uniform(70.0, 130.0))
        first = float(rng.uniform(0.0, 60.0 / bpm))
    minor = bool(rng.random() < 0.4)
    progressions = PROGRESSIONS[minor]
    intro = rng.random() < INTRO_P[kind]
    drums_p = {"song": 0.5, "rap": 1.0, "background": 0.3}[kind]
    chords_p = {"song": 1.0, "rap": 0.5, "background": 0.9}[kind]
    return Arrangement(
        bpm=bpm,
        first_beat_s=first,
        root=_voice_root(utt) + int(rng.integers(-5, 3)),
        minor=minor,
        progression=progressions[int(rng.integers(len(progressions)))],
        drums=bool(rng.random() < drums_p),
        hats_per_beat=int(rng.choice([2, 4])),
        bass=bool(rng.random() < (0.9 if kind == "rap" else 0.7)),
        chords=str(rng.choice(["pad", "pluck"])) if rng.random() < chords_p else "none",
        lead=bool(rng.random() < (0.5 if kind == "song" else 0.25)),
        vmr_db=float(rng.uniform(*VMR_DB[kind])),
        intro_s=float(rng.uniform(*INTRO_S)) if intro else 0.0,
        outro_s=float(rng.uniform(*OUTRO_S)) if intro else 0.0,
    )


# --- instruments (each returns one event's samples) ------------------------------------------


def _t(seconds: float) -> np.ndarray:
    return np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE


def kick() -> np.ndarray:
    t = _t(0.35)
    freq = 45.0 + 110.0 * np.exp(-t / 0.035)
    return np.sin(2.0 * np.pi * np.cumsum(freq) / SAMPLE_RATE) * np.exp(-t / 0.18)


def snare(rng: np.random.Generator) -> np.ndarray:
    t = _t(0.25)
    sos = signal.butter(2, (1000.0, 5000.0), "bandpass", fs=SAMPLE_RATE, output="sos")
    noise = signal.sosfilt(sos, rng.standard_normal(len(t))) * np.exp(-t / 0.09)
    return 1.4 * noise + 0.5 * np.sin(2.0 * np.pi * 190.0 * t) * np.exp(-t / 0.05)


def hat(rng: np.random.Generator) -> np.ndarray:
    t = _t(0.08)
    sos = signal.butter(2, 6000.0, "highpass", fs=SAMPLE_RATE, output="sos")
    return 0.5 * signal.sosfilt(sos, rng.standard_normal(len(t))) * np.exp(-t / 0.025)


def tone(
    hz: float, seconds: float, harmonics: int, attack_s: float, decay_s: float,
    vibrato: float = 0.0, tilt: float = 1.0,
) -> np.ndarray:  # fmt: skip
    """A note of ``harmonics`` partials (amplitude 1/n^tilt, higher ones dying faster),
    an attack ramp and an exponential decay; ``vibrato`` in semitones at 5.5 Hz."""
    t = _t(seconds)
    wobble = 2.0 ** (vibrato * np.sin(2.0 * np.pi * 5.5 * t) / 12.0)
    phase = 2.0 * np.pi * np.cumsum(hz * wobble) / SAMPLE_RATE
    out = np.zeros(len(t))
    for n in range(1, harmonics + 1):
        if n * hz * 1.01 >= SAMPLE_RATE / 2:
            break
        out += np.sin(n * phase) * np.exp(-t * n / (decay_s * 4.0)) / n**tilt
    envelope = np.minimum(1.0, t / max(attack_s, 1e-3)) * np.exp(-t / decay_s)
    release = np.minimum(1.0, (seconds - t) / 0.03)  # no click at the end
    return out * envelope * release


# --- the band --------------------------------------------------------------------------------


def _add(track: np.ndarray, event: np.ndarray, start_s: float, gain: float) -> None:
    start = round(start_s * SAMPLE_RATE)
    if start >= len(track) or start + len(event) <= 0:
        return
    lo = max(0, -start)
    hi = min(len(event), len(track) - start)
    track[start + lo : start + hi] += gain * event[lo:hi]


def _chord(arr: Arrangement, bar: int) -> list[int]:
    """Semitones re A440 of the bar's triad, an octave under the key's root."""
    scale = MINOR if arr.minor else MAJOR
    degree = arr.progression[bar % len(arr.progression)]
    notes = []
    for step in (degree, degree + 2, degree + 4):
        octave, index = divmod(step, 7)
        notes.append(arr.root - 12 + 12 * octave + scale[index])
    return notes


def beat_times(arr: Arrangement, seconds: float) -> np.ndarray:
    """Every beat of the grid inside [0, seconds)."""
    beat = 60.0 / arr.bpm
    first = arr.first_beat_s - beat * np.floor(arr.first_beat_s / beat)
    return np.arange(first, seconds, beat)


def render(
    arr: Arrangement, seconds: float, rng: np.random.Generator,
    quiet: list[tuple[float, float]] = (),  # type: ignore[assignment]
) -> np.ndarray:  # fmt: skip
    """The band for ``seconds`` of audio; the lead plays only inside ``quiet`` spans (where
    the voice is silent)."""
    track = np.zeros(int(seconds * SAMPLE_RATE) + 1)
    beat = 60.0 / arr.bpm
    first = arr.first_beat_s - beat * np.ceil(arr.first_beat_s / beat)  # at or before 0
    n_beats = int(np.ceil((seconds - first) / beat)) + 1
    scale = MINOR if arr.minor else MAJOR
    for k in range(n_beats):
        t = first + k * beat
        bar, in_bar = divmod(k, 4)
        chord = _chord(arr, bar)
        if arr.drums:
            if in_bar in (0, 2) or (in_bar == 3 and rng.random() < 0.3):
                _add(track, kick(), t, 0.9)
            if in_bar in (1, 3):
                _add(track, snare(rng), t, 0.5)
            for h in range(arr.hats_per_beat):
                _add(track, hat(rng), t + h * beat / arr.hats_per_beat, 0.25)
        if arr.bass:
            for half in (0.0, 0.5):
                root = semitone_hz(chord[0] - 12)
                _add(track, tone(root, 0.45 * beat, 6, 0.005, 0.3, tilt=1.5), t + half * beat, 0.5)
        if arr.chords == "pad" and in_bar == 0:
            for note in chord:
                for detune in (0.997, 1.003):
                    pad = tone(semitone_hz(note) * detune, 4 * beat, 6, 0.2, 8.0 * beat, tilt=1.2)
                    _add(track, pad, t, 0.12)
        elif arr.chords == "pluck":
            for note in chord:
                _add(track, tone(semitone_hz(note), beat, 8, 0.003, 0.35), t, 0.2)
        if arr.lead and any(a <= t and t + beat <= b for a, b in quiet):
            step = int(rng.integers(0, 7))
            hz = semitone_hz(arr.root + scale[step] + (12 if rng.random() < 0.3 else 0))
            _add(track, tone(hz, 0.95 * beat, 5, 0.02, 2.0 * beat, vibrato=0.3), t, 0.35)
    return track[: int(seconds * SAMPLE_RATE)]


def _silences(utt: Utterance, seconds: float) -> list[tuple[float, float]]:
    """Spans without voice: before the first phone, between phones, after the last one."""
    spans, t = [], 0.0
    for p in sorted((p for p in utt.phones if p.label != "SIL"), key=lambda p: p.start):
        if p.start - t > 0.3:
            spans.append((t, p.start))
        t = max(t, p.end)
    spans.append((t, seconds))
    return spans


def accompany(utt: Utterance, rng: np.random.Generator, kind: str) -> Utterance:
    """``utt`` with a band under it (module docstring); the same generator state gives the
    same mix."""
    arr = draw_arrangement(kind, utt, rng)
    music_rng = np.random.default_rng(int(rng.integers(2**63)))
    intro, outro = arr.intro_s, arr.outro_s
    pad_in = round(intro * SAMPLE_RATE)
    voice = np.concatenate(
        [np.zeros(pad_in), np.asarray(utt.dry, np.float64), np.zeros(int(outro * SAMPLE_RATE))]
    )
    seconds = len(voice) / SAMPLE_RATE
    shift = pad_in / SAMPLE_RATE
    phones = [Phone(p.label, p.start + shift, p.end + shift) for p in utt.phones]
    moved = dataclasses.replace(utt, audio=voice.astype(np.float32), phones=phones, vocals=None)
    arr = dataclasses.replace(arr, first_beat_s=arr.first_beat_s + shift)
    music = np.zeros(len(voice))
    band = render(arr, seconds, music_rng, _silences(moved, seconds))[: len(voice)]
    music[: len(band)] = band
    voiced = rms(moved.audio[speech_mask(moved)])  # the voice over its phones
    gain = voiced / (10.0 ** (arr.vmr_db / 20.0) * max(rms(music), 1e-9))
    mix = voice + gain * music
    peak = float(np.max(np.abs(mix))) if mix.size else 0.0
    scale = PEAK / peak if peak > PEAK else 1.0
    marks = utt.marks_scaled(1.0, shift)
    marks["beats"] = [(float(b), float(b)) for b in beat_times(arr, seconds)]
    return dataclasses.replace(
        utt,
        audio=(mix * scale).astype(np.float32),
        vocals=(voice * scale).astype(np.float32),
        phones=phones,
        marks=marks,
        meta={**utt.meta, "music": {"kind": kind, **dataclasses.asdict(arr)}},
    )
