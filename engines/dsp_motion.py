"""The hand-written baseline motion generator ("dsp"): audio DSP -> visemes, prosody -> head.

Streaming and causal with a fixed lookahead (``lookahead_samples``, 67.5 ms): the mouth at
video frame k is driven by 10 ms analysis frames from 15 to 75 ms after its centre, because
lips move before the sound they shape (coarticulation).

Per 10 ms analysis frame (25 ms window) it measures band levels, periodicity (voicing, F0) and
LPC formants F1/F2 (``engines.dsp_analysis``), and maps them to mouth shapes by principle:

* mid-band (400-3000 Hz) level relative to a running speech level opens the mouth: vowels are
  loud there; nasals (m) put their energy below 400 Hz, stop closures (p, b) are near-silent,
  fricatives put theirs above 3 kHz, so all of those keep it nearly closed;
* F1 sets the jaw (high F1 = open vowel), low F2 with low F1 rounds the lips, high F2 with
  low F1 spreads them;
* a closure anywhere in the next ~25 ms closes the lips fully (p, b, m), since a closure
  shorter than the frame interval must still be seen.

Head, brows and gaze follow prosody (energy and F0 excursions above the speaker's mean) plus
seeded Ornstein-Uhlenbeck drift that is larger while speaking; breathing sways the head when
silent; blinks come from a seeded schedule. Each output eases from the previous motion frame
(``history[-1]``), so hops and barge-in resets join without jumps. ``reset()`` (barge-in)
forgets the speech dynamics and drift and hears the audio already received as silence (its
lookahead tail belongs to the interrupted utterance), so the face is idle within 200 ms.

Determinism: features depend only on audio at absolute sample positions; all state advances
exactly once per video frame, in frame order; randomness is a pure function of the seed and
the frame index. The output is therefore identical for any chunking of the input and any hop.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from contracts import motion_frame
from contracts.clock import FPS, SAMPLES_PER_FRAME
from contracts.style import NEUTRAL, Style, express
from engines.dsp_analysis import (
    HOP,
    ROWS_PER_FRAME,
    SILENT_DB,
    WIN_AFTER,
    WIN_BEFORE,
    Analysis,
    analyse,
)

# --- reading the analysis ------------------------------------------------------------------
# Analysis frames (offsets from 4 k) that shape the mouth of video frame k: a triangular
# average centred 45 ms after the frame centre (lips lead the sound; the easing below and the
# visible opening, which lags the jaw at small openings, take back ~30 ms of that) ...
MOUTH_OFFSETS = np.arange(3, 10)
MEAN_WEIGHTS = np.array([1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0]) / 16.0
# ... of which these (frame centre +15 ms .. +45 ms) close the lips if any of them is closed.
CLOSE_SPAN = MOUTH_OFFSETS <= 6
# Prosody (nods, brows) is read over the frame's own span: it follows the voice, no lead.
PROSODY_OFFSETS = np.arange(0, ROWS_PER_FRAME)
FIRST_OFFSET = 0
LAST_OFFSET = int(MOUTH_OFFSETS[-1])

# --- speech tracking and visemes ---------------------------------------------------------
SILENCE_DB = -75.0  # mid-band level below which nothing counts as speech, whatever the gain
VOICED = 0.6  # normalized autocorrelation peak above which a frame is voiced
CLEAR_VOICING = 0.75  # ... and clearly voiced: only those set the speech level
NEUTRAL_F2 = 1500.0  # mean F2 of an adult male voice; others' formants scale from it
SONORITY_DB = (-20.0, -8.0)  # mid-band level re speech level: mouth shut .. fully sonorant
MURMUR_DB = (17.0, 24.0)  # low-over-mid excess (with weak mid) that means closed lips
CLOSURE_LIPS = (0.05, 0.3)  # lip opening just ahead below which the lips close
SOUND = 0.5  # sonority of an analysis frame that counts as speech sound ...
PAUSE_ROWS = 15  # ... and none for 150 ms (longer than a stop closure) is a pause
ONSET_LIPS = (0.3, 0.6)  # lip opening ahead that makes the end of a pause an onset
F1_OPEN_HZ = (300.0, 700.0)  # F1 of a closed .. fully open jaw (adult male scale)

# --- face ----------------------------------------------------------------------------------
JAW_MAX = 0.8
BLINK_PROFILE = (0.5, 1.0, 1.0, 0.5)  # ~160 ms at 25 fps
BLINK_INTERVAL_S = (2.0, 6.0)
BREATH_HZ = 0.25
NOD_HZ = 1.5
NOD_KICK = 2.5  # rad/s of nod velocity per unit of prominence jump
NOD_THRESHOLD = 0.1  # prominence jump below which a syllable is not stressed
OCTAVE_GUARD_ST = 9.0  # F0 this far from the speaker's mean is a tracking error, not prosody

# Ornstein-Uhlenbeck drift channels: time constant (s), std when idle, std while speaking.
# While speaking the head drifts as the learned model's corpus draws it (training/prosody.py,
# DRIFT_STD), which renders to real talkers' 8-9 px at 512x512; a listening face stays
# nearly still (a barge-in is idle within 200 ms).
_OU_NAMES = ("headYaw", "headPitch", "headRoll", "gazeX", "gazeY")
_OU_TAU = np.array([2.0, 1.5, 2.5, 0.8, 0.8])
_OU_IDLE = np.array([0.02, 0.008, 0.008, 0.06, 0.04])
_OU_SPEAK = np.array([0.1, 0.04, 0.04, 0.1, 0.06])
# Soft limits of the head (rad): inside renderer v2's clean range (+-0.45 yaw, +-0.3 pitch,
# +-0.25 roll), as the corpus's (training/prosody.py, HEAD_LIMIT_RAD).
HEAD_LIMIT = {"headYaw": 0.3, "headPitch": 0.2, "headRoll": 0.15}
_OU_DECAY = np.exp(-1.0 / (FPS * _OU_TAU))
_OU_GAIN = np.sqrt(1.0 - _OU_DECAY**2)
_NOISE_BLOCK = 256  # frames of OU noise drawn per seeded block

# Random streams, separated by tag so adding one never changes another.
_TAG_NOISE, _TAG_BLINK, _TAG_BREATH = 1, 2, 3

_I = motion_frame.INDEX
_MOUTH_FIELDS = [
    i for i, name in enumerate(motion_frame.BLENDSHAPES) if name.startswith(("jaw", "mouth"))
]
_BLINK_FIELDS = motion_frame.indices(("eyeBlinkLeft", "eyeBlinkRight"))


def _ease_rates() -> tuple[np.ndarray, np.ndarray]:
    """Per-field fraction of the way to the target covered in one frame (rising, falling).

    The mouth opens fast and closes faster (a closure must show within one or two frames);
    head, brows and gaze ease at 0.5 so a reset drifts back to idle in < 200 ms; blinks are
    shaped by their own profile and are not eased.
    """
    rise = np.full(motion_frame.DIM, 0.5)
    fall = np.full(motion_frame.DIM, 0.5)
    rise[_MOUTH_FIELDS] = 0.65
    fall[_MOUTH_FIELDS] = 0.85
    rise[_BLINK_FIELDS] = 1.0
    fall[_BLINK_FIELDS] = 1.0
    return rise, fall


_RISE, _FALL = _ease_rates()


def _ramp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Smoothstep from 0 at ``lo`` to 1 at ``hi`` (C1 at both ends, so no visible kinks)."""
    t = np.minimum(np.maximum((x - lo) * (1.0 / (hi - lo)), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def _ramp1(x: float, lo: float, hi: float) -> float:
    """:func:`_ramp` for one float (plain Python: the per-frame state loop runs on scalars)."""
    t = min(max((x - lo) / (hi - lo), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def _visemes(
    feats: Analysis, rows: np.ndarray, ref: np.ndarray, formant_scale: np.ndarray
) -> dict[str, np.ndarray]:
    """Mouth-shape weights (0..1) of the given analysis rows."""
    mid, low, high = feats.mid_db[rows], feats.low_db[rows], feats.high_db[rows]
    mid_rel = mid - ref
    sonority = _ramp(mid_rel, *SONORITY_DB)
    # Nasal murmur and voice bars (m, b): the low band far above a weak mid band. Closed
    # vowels (iy, uw) also have a strong low band, but a strong mid band with it.
    murmur = _ramp(low - mid - 0.5 * mid_rel, *MURMUR_DB)
    lips = sonority * (1.0 - murmur)
    # Frication (s, sh, f): the energy is above 3 kHz; teeth close, lips stay apart.
    frication = _ramp(high - mid, -5.0, 5.0) * _ramp(high - ref, -30.0, -18.0)
    voiced = _ramp(feats.voicing[rows], 0.5, 0.75)
    f1, f2 = feats.f1[rows] / formant_scale, feats.f2[rows] / formant_scale
    # Unvoiced frames have no formants to trust: assume a half-open neutral jaw.
    height = voiced * _ramp(f1, *F1_OPEN_HZ) + (1.0 - voiced) * 0.3
    low_f1 = voiced * _ramp(-f1, -650.0, -500.0)
    rounding = low_f1 * _ramp(-f2, -1500.0, -1100.0) * lips
    spreading = low_f1 * _ramp(f2, 1800.0, 2300.0) * lips
    jaw = lips * (0.25 + 0.75 * height) * (1.0 - 0.3 * rounding)
    return {
        "lips": lips,
        "jaw": jaw,
        "round": rounding,
        "spread": spreading,
        "murmur": murmur * _ramp(mid_rel, -35.0, -25.0),
        "frication": frication,
    }


@dataclass
class _SpeakerNorm:
    """Slow statistics of the speaker and channel; kept across resets (same voice, same mic)."""

    ref_db: float | None = None  # mid-band level of this speaker's vowels
    floor_db: float | None = None  # mid-band level of the background
    f0_mean_st: float = 0.0  # mean F0 in semitones re 100 Hz (set by the first voiced frames)
    formant_scale: float = 1.0  # vocal-tract length: this speaker's formants / adult male's


@dataclass
class _Transient:
    """Fast state that a barge-in forgets."""

    activity: float = 0.0  # smoothed "is speaking", 0..1 (head, brows: ~0.8 s release)
    in_speech: float = 0.0  # the same with ~0.2 s release: lips press only inside words
    prominence_peak: float = 0.0
    pitch_excursion: float = 0.0  # semitones above the speaker's mean, smoothed
    nod: float = 0.0  # head-nod spring position (rad) and velocity
    nod_velocity: float = 0.0
    drift: np.ndarray = field(default_factory=lambda: np.zeros(len(_OU_NAMES)))
    # Audio that had arrived before a barge-in belongs to the interrupted utterance: samples
    # before this index are heard as silence. Set by the first hop after the reset.
    mute_before: int = 0
    mute_pending: bool = False
    # Absolute analysis-frame indices of the newest rows with speech sound (pause detection).
    sound_rows: deque[int] = field(default_factory=lambda: deque(maxlen=64))


class DspMotionGenerator:
    """Baseline MotionGenerator: band levels, voicing, F0 and formants -> motion frames."""

    past_samples: int = WIN_BEFORE - HOP * FIRST_OFFSET
    lookahead_samples: int = HOP * LAST_OFFSET + WIN_AFTER - SAMPLES_PER_FRAME
    history_frames: int = 1

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self._speaker = _SpeakerNorm()
        self._state = _Transient()
        self._blink_onsets: list[int] = []
        self._noise_block: tuple[int, np.ndarray] | None = None
        breath_rng = np.random.default_rng([self.seed, _TAG_BREATH])
        self._breath_phase = float(breath_rng.uniform(0.0, 2.0 * np.pi))
        self.style = NEUTRAL

    def set_style(self, style: Style) -> None:
        """Speak in ``style`` from the next frame on (contracts/style.py: the same
        expression, head energy and articulation the learned model was trained on)."""
        self.style = style

    def reset(self) -> None:
        """Barge-in: forget speech dynamics and drift and ignore the audio already received
        (its lookahead tail is the interrupted speech); the frames ease back to idle."""
        self._state = _Transient(mute_pending=True)

    def generate(
        self, audio: np.ndarray, history: np.ndarray, first_frame: int, n_frames: int
    ) -> np.ndarray:
        expected = self.past_samples + n_frames * SAMPLES_PER_FRAME + self.lookahead_samples
        if len(audio) != expected:
            raise ValueError(f"expected {expected} samples for {n_frames} frames, got {len(audio)}")
        n_rows = ROWS_PER_FRAME * (n_frames - 1) + LAST_OFFSET - FIRST_OFFSET + 1
        feats = analyse(np.asarray(audio, np.float32), n_rows)
        self._mute_interrupted(feats, first_frame)
        # Row of analysis frame 4 k for each video frame k of the hop; row r of this hop is
        # the session's analysis frame row0 + r.
        bases = ROWS_PER_FRAME * np.arange(n_frames) - FIRST_OFFSET
        row0 = ROWS_PER_FRAME * first_frame + FIRST_OFFSET
        targets = np.zeros((n_frames, motion_frame.DIM))
        # Per-frame snapshots of the state the mouth reads (it is computed after the loop).
        refs = np.full(n_frames, np.nan)
        in_speech = np.zeros(n_frames)
        formant_scale = np.ones(n_frames)
        # State advances once per frame, in order; the mouth then is one vectorized step.
        for i, base in enumerate(bases.tolist()):
            newest = base + LAST_OFFSET
            self._track(feats, range(newest - ROWS_PER_FRAME + 1, newest + 1), row0)
            if self._speaker.ref_db is not None:
                refs[i] = self._speaker.ref_db
            in_speech[i] = self._state.in_speech
            formant_scale[i] = self._speaker.formant_scale
            self._prosody_target(feats, base + PROSODY_OFFSETS, first_frame + i, targets[i])
        # Whether each frame's closure span follows a pause (no sound for PAUSE_ROWS before it).
        span_start = row0 + bases + int(MOUTH_OFFSETS[CLOSE_SPAN][0])
        sounds = np.asarray(self._state.sound_rows, np.int64)
        after_pause = np.array(
            [not ((sounds < s) & (sounds >= s - PAUSE_ROWS)).any() for s in span_start.tolist()]
        )
        self._mouth_targets(feats, bases, refs, in_speech, formant_scale, after_pause, targets)
        targets = express(targets, self.style)  # eased like the rest: style changes glide
        out = np.empty((n_frames, motion_frame.DIM), np.float32)
        previous = np.asarray(history[-1], np.float32)
        for i in range(n_frames):
            previous = _ease(previous, targets[i])
            out[i] = previous
        return out

    def _mute_interrupted(self, feats: Analysis, first_frame: int) -> None:
        st = self._state
        if st.mute_pending:
            # The stream had generated every frame it could, so what had arrived ends before
            # the window of this hop's first frame does; mute up to there (at worst one frame
            # of new audio is lost, which a barge-in can afford).
            st.mute_before = SAMPLES_PER_FRAME * (first_frame + 1) + self.lookahead_samples
            st.mute_pending = False
        # Rows whose window starts before the barge-in point hear (some of) the old speech.
        first_start = HOP * (ROWS_PER_FRAME * first_frame + FIRST_OFFSET) - WIN_BEFORE
        muted = -(-(st.mute_before - first_start) // HOP)
        if muted > 0:
            rows = slice(0, muted)
            for levels in (feats.low_db, feats.mid_db, feats.high_db):
                levels[rows] = SILENT_DB
            feats.voicing[rows] = 0.0

    # --- speaker and speech state ------------------------------------------------------

    def _track(self, feats: Analysis, rows: range, row0: int) -> None:
        """Advance the speaker and speech trackers over this frame's newest analysis rows
        (row r is the session's analysis frame ``row0 + r``)."""
        spk, st = self._speaker, self._state
        mid = feats.mid_db[rows].tolist()
        clear = (feats.voicing[rows] > CLEAR_VOICING).tolist()
        for level in mid:
            # Background level: follows dips at once, creeps up 10 dB/s through speech.
            floor = spk.floor_db if spk.floor_db is not None else level
            spk.floor_db = max(min(level, floor + 0.1), SILENCE_DB)
        if spk.ref_db is None:
            # Start on 30 of 40 ms clearly voiced and 10 dB over the background: room tone
            # and hum can look periodic for a moment, but not loud and periodic together.
            voiced_levels = [level for level, v in zip(mid, clear, strict=True) if v]
            floor_db = spk.floor_db  # set above whenever there were rows
            if len(voiced_levels) < 3 or floor_db is None or max(voiced_levels) < floor_db + 10:
                return
            spk.ref_db = max(voiced_levels) + 3.0
            voiced_f0 = feats.f0_st[rows][feats.voicing[rows] > CLEAR_VOICING]
            spk.f0_mean_st = float(np.median(voiced_f0))
        f0 = feats.f0_st[rows].tolist()
        f2 = feats.f2[rows].tolist()
        for row, level, voiced, f0_st, f2_hz in zip(rows, mid, clear, f0, f2, strict=True):
            if voiced and level > SILENCE_DB:
                spk.ref_db = _follow_speech_level(spk.ref_db, level)
                # Pitch and vocal-tract statistics only from loud, clearly voiced frames.
                # Pitch-tracker octave jumps (> 9 semitones off) would drag the mean away.
                if level > spk.ref_db - 12.0 and abs(f0_st - spk.f0_mean_st) < OCTAVE_GUARD_ST:
                    spk.f0_mean_st += 0.02 * (f0_st - spk.f0_mean_st)
                    scale = min(max(f2_hz / NEUTRAL_F2, 0.8), 1.3)
                    spk.formant_scale += 0.005 * (scale - spk.formant_scale)
            sonority = _ramp1(level - spk.ref_db, *SONORITY_DB)
            if sonority >= SOUND:
                st.sound_rows.append(row0 + row)
            # Fast attack, ~0.8 s release: stays up through stop closures and short pauses.
            rate = 0.3 if sonority > st.activity else 0.012
            st.activity += rate * (sonority - st.activity)
            # Fast attack, ~0.2 s release: spans a stop closure, not a pause.
            rate = 0.3 if sonority > st.in_speech else 0.05
            st.in_speech += rate * (sonority - st.in_speech)

    # --- mouth ----------------------------------------------------------------------------

    def _mouth_targets(
        self,
        feats: Analysis,
        bases: np.ndarray,
        refs: np.ndarray,
        in_speech: np.ndarray,
        formant_scale: np.ndarray,
        after_pause: np.ndarray,
        targets: np.ndarray,
    ) -> None:
        """Mouth fields of every frame of the hop; frames before any speech stay at rest."""
        known = ~np.isnan(refs)
        if not known.any():
            return
        rows = bases[known, None] + MOUTH_OFFSETS[None, :]
        vis = _visemes(feats, rows, refs[known, None], formant_scale[known, None])
        # A closure just ahead wins over the average: p, b, m last 50-100 ms, shorter than
        # the averaging span, and a half-closed mouth would not read as a closure. Only the
        # end of a pause before speech is not a closure: there the lips part a little ahead
        # of the vowel (its first 10 ms row may be silent) unless a murmur (m, b) is heard.
        span = vis["lips"][:, CLOSE_SPAN].copy()
        onset = after_pause[known] * _ramp(vis["lips"].max(axis=1), *ONSET_LIPS)
        span[:, 0] = np.maximum(span[:, 0], onset * (1.0 - vis["murmur"][:, CLOSE_SPAN][:, 0]))
        open_gate = _ramp(span.min(axis=1), *CLOSURE_LIPS)
        mean = {name: values @ MEAN_WEIGHTS for name, values in vis.items()}
        lips = mean["lips"] * open_gate
        # Lips pressed while closed inside speech (harder on a murmur); relaxed in pauses.
        press = (1.0 - open_gate) * in_speech[known]
        t = targets[known]
        t[:, _I["jawOpen"]] = JAW_MAX * mean["jaw"] * open_gate
        t[:, [_I["mouthLowerDownLeft"], _I["mouthLowerDownRight"]]] = (0.5 * lips)[:, None]
        upper = 0.3 * lips + 0.1 * mean["frication"]
        t[:, [_I["mouthUpperUpLeft"], _I["mouthUpperUpRight"]]] = upper[:, None]
        t[:, _I["mouthFunnel"]] = 0.8 * mean["round"]
        t[:, _I["mouthPucker"]] = 0.6 * mean["round"] * (1.0 - 0.5 * lips)
        t[:, [_I["mouthStretchLeft"], _I["mouthStretchRight"]]] = (0.3 * mean["spread"])[:, None]
        t[:, [_I["mouthSmileLeft"], _I["mouthSmileRight"]]] = (0.15 * mean["spread"])[:, None]
        pressed = press * (0.1 + 0.3 * mean["murmur"])
        t[:, [_I["mouthPressLeft"], _I["mouthPressRight"]]] = pressed[:, None]
        t[:, _I["mouthClose"]] = 0.1 * press
        t[:, _I["mouthRollLower"]] = 0.1 * press
        targets[known] = t

    # --- head, brows, eyes, gaze ---------------------------------------------------------

    def _prosody_target(
        self, feats: Analysis, rows: np.ndarray, frame_index: int, target: np.ndarray
    ) -> None:
        """Head, brow, eye and gaze targets of one frame; advances their state by one frame."""
        st, spk = self._state, self._speaker
        ref = spk.ref_db if spk.ref_db is not None else 0.0
        emphasis, deviations = 0.0, []
        for level, voicing, f0_st in zip(
            feats.mid_db[rows].tolist(),
            feats.voicing[rows].tolist(),
            feats.f0_st[rows].tolist(),
            strict=True,
        ):
            if voicing > VOICED:
                emphasis += _ramp1(level - ref, -15.0, -3.0) / len(rows)
                if abs(f0_st - spk.f0_mean_st) < OCTAVE_GUARD_ST:
                    deviations.append(f0_st - spk.f0_mean_st)
        excursion = sum(deviations) / len(deviations) if deviations else 0.0
        rate = 0.5 if excursion > st.pitch_excursion else 0.15
        st.pitch_excursion += rate * (excursion - st.pitch_excursion)
        # Stress = loud and high-pitched. A nod starts where prominence climbs over the
        # decaying peak of the last ~0.4 s: stressed syllables nod, those between do not.
        prominence = emphasis * (0.5 + 0.5 * _ramp1(excursion, 0.0, 3.0))
        kick = max(0.0, prominence - st.prominence_peak - NOD_THRESHOLD)
        st.prominence_peak = max(prominence, 0.9 * st.prominence_peak)
        self._step_nod(kick)
        self._step_drift(frame_index)

        brow = _ramp1(st.pitch_excursion, 1.0, 5.0) * st.activity
        target[_I["browInnerUp"]] = 0.4 * brow
        target[[_I["browOuterUpLeft"], _I["browOuterUpRight"]]] = 0.3 * brow
        target[[_I["eyeWideLeft"], _I["eyeWideRight"]]] = 0.1 * brow
        target[_BLINK_FIELDS] = self._blink(frame_index)

        breath = math.sin(2.0 * math.pi * BREATH_HZ * frame_index / FPS + self._breath_phase)
        calm = 1.0 - 0.6 * st.activity  # breathing shows most in pauses
        yaw, pitch, roll, gaze_x, gaze_y = st.drift.tolist()
        # tanh keeps every angle inside its natural range without a hard stop.
        pitch_total = pitch + st.nod + 0.008 * calm * breath
        for name, angle in (("headYaw", yaw), ("headPitch", pitch_total), ("headRoll", roll)):
            limit = HEAD_LIMIT[name]
            target[_I[name]] = limit * math.tanh(angle / limit)
        target[_I["headTx"]] = 0.02 * yaw
        target[_I["headTy"]] = 0.004 * calm * breath + 0.03 * st.nod
        target[_I["gazeX"]] = 0.3 * math.tanh(gaze_x / 0.3)
        target[_I["gazeY"]] = 0.2 * math.tanh(gaze_y / 0.2)

    def _step_nod(self, kick: float) -> None:
        """Damped spring (1.5 Hz, slightly underdamped) kicked by stressed syllables: the head
        dips and comes back with a small rebound, as a nod does."""
        st = self._state
        omega, dt = 2.0 * math.pi * NOD_HZ, 1.0 / FPS
        st.nod_velocity += NOD_KICK * kick
        st.nod_velocity += dt * (-omega * omega * st.nod - 2.0 * 0.7 * omega * st.nod_velocity)
        st.nod += dt * st.nod_velocity

    def _step_drift(self, frame_index: int) -> None:
        """One Ornstein-Uhlenbeck step per frame; wider while speaking."""
        st = self._state
        sigma = _OU_IDLE + (_OU_SPEAK - _OU_IDLE) * st.activity
        st.drift = _OU_DECAY * st.drift + _OU_GAIN * sigma * self._noise(frame_index)

    def _noise(self, frame_index: int) -> np.ndarray:
        """Standard normals for this frame, a pure function of (seed, frame index)."""
        block = frame_index // _NOISE_BLOCK
        if self._noise_block is None or self._noise_block[0] != block:
            rng = np.random.default_rng([self.seed, _TAG_NOISE, block])
            self._noise_block = (block, rng.standard_normal((_NOISE_BLOCK, len(_OU_NAMES))))
        return self._noise_block[1][frame_index % _NOISE_BLOCK]

    def _blink(self, frame_index: int) -> float:
        """Blink amount from a seeded schedule of onsets 2-6 s apart."""
        onsets = self._blink_onsets
        while not onsets or onsets[-1] <= frame_index:
            rng = np.random.default_rng([self.seed, _TAG_BLINK, len(onsets)])
            # The first blink may come early: a session starts at an arbitrary moment.
            low, high = (0.5, BLINK_INTERVAL_S[1]) if not onsets else BLINK_INTERVAL_S
            gap = round(float(rng.uniform(low, high)) * FPS)
            onsets.append((onsets[-1] if onsets else 0) + gap)
        latest = bisect.bisect_right(onsets, frame_index) - 1
        since = frame_index - onsets[latest] if latest >= 0 else len(BLINK_PROFILE)
        return BLINK_PROFILE[since] if since < len(BLINK_PROFILE) else 0.0


def _follow_speech_level(ref_db: float, mid_db: float) -> float:
    """Running speech level from voiced frames: rises fast, falls slowly, so it sits near
    the loud vowels whatever the input gain."""
    if mid_db > ref_db:
        return ref_db + 0.1 * (mid_db - ref_db)
    if mid_db > ref_db - 25.0:
        return ref_db + 0.01 * (mid_db - ref_db)
    return ref_db - 0.05  # much quieter voicing: the gain dropped (or background); adapt slowly


def _ease(previous: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Move from the previous frame toward the target: rises and falls at their own rates."""
    prev = previous.astype(np.float64)
    rate = np.where(target > prev, _RISE, _FALL)
    return motion_frame.clip(prev + rate * (target - prev))
