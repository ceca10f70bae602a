"""Lip sync measured on rendered frames: FaceMesh tracks the face in the output video and the
mouth opening is compared with the speech (envelope, reference phone alignments).

Usage (the numbers in docs/benchmarks.md come from this):
    python -m bench.lipsync [--image PORTRAIT] [--speech DIR] [--json OUT.json] [--sheet OUT.png]

Conventions: video frame k shows time [k/25, (k+1)/25); its centre is (k + 0.5)/25 s. The mouth
opening is the inner-lip gap (landmarks 13-14) over the face height (landmarks 10-152); the
eye opening is lid gap over eye width. Negative lag = the lips lead the sound.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from contracts.clock import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from contracts.phones import Phone, load_phones

REPO = Path(__file__).resolve().parents[1]
SHARED_SPEECH = REPO.parent / "shared" / "assets" / "speech"
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


def best_lag(track: np.ndarray, envelope: np.ndarray, max_ms: float = 200.0) -> tuple[float, float]:
    """(lag in ms, correlation) maximizing corr(track[k], envelope[k + lag]); negative lag =
    the track (lips) leads the envelope (sound). The peak is refined between frames with a
    parabola through the best lag and its neighbours (frames are 40 ms apart)."""
    max_lag = round(max_ms / 1000 * FPS)

    def corr_at(lag: int) -> float:
        if lag >= 0:
            a, b = track[: len(track) - lag], envelope[lag:]
        else:
            a, b = track[-lag:], envelope[: len(envelope) + lag]
        if len(a) < 10 or a.std() < 1e-9 or b.std() < 1e-9:
            return -2.0
        return float(np.corrcoef(a, b)[0, 1])

    lags = list(range(-max_lag, max_lag + 1))
    corrs = [corr_at(lag) for lag in lags]
    i = int(np.argmax(corrs))
    offset = 0.0
    if 0 < i < len(lags) - 1:
        left, mid, right = corrs[i - 1], corrs[i], corrs[i + 1]
        denom = left - 2 * mid + right
        if denom < 0:
            offset = float(np.clip(0.5 * (left - right) / denom, -0.5, 0.5))
    return -(lags[i] + offset) * 1000.0 / FPS, corrs[i]


@dataclass
class FaceTrack:
    mouth: np.ndarray  # (n,) inner-lip gap / face height; nan where no face was found
    width: np.ndarray  # (n,) mouth-corner distance / face height
    eyes: np.ndarray  # (n,) mean eye opening / eye width
    landmarks: list[np.ndarray | None]


class FaceTracker:
    """MediaPipe FaceMesh over a sequence of RGB frames (video mode: tracked, fast)."""

    def __init__(self, static: bool = False, refine: bool = True) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static,
            refine_landmarks=refine,
            max_num_faces=1,
            min_detection_confidence=0.3,
            min_tracking_confidence=0.3,
        )

    def close(self) -> None:
        self._mesh.close()

    def landmarks(self, rgb: np.ndarray) -> np.ndarray | None:
        result = self._mesh.process(np.ascontiguousarray(rgb))
        if not result.multi_face_landmarks:
            return None
        h, w = rgb.shape[:2]
        pts = result.multi_face_landmarks[0].landmark
        return np.array([[p.x * w, p.y * h] for p in pts], np.float32)

    def track(self, frames: list[np.ndarray]) -> FaceTrack:
        mouth, width, eyes, all_lm = [], [], [], []
        for rgb in frames:
            lm = self.landmarks(rgb)
            all_lm.append(lm)
            if lm is None:
                mouth.append(np.nan)
                width.append(np.nan)
                eyes.append(np.nan)
                continue
            face_h = np.linalg.norm(lm[10] - lm[152])
            mouth.append(float(np.linalg.norm(lm[13] - lm[14]) / face_h))
            width.append(float(np.linalg.norm(lm[61] - lm[291]) / face_h))
            right = np.linalg.norm(lm[159] - lm[145]) / np.linalg.norm(lm[33] - lm[133])
            left = np.linalg.norm(lm[386] - lm[374]) / np.linalg.norm(lm[362] - lm[263])
            eyes.append(float((right + left) / 2))
        return FaceTrack(np.array(mouth), np.array(width), np.array(eyes), all_lm)


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


def _fill_nan(x: np.ndarray) -> np.ndarray:
    good = np.flatnonzero(~np.isnan(x))
    if len(good) == 0:
        return np.zeros_like(x)
    return np.interp(np.arange(len(x)), good, x[good])


def closed_threshold(mouth: np.ndarray) -> float:
    """Opening below which the lips count as closed: 15% of the way from the closed level
    (5th percentile) to wide open (95th percentile) of this clip."""
    lo, hi = np.percentile(mouth, 5), np.percentile(mouth, 95)
    return float(lo + 0.15 * (hi - lo))


def detect_blinks(eyes: np.ndarray) -> tuple[list[int], list[float]]:
    """Blink onsets (frame) and durations (ms): eye opening below 72% of its median
    (FaceMesh's lid points stay ~45% apart even on shut eyes, so a deeper dip never comes)."""
    threshold = 0.72 * np.nanmedian(eyes)
    shut = _fill_nan(eyes) < threshold
    onsets, durations = [], []
    k = 0
    while k < len(shut):
        if shut[k]:
            start = k
            while k < len(shut) and shut[k]:
                k += 1
            onsets.append(start)
            durations.append((k - start) * 1000.0 / FPS)
        k += 1
    return onsets, durations


def lipsync_report(track: FaceTrack, audio: np.ndarray, phones: list[Phone]) -> LipSyncReport:
    n = len(track.mouth)
    mouth = _fill_nan(track.mouth)
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

    mouth, width, eyes = (_fill_nan(x) for x in (track.mouth, track.width, track.eyes))
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


def decode_video(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def render_clip(image: Path, audio: Path, out: Path, seed: int = 0, motion: str = "dsp") -> None:
    from stream_server.cli import main

    status = main(
        [
            "render",
            "--image",
            str(image),
            "--audio",
            str(audio),
            "--output",
            str(out),
            "--seed",
            str(seed),
            "--motion",
            motion,
            "--quiet",
        ]
    )
    if status != 0:
        raise RuntimeError(f"render failed with status {status}")


def write_wav(path: Path, audio: np.ndarray) -> None:
    import wave

    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes((np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes())


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--image", type=Path, default=REPO / "assets" / "portraits" / "mona_lisa.jpg"
    )
    parser.add_argument(
        "--speech",
        type=Path,
        default=SHARED_SPEECH if SHARED_SPEECH.is_dir() else REPO / "assets" / "speech",
    )
    parser.add_argument("--motion", default="dsp")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--sheet", type=Path, help="contact sheet PNG of the first clip")
    args = parser.parse_args(argv)
    reports = {}
    for phones_path in sorted(args.speech.glob("*.phones.json")):
        wav = phones_path.with_name(phones_path.name.removesuffix(".phones.json") + ".wav")
        report, frames, track = evaluate_clip(args.image, wav, phones_path, args.seed, args.motion)
        if args.sheet and not reports:
            contact_sheet(frames, track, args.sheet)
        reports[wav.stem] = asdict(report)
        print(
            f"{wav.stem}: corr {report.correlation:.2f} lag {report.lag_ms:+.0f} ms, "
            f"p/b/m closed {report.bilabial_closure:.0%} of {report.bilabials}, "
            f"vowel/pbm {report.vowel_to_bilabial:.1f}x, "
            f"silence std {report.silence_to_speech_std:.0%}, "
            f"blinks {report.blinks}"
        )
    closure = np.average(
        [r["bilabial_closure"] for r in reports.values()],
        weights=[r["bilabials"] for r in reports.values()],
    )
    vowel = np.mean([r["vowel_opening"] for r in reports.values()])
    bilabial = np.mean([r["bilabial_opening"] for r in reports.values()])
    lags = [r["lag_ms"] for r in reports.values()]
    silence = max(r["silence_to_speech_std"] for r in reports.values())
    print(
        f"overall: p/b/m closure {closure:.0%}, open vowel / p/b/m opening "
        f"{vowel / bilabial:.1f}x, lag {min(lags):+.0f}..{max(lags):+.0f} ms "
        f"(median {np.median(lags):+.0f}), silence std <= {silence:.0%} of speech"
    )
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
