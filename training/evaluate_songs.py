"""Singing and rap read from rendered frames, and the head and blink readings of any rendered
clip: the measurements `emote eval` (training/evaluate.py, the driver, which renders and
tracks) adds to its table.

The clips (../shared/assets/singing: ``sing_*.wav`` over instrumental accompaniment,
``rap_*.wav`` very fast speech) have no phone alignments, so everything here is read from
the audio itself against the FaceMesh track of the rendered frames
(measure.facemesh.FaceTrack). Frame k of the track covers audio samples [640k, 640(k+1))
(contracts.clock); "the mouth" is ``fill_nan(track.mouth)``: the inner-lip gap over the face
height, frames without a face interpolated.

Audio readings, one value per 40 ms video frame:

* **voice-band envelope** (``voice_envelope_db``): the audio band-passed to 300-3400 Hz
  (4th-order Butterworth, zero phase: ``scipy.signal.sosfiltfilt``), RMS over the frame's 640
  samples, in dB (20 log10), floored at the clip's loudest frame minus ``FLOOR_DB`` (40 dB).
  The band keeps the voice's formants and drops most of an accompaniment's bass and the
  mains hum; music inside the band stays (there is no source separation).
* **voiced** (``voiced_frames``): the largest normalized autocorrelation of the frame's
  band-passed samples (mean removed) at lags of 32-200 samples (pitch 80-500 Hz) is at least
  ``VOICED_R`` (0.6). Sustained chords are periodic too: inside an accompanied clip this
  mostly tells speech-like noise apart from tones, and the loudness gate of the held notes
  does the rest.

Metrics (each over one clip; the driver averages clips):

* ``mouth_range``: p95 - p5 of the mouth over all frames (face-height units).
* ``envelope_corr``, ``envelope_lag_ms``: the Pearson correlation of the mouth with the
  voice-band envelope at the lag within +-80 ms (+-2 frames, refined by a parabola) that
  maximizes it (measure.xcorr.best_lag); positive lag = the mouth follows the sound.
* held notes (``held_notes``): maximal runs of frames that are voiced, at or above the
  clip's 60th percentile of the voice-band envelope (dB) and within 6 dB of the run's
  running level (the mean dB of the run's frames so far); a frame that breaks the rule ends
  the run and may start the next one. Runs of at least 8 frames (>= 0.3 s) are held notes.
* ``held_open``: over every held note's frames after its first 2 (80 ms: the attack), the
  fraction where the mouth is above p5 + 0.3 (p95 - p5) of the clip's mouth;
  ``held_mean_opening``: the mean mouth over the same frames (face-height units).
* ``jaw_quiver``: the population std of the frame-to-frame mouth change between
  consecutive frames of those same held-note frames, over the clip's ``mouth_range``
  (vibrato must not shake the jaw: lower is better).
* syllable nuclei (``syllable_nuclei``): the voice-band envelope smoothed with the 3-tap
  kernel [1, 2, 1] / 4; its local maxima (higher than the frame before, not lower than the
  frame after) that rise at least 6 dB above the lowest smoothed value since the last
  nucleus (or the clip's start); two nuclei closer than 100 ms (3 frames) keep the higher.
  ``syllables`` is their count.
* ``syllable_peaks``: the fraction of nuclei with a peak of the mouth within +-80 ms (+-2
  frames) whose prominence (scipy.signal.find_peaks' definition: height above the higher of
  the two lowest points on either side before higher ground) is at least 10% of the clip's
  ``mouth_range``.

For every rendered clip (real speech, singing, rap):

* ``head_px_std``: sqrt(var x + var y) of the nose tip (FaceMesh landmark 1) in pixels of the
  512x512 render over the frames with a face (population variances). Real talkers: 8-25 px.
* ``blinks_per_min``: measure.lipsync.detect_blinks on the eye opening, per minute of clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contracts.clock import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from measure.facemesh import FaceTrack
from measure.lipsync import detect_blinks, fill_nan
from measure.xcorr import best_lag

VOICE_BAND_HZ = (300.0, 3400.0)
FLOOR_DB = 40.0  # the envelope floor below the clip's loudest frame
VOICED_R = 0.6  # normalized autocorrelation at the pitch period that counts as voiced
PITCH_LAGS = (SAMPLE_RATE // 500, SAMPLE_RATE // 80)  # 32..200 samples: 500..80 Hz
LAG_MS = 80.0  # how far the mouth may be from the sound (envelope lag, syllable peaks)
HELD_PERCENTILE = 60.0  # a held note is at least this loud (percentile of the dB envelope)
HELD_BAND_DB = 6.0  # and within this of its running level
HELD_MIN_FRAMES = 8  # >= 0.3 s
HELD_SKIP_FRAMES = 2  # 80 ms of attack not judged
OPEN_FRACTION = 0.3  # open: above p5 + 0.3 (p95 - p5)
SYLLABLE_RISE_DB = 6.0
SYLLABLE_GAP_FRAMES = 3  # 100 ms at 40 ms frames
MOUTH_PROMINENCE = 0.1  # of the clip's mouth range
NOSE_TIP = 1
SONG_PREFIXES = ("sing", "rap")


# ---- the audio -------------------------------------------------------------------------


def _frames(x: np.ndarray, n_frames: int) -> np.ndarray:
    """(n_frames, 640): frame k holds samples [640k, 640(k+1)), zeros past the end."""
    padded = np.zeros(n_frames * SAMPLES_PER_FRAME, np.float64)
    m = min(len(x), len(padded))
    padded[:m] = x[:m]
    return padded.reshape(n_frames, SAMPLES_PER_FRAME)


def voice_band(audio: np.ndarray) -> np.ndarray:
    """The audio band-passed to VOICE_BAND_HZ (4th-order Butterworth, zero phase)."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(4, VOICE_BAND_HZ, btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return np.asarray(sosfiltfilt(sos, np.asarray(audio, np.float64)))


def voice_envelope_db(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """Voice-band RMS per video frame in dB, floored FLOOR_DB below the loudest frame."""
    rms = np.sqrt((_frames(voice_band(audio), n_frames) ** 2).mean(axis=1))
    db = 20.0 * np.log10(np.maximum(rms, 1e-10))
    return np.maximum(db, db.max() - FLOOR_DB)


def voiced_frames(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """Frames whose band-passed samples repeat at a pitch period of 80-500 Hz: the largest
    normalized autocorrelation over lags PITCH_LAGS is at least VOICED_R."""
    x = _frames(voice_band(audio), n_frames)
    x = x - x.mean(axis=1, keepdims=True)
    best = np.zeros(n_frames)
    for lag in range(PITCH_LAGS[0], PITCH_LAGS[1] + 1):
        a, b = x[:, :-lag], x[:, lag:]
        denom = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
        r = (a * b).sum(axis=1) / np.maximum(denom, 1e-12)
        best = np.maximum(best, r)
    return best >= VOICED_R


# ---- the mouth against the audio ----------------------------------------------------------


def mouth_range(mouth: np.ndarray) -> float:
    """p95 - p5 of the mouth opening."""
    return float(np.percentile(mouth, 95) - np.percentile(mouth, 5))


def envelope_follow(mouth: np.ndarray, envelope_db: np.ndarray) -> tuple[float, float]:
    """(correlation, lag ms) of the mouth with the envelope at the best lag within
    +-LAG_MS; positive lag = the mouth follows the sound."""
    lag, corr = best_lag(mouth, envelope_db, max_ms=LAG_MS)
    if corr < -1.0:  # best_lag's marker for "nothing to correlate" (a flat track)
        return float("nan"), float("nan")
    return float(corr), float(lag)


def held_notes(envelope_db: np.ndarray, voiced: np.ndarray) -> list[tuple[int, int]]:
    """Held notes as (first frame, end frame exclusive): runs of voiced frames at or above
    the HELD_PERCENTILE of the envelope, each within HELD_BAND_DB of the mean of the run so
    far, at least HELD_MIN_FRAMES long."""
    loud = (envelope_db >= np.percentile(envelope_db, HELD_PERCENTILE)) & voiced
    notes: list[tuple[int, int]] = []
    start, total = -1, 0.0
    for k, db in enumerate(envelope_db):
        joins = start >= 0 and loud[k] and abs(db - total / (k - start)) <= HELD_BAND_DB
        if joins:
            total += db
            continue
        if start >= 0 and k - start >= HELD_MIN_FRAMES:
            notes.append((start, k))
        start, total = (k, float(db)) if loud[k] else (-1, 0.0)
    if start >= 0 and len(envelope_db) - start >= HELD_MIN_FRAMES:
        notes.append((start, len(envelope_db)))
    return notes


def held_note_metrics(mouth: np.ndarray, notes: list[tuple[int, int]]) -> dict[str, float]:
    """held_notes, held_open, held_mean_opening and jaw_quiver (module docstring) of the
    mouth on the held notes, each note's first HELD_SKIP_FRAMES left out."""
    lo, hi = np.percentile(mouth, 5), np.percentile(mouth, 95)
    threshold = lo + OPEN_FRACTION * (hi - lo)
    spans = [mouth[a + HELD_SKIP_FRAMES : b] for a, b in notes]
    spans = [s for s in spans if len(s)]
    frames = np.concatenate(spans) if spans else np.zeros(0)
    steps = np.concatenate([np.diff(s) for s in spans]) if spans else np.zeros(0)
    nan = float("nan")
    return {
        "held_notes": len(notes),
        "held_open": float((frames > threshold).mean()) if len(frames) else nan,
        "held_mean_opening": float(frames.mean()) if len(frames) else nan,
        "jaw_quiver": float(steps.std() / max(hi - lo, 1e-9)) if len(steps) else nan,
    }


def syllable_nuclei(envelope_db: np.ndarray) -> np.ndarray:
    """Frames of the syllable nuclei (module docstring) of a dB envelope."""
    padded = np.pad(envelope_db, 1, mode="edge")
    smooth = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
    nuclei: list[int] = []
    floor = np.inf  # the lowest smoothed value since the last nucleus
    for k in range(len(smooth)):
        floor = min(floor, smooth[k])
        peak = 0 < k < len(smooth) - 1 and smooth[k - 1] < smooth[k] >= smooth[k + 1]
        if not peak or smooth[k] - floor < SYLLABLE_RISE_DB:
            continue
        if nuclei and k - nuclei[-1] < SYLLABLE_GAP_FRAMES:
            if smooth[k] > smooth[nuclei[-1]]:
                nuclei[-1] = k
        else:
            nuclei.append(k)
        floor = smooth[k]
    return np.asarray(nuclei, int)


def syllable_peaks(mouth: np.ndarray, nuclei: np.ndarray) -> float:
    """Fraction of nuclei with a mouth peak of prominence >= MOUTH_PROMINENCE of the clip's
    mouth range within +-LAG_MS."""
    from scipy.signal import find_peaks

    if len(nuclei) == 0:
        return float("nan")
    reach = round(LAG_MS / 1000 * FPS)
    peaks, _ = find_peaks(mouth, prominence=max(MOUTH_PROMINENCE * mouth_range(mouth), 1e-9))
    if len(peaks) == 0:
        return 0.0
    nearest = np.abs(nuclei[:, None] - peaks[None, :]).min(axis=1)
    return float((nearest <= reach).mean())


# ---- any rendered clip ------------------------------------------------------------------------


def head_px_std(landmarks: list[np.ndarray | None]) -> float:
    """sqrt(var x + var y) of the nose tip (landmark 1) in pixels over the frames with a
    face; NaN with fewer than 2."""
    tips = np.array([lm[NOSE_TIP, :2] for lm in landmarks if lm is not None], np.float64)
    if len(tips) < 2:
        return float("nan")
    return float(np.sqrt(tips.var(axis=0).sum()))


def blinks_per_min(eyes: np.ndarray) -> float:
    """Blinks (measure.lipsync.detect_blinks) per minute of clip; NaN without a face."""
    if len(eyes) == 0 or np.isnan(eyes).all():
        return float("nan")
    onsets, _ = detect_blinks(eyes)
    return len(onsets) / (len(eyes) / FPS / 60.0)


def face_motion(track: FaceTrack) -> dict[str, float]:
    """The head and blink readings of any rendered clip."""
    return {
        "head_px_std": head_px_std(track.landmarks),
        "blinks_per_min": blinks_per_min(track.eyes),
    }


# ---- songs ------------------------------------------------------------------------------------


@dataclass
class SongClip:
    name: str  # the file's stem
    kind: str  # "sing" or "rap"
    audio: np.ndarray  # mono 16 kHz float32


def song_clips(directory: Path) -> list[SongClip]:
    """The ``sing_*.wav`` and ``rap_*.wav`` clips in ``directory``, sorted by name."""
    from engines.audio_io import decode_audio

    return [
        SongClip(wav.stem, kind, decode_audio(wav))
        for kind in SONG_PREFIXES
        for wav in sorted(directory.glob(f"{kind}_*.wav"))
    ]


def song_metrics(track: FaceTrack, audio: np.ndarray, kind: str) -> dict[str, float]:
    """Every metric of the module docstring for one rendered clip; the held-note ones
    (held_*, jaw_quiver) only for singing (``kind == "sing"``)."""
    n = len(track.mouth)
    mouth = fill_nan(track.mouth)
    envelope = voice_envelope_db(audio, n)
    corr, lag = envelope_follow(mouth, envelope)
    nuclei = syllable_nuclei(envelope)
    row: dict[str, float] = {
        "mouth_range": mouth_range(mouth),
        "envelope_corr": corr,
        "envelope_lag_ms": lag,
        "syllables": len(nuclei),
        "syllable_peaks": syllable_peaks(mouth, nuclei),
    }
    if kind == "sing":
        row |= held_note_metrics(mouth, held_notes(envelope, voiced_frames(audio, n)))
    return row | face_motion(track) | {"tracked": float(np.mean(~np.isnan(track.mouth)))}
