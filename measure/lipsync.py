"""Lip sync measured on rendered frames: FaceMesh tracks the face in the output video and the
mouth opening is compared with the speech (envelope, reference phone alignments).

``python -m bench.lipsync`` runs it over all the real speech clips (the numbers in
docs/benchmarks.md); training/evaluate.py reads rendered motion with the same report.

Conventions: video frame k shows time [k/25, (k+1)/25); its centre is (k + 0.5)/25 s. The mouth
opening is the inner-lip gap (landmarks 13-14) over the face height (landmarks 10-152); the
eye opening is lid gap over eye width. Negative lag = the lips lead the sound.
"""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contracts.clock import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from contracts.phones import Phone, load_phones
from measure.clip import decode_video, render_clip, write_wav
from measure.facemesh import FaceTrack, FaceTracker
from measure.xcorr import best_lag

BILABIALS = frozenset({"P", "B", "M"})
OPEN_VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY"})
SILENCES = frozenset({"SIL", "SP", "<SIL>"})


PAD_SECONDS = 1.0  # room tone added around each clip so every clip has pauses >= 300 ms


def pad_with_room_tone(audio: np.ndarray, phones: list[Phone]) -> tuple[np.ndarray, list[Phone]]:
    """Add PAD_SECONDS of the recording's own leading room tone at both ends.

    The room tone is the file's leading silence mirrored back and forth (reversed noise has
    the same spectrum), so the pause sounds like the recording, not like digital zero.
    """
    lead = phones[0].end if phones[0].label in SILENCES else 0.1
    tone = audio[: max(int(lead * SAMPLE_RATE) - 160, 160)]
    n = round(PAD_SECONDS * SAMPLE_RATE)
    pad = np.resize(np.concatenate([tone, tone[::-1]]), n)
    shifted = [Phone(p.label, p.start + PAD_SECONDS, p.end + PAD_SECONDS) for p in phones]
    end = PAD_SECONDS + len(audio) / SAMPLE_RATE
    tail = Phone("SIL", end, end + PAD_SECONDS)
    return np.concatenate([pad, audio, pad]), [Phone("SIL", 0.0, PAD_SECONDS), *shifted, tail]


def phone_frames(phone: Phone, n_frames: int) -> np.ndarray:
    """Frames whose centre lies inside the phone (at least the nearest one)."""
    centres = (np.arange(n_frames) + 0.5) / FPS
    inside = np.flatnonzero((centres >= phone.start) & (centres < phone.end))
    if len(inside) == 0:
        inside = np.array([min(n_frames - 1, round((phone.start + phone.end) / 2 * FPS - 0.5))])
    return inside


def speech_envelope(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """RMS of the audio under each video frame."""
    padded = np.zeros(n_frames * SAMPLES_PER_FRAME, np.float32)
    padded[: min(len(audio), len(padded))] = audio[: len(padded)]
    return np.sqrt((padded.reshape(n_frames, SAMPLES_PER_FRAME) ** 2).mean(1))


@dataclass
class LipSyncReport:
    frames: int
    tracked_fraction: float
    correlation: float
    lag_ms: float
    bilabial_closure: float  # fraction of p/b/m phones whose lips close
    bilabials: int
    vowel_opening: float  # mean opening at open vowels
    bilabial_opening: float  # mean opening at p/b/m
    vowel_to_bilabial: float  # their ratio
    silence_to_speech_std: float  # std of opening in silences >= 300 ms / in speech
    blinks: int
    blink_intervals_s: list[float]
    blink_durations_ms: list[float]


def fill_nan(x: np.ndarray) -> np.ndarray:
    """``x`` with its NaNs (frames without a face) interpolated linearly from the measured
    frames (held at the ends); zeros when no frame was measured."""
    good = np.flatnonzero(~np.isnan(x))
    if len(good) == 0:
        return np.zeros_like(x)
    return np.interp(np.arange(len(x)), good, x[good])


def closed_threshold(mouth: np.ndarray) -> float:
    """Opening below which the lips count as closed: 15% of the way from the closed level
    (5th percentile) to wide open (95th percentile) of this clip."""
    lo, hi = np.percentile(mouth, 5), np.percentile(mouth, 95)
    return float(lo + 0.15 * (hi - lo))


# Two dips closer than this (onset to onset) are one blink read twice: a blink takes at least
# ~100 ms to close and reopen, so no second blink can start 120 ms after the first. FaceMesh
# does read some shut painted eyes (the Mona Lisa's) as a little more open than three-quarters
# shut ones, latching onto the crease once no eye is left to see (docs/benchmarks.md, "Blinks").
BLINK_MERGE_FRAMES = 5


def detect_blinks(eyes: np.ndarray) -> tuple[list[int], list[float]]:
    """Blink onsets (frame) and durations (ms, first dip's start to the last's end): eye
    opening below 72% of its median (FaceMesh's lid points stay ~30-45% apart even on shut
    eyes, so a deeper dip never comes); dips starting within BLINK_MERGE_FRAMES of the
    previous blink's onset belong to it."""
    threshold = 0.72 * np.nanmedian(eyes)
    shut = fill_nan(eyes) < threshold
    onsets: list[int] = []
    ends: list[int] = []
    k = 0
    while k < len(shut):
        if shut[k]:
            start = k
            while k < len(shut) and shut[k]:
                k += 1
            if onsets and start - onsets[-1] < BLINK_MERGE_FRAMES:
                ends[-1] = k
            else:
                onsets.append(start)
                ends.append(k)
        k += 1
    return onsets, [(end - start) * 1000.0 / FPS for start, end in zip(onsets, ends, strict=True)]


def lipsync_report(track: FaceTrack, audio: np.ndarray, phones: list[Phone]) -> LipSyncReport:
    n = len(track.mouth)
    mouth = fill_nan(track.mouth)
    envelope = speech_envelope(audio, n)
    lag, corr = best_lag(mouth, envelope)
    closed = closed_threshold(mouth)
    bilabials = [p for p in phones if p.label in BILABIALS and p.end - p.start >= 0.03]
    closures = [mouth[phone_frames(p, n)].min() <= closed for p in bilabials]
    vowels = [p for p in phones if p.label in OPEN_VOWELS]
    vowel_open = np.mean([mouth[phone_frames(p, n)].mean() for p in vowels]) if vowels else np.nan
    bilabial_open = (
        np.mean([mouth[phone_frames(p, n)].mean() for p in bilabials]) if bilabials else np.nan
    )
    silent = np.zeros(n, bool)
    for p in phones:
        if p.label in SILENCES and p.end - p.start >= 0.3:
            silent[phone_frames(p, n)] = True
    speech_frames = np.zeros(n, bool)
    for p in phones:
        if p.label not in SILENCES:
            speech_frames[phone_frames(p, n)] = True
    silence_std = float(mouth[silent].std()) if silent.any() else 0.0
    speech_std = float(mouth[speech_frames].std()) if speech_frames.any() else 1.0
    onsets, durations = detect_blinks(track.eyes)
    return LipSyncReport(
        frames=n,
        tracked_fraction=float(np.mean(~np.isnan(track.mouth))),
        correlation=round(corr, 3),
        lag_ms=lag,
        bilabial_closure=float(np.mean(closures)) if closures else float("nan"),
        bilabials=len(bilabials),
        vowel_opening=float(vowel_open),
        bilabial_opening=float(bilabial_open),
        vowel_to_bilabial=float(vowel_open / max(bilabial_open, 1e-4)),
        silence_to_speech_std=silence_std / max(speech_std, 1e-9),
        blinks=len(onsets),
        blink_intervals_s=[round((b - a) / FPS, 2) for a, b in itertools.pairwise(onsets)],
        blink_durations_ms=durations,
    )


def eye_identity(
    source: np.ndarray, source_lm: np.ndarray, frame: np.ndarray, frame_lm: np.ndarray
) -> float:
    """Normalized cross-correlation of the eye region in ``frame`` with the portrait's, each
    cropped around its own landmarks and resized to the same shape (grayscale)."""
    import cv2

    def patch(img: np.ndarray, lm: np.ndarray) -> np.ndarray:
        idx = [33, 133, 159, 145, 362, 263, 386, 374, 70, 300]
        box = lm[idx]
        x0, y0 = box.min(0) - 8
        x1, y1 = box.max(0) + 8
        crop = img[int(max(y0, 0)) : int(y1), int(max(x0, 0)) : int(x1)]
        gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return cv2.resize(gray, (128, 48), interpolation=cv2.INTER_AREA)

    a, b = patch(source, source_lm), patch(frame, frame_lm)
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (np.sqrt((a * a).sum() * (b * b).sum()) + 1e-9))


def contact_sheet(frames: list[np.ndarray], track: FaceTrack, path: Path) -> list[int]:
    """Save a labelled sheet of the mouth closed, wide open, rounded (narrowest open mouth) and
    a blink, each with a full frame and a face close-up; returns the frame indices."""
    from PIL import Image, ImageDraw

    mouth, width, eyes = (fill_nan(x) for x in (track.mouth, track.width, track.eyes))
    speaking = mouth > closed_threshold(mouth)
    rounded_score = np.where(speaking, -width, -np.inf)
    picks = {
        "closed": int(np.argmin(np.where(eyes > np.median(eyes) * 0.9, mouth, np.inf))),
        "open": int(np.argmax(mouth)),
        "rounded": int(np.argmax(rounded_score)),
        "blink": int(np.argmin(eyes)),
    }
    tiles = []
    for label, k in picks.items():
        full = Image.fromarray(frames[k]).resize((256, 256))
        size = frames[k].shape[0]
        face = Image.fromarray(
            frames[k][size // 4 : 3 * size // 4 + size // 8, size // 4 : 3 * size // 4]
        )
        face = face.resize((256, 320))
        tile = Image.new("RGB", (256, 256 + 320 + 24), "white")
        tile.paste(full, (0, 24))
        tile.paste(face, (0, 280))
        ImageDraw.Draw(tile).text((6, 5), f"{label} (frame {k})", fill="black")
        tiles.append(tile)
    sheet = Image.new("RGB", (256 * len(tiles), tiles[0].height), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, (256 * i, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return list(picks.values())


def evaluate_clip(
    image: Path,
    wav: Path,
    phones_path: Path,
    seed: int = 0,
    motion: str = "dsp",
    workdir: Path | None = None,
) -> tuple[LipSyncReport, list[np.ndarray], FaceTrack]:
    """Render ``wav`` (padded with its own room tone) and measure the rendered frames."""
    from engines.audio_io import decode_audio

    workdir = workdir or Path(tempfile.mkdtemp())
    audio, phones = pad_with_room_tone(decode_audio(wav), load_phones(phones_path))
    padded = workdir / f"{wav.stem}.padded.wav"
    write_wav(padded, audio)
    out = workdir / f"{wav.stem}.mp4"
    render_clip(image, padded, out, seed, motion)
    frames = decode_video(out)
    tracker = FaceTracker(static=True)  # video mode smooths landmarks over time: it adds lag
    try:
        track = tracker.track(frames)
    finally:
        tracker.close()
    return lipsync_report(track, audio, phones), frames, track
