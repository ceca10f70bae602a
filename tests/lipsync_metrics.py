"""Lip-sync and idle-behaviour metrics of a motion track against reference phone alignments.

Frame k of a track shows the face at time (k + 0.5) / 25 s. The mouth opening is
jawOpen + 0.5 * mean(mouthLowerDownLeft, mouthLowerDownRight).
"""

from __future__ import annotations

import fractions
import wave
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from contracts import motion_frame
from contracts.clock import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from contracts.paths import SPEECH_DIRS
from contracts.phones import Phone, load_phones
from engines.motion_stream import MotionGenerator, MotionStream

BILABIALS = frozenset({"P", "B", "M"})
OPEN_VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY"})
SILENCE = frozenset({"SIL"})

_I = motion_frame.INDEX


def load_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as f:
        if f.getframerate() != SAMPLE_RATE or f.getnchannels() != 1 or f.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16 kHz mono 16-bit")
        data = np.frombuffer(f.readframes(f.getnframes()), np.int16)
    return data.astype(np.float32) / 32768.0


def opus_round_trip(audio: np.ndarray, bitrate: int = 24_000) -> np.ndarray:
    """16 kHz mono -> Opus at 48 kHz (as WebRTC carries a mic) -> 16 kHz mono, same length.

    The codec's fixed delay (312 samples at 48 kHz, Opus's standard pre-skip) is removed so
    the result stays aligned with the phone timings.
    """
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = 48_000
    encoder.layout = "mono"
    encoder.format = av.AudioFormat("s16")
    encoder.bit_rate = bitrate
    encoder.time_base = fractions.Fraction(1, 48_000)
    encoder.open()
    decoder = av.CodecContext.create("opus", "r")
    up = av.AudioResampler(format="s16", layout="mono", rate=48_000)
    down = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
    frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    frame.pts = 0
    packets = []
    for resampled in [*up.resample(frame), *up.resample(None)]:
        resampled.pts = None
        packets += encoder.encode(resampled)
    packets += encoder.encode(None)
    pieces = []
    for packet in packets:
        for decoded in decoder.decode(packet):
            decoded.pts = None
            pieces += [f.to_ndarray().reshape(-1) for f in down.resample(decoded)]
    pieces += [f.to_ndarray().reshape(-1) for f in down.resample(None)]
    out = np.concatenate(pieces).astype(np.float32)[312 // 3 :]
    return np.pad(out, (0, max(0, len(audio) - len(out))))[: len(audio)]


def run_stream(
    generator: MotionGenerator, audio: np.ndarray, chunk: int | None = None, hop: int = 2
) -> np.ndarray:
    """Feed ``audio`` through a MotionStream in chunks (None: all at once); all frames."""
    # The ring must hold a whole chunk: one push of a long file would overwrite its start.
    ring_seconds = max(10.0, (len(audio) if chunk is None else chunk) / SAMPLE_RATE + 1.0)
    stream = MotionStream(generator, hop_frames=hop, ring_seconds=ring_seconds)
    step = len(audio) if chunk is None else chunk
    frames: list[np.ndarray] = []
    for start in range(0, len(audio), step):
        frames.extend(f for _, f in stream.push(audio[start : start + step]))
    frames.extend(f for _, f in stream.flush())
    return np.stack(frames)


def opening(frames: np.ndarray) -> np.ndarray:
    lower = frames[:, [_I["mouthLowerDownLeft"], _I["mouthLowerDownRight"]]].mean(axis=1)
    return frames[:, _I["jawOpen"]] + 0.5 * lower


def frames_of(phone: Phone, n_frames: int) -> np.ndarray:
    """Frames whose time (centre) lies inside the phone; the nearest one if none does."""
    centres = (np.arange(n_frames) + 0.5) / FPS
    inside = np.nonzero((centres >= phone.start) & (centres < phone.end))[0]
    if inside.size:
        return inside
    nearest = round((phone.start + phone.end) / 2 * FPS - 0.5)
    return np.array([min(max(nearest, 0), n_frames - 1)])


def rms_envelope(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """RMS of each video frame's own 640 samples."""
    padded = np.zeros(n_frames * SAMPLES_PER_FRAME, np.float64)
    padded[: min(len(audio), len(padded))] = audio[: len(padded)]
    return np.sqrt((padded.reshape(n_frames, SAMPLES_PER_FRAME) ** 2).mean(axis=1))


def best_lag_ms(open_track: np.ndarray, envelope: np.ndarray, max_ms: float = 200.0) -> float:
    """Lag maximizing corr(open[k], env[k - lag]); negative = the lips lead the sound.

    The integer-frame peak is refined with a parabola through its neighbours (40 ms frames
    are too coarse for a -80..+40 ms tolerance).
    """
    max_lag = int(max_ms * FPS / 1000)
    lags = np.arange(-max_lag, max_lag + 1)
    corr = np.array([_lagged_corr(open_track, envelope, int(lag)) for lag in lags])
    i = int(np.argmax(corr))
    shift = 0.0
    if 0 < i < len(lags) - 1:
        den = corr[i - 1] - 2.0 * corr[i] + corr[i + 1]
        shift = 0.5 * (corr[i - 1] - corr[i + 1]) / den if den < 0 else 0.0
    return float((lags[i] + shift) * 1000.0 / FPS)


def _lagged_corr(a: np.ndarray, b: np.ndarray, lag: int) -> float:
    n = len(a)
    if lag >= 0:
        x, y = a[lag:], b[: n - lag]
    else:
        x, y = a[:lag], b[-lag:]
    if x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def long_silences(phones: list[Phone], min_seconds: float = 0.3) -> list[Phone]:
    """Runs of consecutive silence phones lasting at least ``min_seconds``."""
    runs: list[Phone] = []
    current: Phone | None = None
    for p in phones:
        if p.label in SILENCE:
            if current is not None and abs(current.end - p.start) < 1e-3:
                current = Phone("SIL", current.start, p.end)
            else:
                if current is not None:
                    runs.append(current)
                current = p
        elif current is not None:
            runs.append(current)
            current = None
    if current is not None:
        runs.append(current)
    return [r for r in runs if r.duration >= min_seconds]


@dataclass
class LipsyncReport:
    bilabials: int  # p/b/m phones longer than 30 ms
    bilabials_closed: int  # ... during which the opening dropped below 0.1
    open_vowel_opening: list[float]  # per-frame openings at open vowels
    bilabial_opening: list[float]  # per-frame openings at p/b/m
    lag_ms: float
    silence_std: float | None  # std of the opening inside pauses >= 300 ms
    speech_std: float

    @property
    def silence_ratio(self) -> float | None:
        if self.silence_std is None:
            return None
        return self.silence_std / max(self.speech_std, 1e-9)


def lipsync_report(
    frames: np.ndarray, audio: np.ndarray, phones: list[Phone], lag_span: slice | None = None
) -> LipsyncReport:
    """Metrics (a)-(d) of a track; ``lag_span`` limits the lag estimate to some frames."""
    open_track = opening(frames)
    n = len(frames)
    bilabial = [p for p in phones if p.label in BILABIALS and p.duration > 0.03]
    closed = sum(bool(open_track[frames_of(p, n)].min() < 0.1) for p in bilabial)
    vowels = [p for p in phones if p.label in OPEN_VOWELS]
    vowel_values = [v for p in vowels for v in open_track[frames_of(p, n)]]
    bilabial_values = [v for p in bilabial for v in open_track[frames_of(p, n)]]
    span = lag_span or slice(0, n)
    lag = best_lag_ms(open_track[span], rms_envelope(audio, n)[span])
    silent = [open_track[frames_of(p, n)] for p in long_silences(phones)]
    speech = [open_track[frames_of(p, n)] for p in phones if p.label not in SILENCE]
    return LipsyncReport(
        bilabials=len(bilabial),
        bilabials_closed=closed,
        open_vowel_opening=[float(v) for v in vowel_values],
        bilabial_opening=[float(v) for v in bilabial_values],
        lag_ms=lag,
        silence_std=float(np.concatenate(silent).std()) if silent else None,
        speech_std=float(np.concatenate(speech).std()),
    )


@dataclass
class BlinkReport:
    onsets_s: list[float]
    intervals_s: list[float]
    durations_ms: list[float]


def blink_report(frames: np.ndarray, threshold: float = 0.5) -> BlinkReport:
    """Blinks as runs of frames with both eyelids at least ``threshold`` closed."""
    both = np.minimum(frames[:, _I["eyeBlinkLeft"]], frames[:, _I["eyeBlinkRight"]])
    shut = np.concatenate([[False], both >= threshold, [False]])
    starts = np.nonzero(shut[1:] & ~shut[:-1])[0]
    stops = np.nonzero(~shut[1:] & shut[:-1])[0]
    onsets = starts / FPS
    return BlinkReport(
        onsets_s=[float(t) for t in onsets],
        intervals_s=[float(d) for d in np.diff(onsets)],
        durations_ms=[float(d) * 1000.0 / FPS for d in stops - starts],
    )


def speech_files(aligned_only: bool = True) -> list[tuple[str, np.ndarray, list[Phone]]]:
    """The real speech recordings, by name.

    Those with reference phone alignments (``NAME.phones.json``) come with their phones; the
    others (``aligned_only=False``) with one "SPEECH" phone spanning the whole recording,
    enough for the lag and pause metrics once padded with room tone.
    """
    wavs: dict[str, Path] = {}
    for folder in SPEECH_DIRS:
        for wav in sorted(folder.glob("*.wav")):
            wavs.setdefault(wav.stem, wav)
    out = []
    for name, wav in sorted(wavs.items()):
        audio = load_wav(wav)
        phones_path = wav.with_name(f"{name}.phones.json")
        if phones_path.exists():
            out.append((name, audio, load_phones(phones_path)))
        elif not aligned_only:
            out.append((name, audio, [Phone("SPEECH", 0.0, len(audio) / SAMPLE_RATE)]))
    return out
