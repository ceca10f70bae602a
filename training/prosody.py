"""Head, brows, blinks and gaze targets from an utterance's prosody, with seeded randomness.

The mouth of a training target comes from the phones (:mod:`training.visemes`); the rest of
the face comes from here. People nod on stressed syllables, raise their brows on pitch
peaks and at the end of questions, blink every few seconds and at phrase boundaries, and
drift, sway and breathe between all that. None of it is fully determined by the audio, so
each utterance draws its own style and random tracks from the caller's generator: the
learned model should see many plausible motions for one voice, not one fixed mapping.

Everything here is offline (the whole utterance is known), but the tracks that follow the
voice lead it by no more than the live model's 80 ms of lookahead: nods start 60 ms before
their syllable, brows are smoothed over about +-60 ms, and a question's brow raise starts
only once its final pitch rise is under way. Every track is smooth at 25 fps: curves are
sampled at frame centres from C1-continuous shapes, and noise is low-passed twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

from contracts import motion_frame
from contracts.phones import Phone
from training.utterance import SAMPLE_RATE

FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS
_I = motion_frame.INDEX

# The fields this module writes: everything but the jaw and the mouth.
FIELDS = np.array(
    [i for i, name in enumerate(motion_frame.FIELDS) if not name.startswith(("jaw", "mouth"))]
)

# Syllable nuclei: the ARPAbet vowels (diphthongs and the r-coloured vowel included).
VOWELS = frozenset(
    ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW")
)

# --- analysis -------------------------------------------------------------------------------
F0_RANGE_HZ = (65.0, 400.0)
YIN_WINDOW = 800  # 50 ms centred on each frame: two periods of a 65 Hz voice fit
YIN_THRESHOLD = 0.15  # first dip of the normalized difference below this is the period
VOICED_APERIODICITY = 0.3  # ... and a frame whose best dip is above this is unvoiced
SILENT_DB = -45.0  # frame level (re the utterance's loud level) below which nothing is voiced

# --- face -----------------------------------------------------------------------------------
PAUSE_S = 0.25  # a silence this long is a phrase boundary (blink, brow reset)
BLINK_INTERVAL_S = (2.0, 6.0)
BLINK_MIN_GAP_S = 1.0  # no two blinks closer than this
BOUNDARY_BLINK_P = 0.6  # chance of a blink at a phrase boundary
# Blink lid profile (s): closes fast, stays shut for one frame period, reopens slower.
BLINK_CLOSE_S, BLINK_HOLD_S, BLINK_OPEN_S = 0.05, 0.04, 0.08
NOD_LEAD_S = 0.06  # a nod starts this long before its vowel (the head leads the voice)
NOD_PEAK_S = 0.18  # ... and peaks this long after it starts
NOD_REBOUND = 0.3  # relative size of the upward rebound 0.3 s later
NOD_RAD = 0.05  # pitch of a nod on a fully prominent syllable (style 1)
BEAT_NOD_RAD = (0.015, 0.04)  # nods on a song's or rap's beats (drawn per utterance)
BEAT_NOD_P = 0.75  # of sung and rapped utterances: the head moves with the beat
NOD_MIN_GAP_S = 0.25
QUESTION_RISE_ST = 3.0  # F0 rise over a phrase's last 0.5 s that reads as a question
QUESTION_FINAL_ST = 1.0  # ... if it ends this far above the median F0
BROW_PITCH_ST = (1.0, 4.0)  # F0 above the median that starts / fully raises the brows
# Real talkers' heads move 8-25 px (std) at 512x512; inside the renderer's clean range
# (+-0.45 yaw, +-0.3 pitch, +-0.25 roll: docs/benchmarks.md, "Renderer v2, head range").
HEAD_LIMIT_RAD = {"headYaw": 0.3, "headPitch": 0.2, "headRoll": 0.15}
# Slow drift: time constant (s) and std (rad, style 1) of yaw, pitch, roll.
DRIFT_TAU_S = np.array([1.5, 1.5, 2.0])
DRIFT_STD = np.array([0.1, 0.04, 0.04])
VOR_GAIN = 0.8  # the eyes counter-rotate this much of the head turn: they stay on the viewer
SACCADE_HOLD_S = (0.5, 2.5)
SACCADE_S = 0.06


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _ramp(x: np.ndarray | float, lo: float, hi: float) -> np.ndarray:
    return _smoothstep((np.asarray(x, np.float64) - lo) / (hi - lo))


def frame_times(n_frames: int) -> np.ndarray:
    """Centre (s) of each frame: frame k covers [0.04 k, 0.04 (k + 1))."""
    return (np.arange(n_frames) + 0.5) / FPS


# --- analysis -------------------------------------------------------------------------------


@dataclass
class Features:
    """Per-frame prosodic features of an utterance."""

    energy_db: np.ndarray  # frame level in dB re the utterance's loud level (95th percentile)
    f0_hz: np.ndarray  # YIN F0; 0 where unvoiced
    voiced: np.ndarray  # bool

    @property
    def f0_st(self) -> np.ndarray:
        """F0 in semitones re the utterance's median voiced F0; nan where unvoiced."""
        out = np.full(len(self.f0_hz), np.nan)
        if self.voiced.any():
            ref = np.median(self.f0_hz[self.voiced])
            out[self.voiced] = 12.0 * np.log2(self.f0_hz[self.voiced] / ref)
        return out


def _frames(audio: np.ndarray, n_frames: int, size: int) -> np.ndarray:
    """(n_frames, size) windows centred on the frame centres (zero-padded at the ends)."""
    half = size // 2
    centre = SAMPLES_PER_FRAME // 2
    padded = np.zeros(half + n_frames * SAMPLES_PER_FRAME + size, np.float64)
    n = min(len(audio), n_frames * SAMPLES_PER_FRAME)
    padded[half : half + n] = audio[:n]
    view = np.lib.stride_tricks.sliding_window_view(padded, size)
    return view[centre : centre + n_frames * SAMPLES_PER_FRAME : SAMPLES_PER_FRAME]


def frame_energy_db(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """Level (dBFS) of each frame's own 640 samples."""
    padded = np.zeros(n_frames * SAMPLES_PER_FRAME)
    n = min(len(audio), len(padded))
    padded[:n] = audio[:n]
    power = np.mean(padded.reshape(n_frames, SAMPLES_PER_FRAME) ** 2, axis=1)
    return 10.0 * np.log10(power + 1e-12)


def yin(audio: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """F0 (Hz) and aperiodicity (YIN's normalized difference at the period, 0 = periodic)
    of each frame, from a 50 ms window centred on it (de Cheveigne and Kawahara, 2002)."""
    frames = _frames(audio, n_frames, YIN_WINDOW)
    frames = frames - frames.mean(axis=1, keepdims=True)
    tau_min = int(SAMPLE_RATE / F0_RANGE_HZ[1])
    tau_max = int(SAMPLE_RATE / F0_RANGE_HZ[0])
    width = YIN_WINDOW - tau_max - 1  # integration window (the dip may look at tau_max + 1)
    nfft = 1 << int(np.ceil(np.log2(YIN_WINDOW + width)))
    # d(tau) = sum_j (x_j - x_{j+tau})^2 over j < width, from energies and a cross-correlation.
    spec_head = np.fft.rfft(frames[:, :width], nfft)
    spec_all = np.fft.rfft(frames, nfft)
    cross = np.fft.irfft(np.conj(spec_head) * spec_all, nfft)[:, : tau_max + 2]
    energy = np.concatenate([np.zeros((n_frames, 1)), np.cumsum(frames**2, axis=1)], axis=1)
    taus = np.arange(tau_max + 2)
    e_head = energy[:, width][:, None]
    e_shift = energy[:, taus + width] - energy[:, taus]
    diff = np.maximum(e_head + e_shift - 2.0 * cross, 0.0)
    cumulative = np.cumsum(diff[:, 1:], axis=1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = diff[:, 1:] * taus[1:] / np.maximum(cumulative, 1e-12)
    f0 = np.zeros(n_frames)
    aperiodicity = np.ones(n_frames)
    for k in range(n_frames):
        d = cmnd[k]
        below = np.flatnonzero(d[tau_min : tau_max + 1] < YIN_THRESHOLD)
        if below.size:
            tau = tau_min + int(below[0])
            while tau + 1 <= tau_max and d[tau + 1] < d[tau]:
                tau += 1  # walk down to the bottom of the first dip
        else:
            tau = tau_min + int(np.argmin(d[tau_min : tau_max + 1]))
        # Parabolic interpolation of the dip for a sub-sample period.
        a, b, c = d[tau - 1], d[tau], d[tau + 1]
        denom = a - 2.0 * b + c
        shift = 0.5 * (a - c) / denom if denom > 1e-12 else 0.0
        f0[k] = SAMPLE_RATE / (tau + float(np.clip(shift, -1.0, 1.0)))
        aperiodicity[k] = float(b)
    return f0, aperiodicity


def analyse(audio: np.ndarray, n_frames: int) -> Features:
    """Energy and F0 of each frame."""
    audio = np.asarray(audio, np.float64)
    level = frame_energy_db(audio, n_frames)
    audible = level > -80.0
    loud = np.percentile(level[audible], 95) if audible.any() else 0.0
    energy = level - loud
    f0, aperiodicity = yin(audio, n_frames)
    voiced = (aperiodicity < VOICED_APERIODICITY) & (energy > SILENT_DB)
    return Features(energy_db=energy, f0_hz=np.where(voiced, f0, 0.0), voiced=voiced)


# --- speech structure -----------------------------------------------------------------------


def _speech_mask(phones: Sequence[Phone], feats: Features, n_frames: int) -> np.ndarray:
    """Frames inside speech: from the phones when there are any, else from the level."""
    if not phones:
        return feats.energy_db > -30.0
    t = frame_times(n_frames)
    mask = np.zeros(n_frames, bool)
    for p in phones:
        if p.label != "SIL":
            mask |= (t >= p.start) & (t < p.end)
    return mask


def pauses(speech: np.ndarray) -> list[tuple[int, int]]:
    """Silences of at least PAUSE_S that follow speech, as frame ranges [start, end)."""
    out = []
    k, n = 0, len(speech)
    spoken = False
    while k < n:
        if speech[k]:
            spoken = True
            k += 1
            continue
        end = k
        while end < n and not speech[end]:
            end += 1
        if spoken and (end - k) / FPS >= PAUSE_S:
            out.append((k, end))
        k = end
    return out


def activity(speech: np.ndarray) -> np.ndarray:
    """Smooth 0..1 "is speaking": gaps shorter than a pause bridged, then blurred."""
    bridge = round(PAUSE_S * FPS)
    closed = ndimage.binary_closing(np.pad(speech, bridge), structure=np.ones(bridge))
    closed = closed[bridge : bridge + len(speech)] | speech
    return np.clip(ndimage.gaussian_filter1d(closed.astype(float), 3.0, mode="nearest"), 0, 1)


def syllables(phones: Sequence[Phone], feats: Features) -> list[tuple[float, float]]:
    """(onset s, prominence 0..1) of each syllable nucleus.

    Nuclei are the vowels when phones are known, else peaks of the level contour. Prominence
    is how loud, how high-pitched and how long the nucleus is relative to the utterance:
    stressed syllables are all three.
    """
    n = len(feats.energy_db)
    f0 = np.nan_to_num(feats.f0_st, nan=0.0)
    nuclei: list[tuple[float, float, float]] = []  # onset, end, seconds
    if phones:
        nuclei = [(p.start, p.end, p.end - p.start) for p in phones if p.label in VOWELS]
    else:
        level = ndimage.gaussian_filter1d(feats.energy_db, 1.5)
        peaks, _ = signal.find_peaks(level, height=-12.0, distance=int(0.2 * FPS), prominence=3)
        nuclei = [((k - 1.5) / FPS, (k + 2.5) / FPS, 0.1) for k in peaks]
    out = []
    for start, end, seconds in nuclei:
        lo = min(max(int(start * FPS), 0), n - 1)
        hi = min(max(int(np.ceil(end * FPS)), lo + 1), n)
        loud = _ramp(feats.energy_db[lo:hi].max(), -15.0, -3.0)
        high = _ramp(f0[lo:hi].max(), 0.0, 4.0)
        long = _ramp(seconds, 0.06, 0.18)
        out.append((start, float(loud * (0.5 + 0.3 * high + 0.2 * long))))
    return out


def question_ends(feats: Features, phrase_ends: Sequence[int]) -> list[int]:
    """Frames ending a phrase whose F0 rises by QUESTION_RISE_ST over its last 0.5 s and
    ends above the speaker's median (a statement can rise a little from a low dip)."""
    f0 = feats.f0_st
    out = []
    span = int(0.5 * FPS)
    for end in phrase_ends:
        k = np.arange(max(end - span, 0), end)
        ok = ~np.isnan(f0[k])
        if ok.sum() < 5:
            continue
        slope, offset = np.polyfit(k[ok] / FPS, f0[k][ok], 1)
        final = slope * k[ok][-1] / FPS + offset
        if slope * 0.5 >= QUESTION_RISE_ST and final >= QUESTION_FINAL_ST:
            out.append(end)
    return out


# --- tracks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProsodyStyle:
    """Per-utterance gesture style."""

    head: float = 1.0  # scales drift and nods
    nod: float = 1.0
    brow: float = 1.0
    gaze: float = 1.0
    breath_hz: float = 0.25
    breath: float = 1.0

    @classmethod
    def draw(cls, rng: np.random.Generator, head: float = 1.0) -> ProsodyStyle:
        return cls(
            head=head,
            nod=float(rng.uniform(0.6, 1.4)),
            brow=float(rng.uniform(0.5, 1.3)),
            gaze=float(rng.uniform(0.6, 1.3)),
            breath_hz=float(rng.uniform(0.2, 0.33)),
            breath=float(rng.uniform(0.6, 1.4)),
        )


def smooth_noise(rng: np.random.Generator, n_frames: int, tau_s: float) -> np.ndarray:
    """Unit-variance noise low-passed twice with time constant tau (smooth, stationary)."""
    a = np.exp(-1.0 / (FPS * tau_s))
    b, den = [(1.0 - a) ** 2], np.convolve([1.0, -a], [1.0, -a])
    burn = int(6 * tau_s * FPS)
    out = signal.lfilter(b, den, rng.standard_normal(n_frames + burn))[burn:]
    impulse = signal.lfilter(b, den, signal.unit_impulse(burn + 10 * int(tau_s * FPS)))
    return out / np.sqrt(np.sum(impulse**2))


def blink_onsets(
    rng: np.random.Generator, seconds: float, boundaries: Sequence[float]
) -> list[float]:
    """Blink start times (s): a 2-6 s schedule, plus (likely) one at each phrase boundary,
    which restarts the schedule; never two within BLINK_MIN_GAP_S."""
    lucky = [t for t in boundaries if rng.random() < BOUNDARY_BLINK_P]
    jitter = rng.uniform(0.02, 0.12, size=len(lucky))
    extra = sorted(t + j for t, j in zip(lucky, jitter, strict=True))
    onsets: list[float] = []
    last = -np.inf
    following = float(rng.uniform(0.3, 3.0))  # a recording starts at an arbitrary moment
    while True:
        due = [t for t in extra if t - last >= BLINK_MIN_GAP_S and t < following]
        t = due[0] if due else following
        if t >= seconds:
            return onsets
        onsets.append(t)
        last = t
        following = t + float(rng.uniform(*BLINK_INTERVAL_S))
        extra = [e for e in extra if e > t]


def blink_curve(onsets: Sequence[float], n_frames: int) -> np.ndarray:
    """Lid closure (0..1) at the frame centres. The fully shut part lasts one frame period,
    so a frame centre always lands in it and the renderer shows every blink closed."""
    t = frame_times(n_frames)
    out = np.zeros(n_frames)
    for onset in onsets:
        s = t - onset
        closing = _smoothstep(s / BLINK_CLOSE_S)
        reopen = 1.0 - _smoothstep((s - BLINK_CLOSE_S - BLINK_HOLD_S) / BLINK_OPEN_S)
        out = np.maximum(out, np.where(s < BLINK_CLOSE_S, closing, reopen) * (s >= 0))
    return out


def nod_curve(prominent: Sequence[tuple[float, float]], n_frames: int) -> np.ndarray:
    """Head pitch (rad, positive = down) of nods: (onset s, size rad) each a smooth dip that
    starts NOD_LEAD_S before the syllable and rebounds a little."""
    t = frame_times(n_frames)

    def bump(s: np.ndarray) -> np.ndarray:
        u = np.clip(s / NOD_PEAK_S, 0.0, None)
        return u * u * np.exp(2.0 * (1.0 - u))

    out = np.zeros(n_frames)
    for onset, size in prominent:
        s = t - (onset - NOD_LEAD_S)
        out += size * (bump(s) - NOD_REBOUND * bump(s - 0.3))
    return out


def choose_nods(
    syllables_: Sequence[tuple[float, float]], rng: np.random.Generator, style: ProsodyStyle
) -> list[tuple[float, float]]:
    """Nods on the more prominent syllables, not closer than NOD_MIN_GAP_S."""
    if not syllables_:
        return []
    scores = np.array([p for _, p in syllables_])
    bar = max(0.45, float(np.percentile(scores, 55)))
    sizes = rng.uniform(0.7, 1.3, size=len(scores))
    out: list[tuple[float, float]] = []
    for (onset, score), size in zip(syllables_, sizes, strict=True):
        if score >= bar and (not out or onset - out[-1][0] >= NOD_MIN_GAP_S):
            out.append((onset, NOD_RAD * style.nod * style.head * score * size))
    return out


def brow_curve(
    feats: Features, speaking: np.ndarray, questions: Sequence[int], style: ProsodyStyle
) -> np.ndarray:
    """Brow raise (0..1): with pitch peaks while speaking, and over the end of questions."""
    n = len(speaking)
    f0 = feats.f0_st
    # Hold the pitch through unvoiced stretches, fading towards the mean.
    held = np.zeros(n)
    value = 0.0
    for k in range(n):
        value = f0[k] if not np.isnan(f0[k]) else 0.85 * value
        held[k] = value
    peaks = _ramp(held, *BROW_PITCH_ST) * speaking
    # A question raises the brows over its final rise (already under way and audible by
    # then) and lets them down after it.
    question = np.zeros(n)
    t = frame_times(n)
    for end in questions:
        s = t - end / FPS
        question = np.maximum(question, _smoothstep((s + 0.3) / 0.25) * (1 - _smoothstep(s / 0.4)))
    raise_ = np.maximum(0.8 * peaks, question)
    # Zero-phase smoothing (+-40 ms): brows move in ~200 ms, never in one frame.
    return np.clip(ndimage.gaussian_filter1d(raise_, 1.5, mode="nearest") * style.brow, 0, 1)


def gaze_curve(rng: np.random.Generator, n_frames: int, style: ProsodyStyle) -> np.ndarray:
    """(n_frames, 2) gaze: fixations held 0.5-2.5 s, mostly on the viewer, joined by 60 ms
    saccades."""
    seconds = n_frames / FPS
    t = frame_times(n_frames)
    out = np.zeros((n_frames, 2))
    previous = np.zeros(2)
    start = 0.0
    while start < seconds:
        if rng.random() < 0.45:
            target = rng.normal(0.0, [0.03, 0.02])
        else:
            target = rng.normal(0.0, [0.15, 0.08]) * style.gaze
        target = np.clip(target, [-0.35, -0.2], [0.35, 0.2])
        w = _smoothstep((t - start) / SACCADE_S)[:, None]
        out = np.where((t >= start)[:, None], previous + w * (target - previous), out)
        previous = target
        start += float(rng.uniform(*SACCADE_HOLD_S))
    return out


def prosody_motion(
    audio: np.ndarray,
    phones: Sequence[Phone],
    n_frames: int,
    rng: np.random.Generator,
    head: float = 1.0,
    beats: Sequence[float] = (),
) -> np.ndarray:
    """(n_frames, motion_frame.DIM) float32: head, brows, eyes and gaze for the utterance;
    the mouth fields are zero. ``head`` scales head motion (the caller's speaking style);
    ``beats`` (s), a song's or rap's beats, which most singers and rappers nod to."""
    # Each track draws from its own generator, so changing one never reshuffles another.
    seeds = rng.integers(0, 2**63, size=5)
    style_rng, drift_rng, blink_rng, nod_rng, gaze_rng = (np.random.default_rng(s) for s in seeds)
    style = ProsodyStyle.draw(style_rng, head=head)
    feats = analyse(audio, n_frames)
    speech = _speech_mask(phones, feats, n_frames)
    speaking = activity(speech)
    breaks = pauses(speech)
    # Phrases end where pauses start, and the last one where speech does.
    phrase_ends = {start for start, _ in breaks}
    if speech.any():
        phrase_ends.add(int(np.flatnonzero(speech)[-1]) + 1)
    questions = question_ends(feats, sorted(phrase_ends))

    out = np.zeros((n_frames, motion_frame.DIM))
    # Drift: wider while speaking.
    gain = (0.5 + 0.5 * speaking)[:, None] * style.head
    drift = np.stack([smooth_noise(drift_rng, n_frames, tau) for tau in DRIFT_TAU_S], axis=1)
    yaw, pitch, roll = (drift * DRIFT_STD * gain).T
    nods = nod_curve(choose_nods(syllables(phones, feats), nod_rng, style), n_frames)
    if len(beats) and nod_rng.random() < BEAT_NOD_P:
        size = float(nod_rng.uniform(*BEAT_NOD_RAD)) * style.head
        every = int(nod_rng.choice([1, 2]))  # on every beat, or every other one
        grooves = [(float(b), size) for b in list(beats)[::every]]
        nods = nods + nod_curve(grooves, n_frames)
    t = frame_times(n_frames)
    phase = float(style_rng.uniform(0.0, 2.0 * np.pi))
    breath = np.sin(2.0 * np.pi * style.breath_hz * t + phase) * style.breath
    calm = 1.0 - 0.6 * speaking  # breathing shows most in pauses

    def cap(name: str, value: np.ndarray) -> np.ndarray:
        limit = HEAD_LIMIT_RAD[name]
        return limit * np.tanh(value / limit)  # soft limit: no hard stop, no kink

    out[:, _I["headYaw"]] = cap("headYaw", yaw)
    out[:, _I["headPitch"]] = cap("headPitch", pitch + nods + 0.006 * calm * breath)
    out[:, _I["headRoll"]] = cap("headRoll", roll)
    out[:, _I["headTx"]] = 0.02 * out[:, _I["headYaw"]]
    out[:, _I["headTy"]] = 0.004 * calm * breath + 0.03 * nods

    brows = brow_curve(feats, speaking, questions, style)
    out[:, _I["browInnerUp"]] = 0.5 * brows
    out[:, _I["browOuterUpLeft"]] = out[:, _I["browOuterUpRight"]] = 0.35 * brows
    out[:, _I["eyeWideLeft"]] = out[:, _I["eyeWideRight"]] = 0.1 * brows

    boundaries = [start / FPS for start, _ in breaks]
    blinks = blink_curve(blink_onsets(blink_rng, n_frames / FPS, boundaries), n_frames)
    out[:, _I["eyeBlinkLeft"]] = out[:, _I["eyeBlinkRight"]] = blinks

    gaze = gaze_curve(gaze_rng, n_frames, style)
    out[:, _I["gazeX"]] = gaze[:, 0] - VOR_GAIN * out[:, _I["headYaw"]]
    out[:, _I["gazeY"]] = gaze[:, 1] - VOR_GAIN * out[:, _I["headPitch"]]
    return motion_frame.clip(out)
