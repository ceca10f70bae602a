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

from engines.clock import FPS, SAMPLES_PER_FRAME

REPO = Path(__file__).resolve().parents[1]
SHARED_SPEECH = REPO.parent / "shared" / "assets" / "speech"
BILABIALS = frozenset({"P", "B", "M"})
OPEN_VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY"})
SILENCES = frozenset({"SIL", "SP", "<SIL>"})


@dataclass(frozen=True)
class Phone:
    begin: float
    end: float
    label: str


def load_phones(path: Path) -> list[Phone]:
    """Reference phone alignment (JSON: words with phones; b = begin s, d = duration s)."""
    words = json.loads(path.read_text())["w"]
    return [Phone(p["b"], p["b"] + p["d"], p["t"].upper()) for w in words for p in w["w"]]


def phone_frames(phone: Phone, n_frames: int) -> np.ndarray:
    """Frames whose centre lies inside the phone (at least the nearest one)."""
    centres = (np.arange(n_frames) + 0.5) / FPS
    inside = np.flatnonzero((centres >= phone.begin) & (centres < phone.end))
    if len(inside) == 0:
        inside = np.array([min(n_frames - 1, round((phone.begin + phone.end) / 2 * FPS - 0.5))])
    return inside


def speech_envelope(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """RMS of the audio under each video frame."""
    padded = np.zeros(n_frames * SAMPLES_PER_FRAME, np.float32)
    padded[: min(len(audio), len(padded))] = audio[: len(padded)]
    return np.sqrt((padded.reshape(n_frames, SAMPLES_PER_FRAME) ** 2).mean(1))


def best_lag(track: np.ndarray, envelope: np.ndarray, max_ms: float = 200.0) -> tuple[float, float]:
    """(lag in ms, correlation) maximizing corr(track[k], envelope[k + lag]); negative lag =
    the track (lips) leads the envelope (sound)."""
    max_lag = round(max_ms / 1000 * FPS)
    best = (0.0, -2.0)
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            a, b = track[: len(track) - lag], envelope[lag:]
        else:
            a, b = track[-lag:], envelope[: len(envelope) + lag]
        if len(a) < 10 or a.std() < 1e-9 or b.std() < 1e-9:
            continue
        corr = float(np.corrcoef(a, b)[0, 1])
        if corr > best[1]:
            best = (-lag * 1000.0 / FPS, corr)
    return best


@dataclass
class FaceTrack:
    mouth: np.ndarray  # (n,) inner-lip gap / face height; nan where no face was found
    eyes: np.ndarray  # (n,) mean eye opening / eye width
    landmarks: list[np.ndarray | None]


class FaceTracker:
    """MediaPipe FaceMesh over a sequence of RGB frames (video mode: tracked, fast)."""

    def __init__(self, static: bool = False) -> None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static,
            refine_landmarks=True,
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
        mouth, eyes, all_lm = [], [], []
        for rgb in frames:
            lm = self.landmarks(rgb)
            all_lm.append(lm)
            if lm is None:
                mouth.append(np.nan)
                eyes.append(np.nan)
                continue
            face_h = np.linalg.norm(lm[10] - lm[152])
            mouth.append(float(np.linalg.norm(lm[13] - lm[14]) / face_h))
            right = np.linalg.norm(lm[159] - lm[145]) / np.linalg.norm(lm[33] - lm[133])
            left = np.linalg.norm(lm[386] - lm[374]) / np.linalg.norm(lm[362] - lm[263])
            eyes.append(float((right + left) / 2))
        return FaceTrack(np.array(mouth), np.array(eyes), all_lm)


@dataclass
class LipSyncReport:
    frames: int
    tracked_fraction: float
    correlation: float
    lag_ms: float
    bilabial_closure: float  # fraction of p/b/m phones whose lips close
    bilabials: int
    vowel_to_bilabial: float  # mean opening at open vowels / at p/b/m
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
    bilabials = [p for p in phones if p.label in BILABIALS and p.end - p.begin >= 0.03]
    closures = [mouth[phone_frames(p, n)].min() <= closed for p in bilabials]
    vowels = [p for p in phones if p.label in OPEN_VOWELS]
    vowel_open = np.mean([mouth[phone_frames(p, n)].mean() for p in vowels]) if vowels else np.nan
    bilabial_open = (
        np.mean([mouth[phone_frames(p, n)].mean() for p in bilabials]) if bilabials else np.nan
    )
    silent = np.zeros(n, bool)
    for p in phones:
        if p.label in SILENCES and p.end - p.begin >= 0.3:
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


def evaluate_clip(
    image: Path,
    wav: Path,
    phones_path: Path,
    seed: int = 0,
    motion: str = "dsp",
    workdir: Path | None = None,
) -> tuple[LipSyncReport, list[np.ndarray]]:
    from engines.audio_io import decode_audio

    workdir = workdir or Path(tempfile.mkdtemp())
    out = workdir / f"{wav.stem}.mp4"
    render_clip(image, wav, out, seed, motion)
    frames = decode_video(out)
    tracker = FaceTracker()
    try:
        track = tracker.track(frames)
    finally:
        tracker.close()
    return lipsync_report(track, decode_audio(wav), load_phones(phones_path)), frames


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
    args = parser.parse_args(argv)
    reports = {}
    for phones_path in sorted(args.speech.glob("*.phones.json")):
        wav = phones_path.with_name(phones_path.name.removesuffix(".phones.json") + ".wav")
        report, _ = evaluate_clip(args.image, wav, phones_path, args.seed, args.motion)
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
    print(
        f"overall: p/b/m closure {closure:.0%}, median lag "
        f"{np.median([r['lag_ms'] for r in reports.values()]):+.0f} ms"
    )
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
