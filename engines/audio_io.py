"""Audio decoding: any file PyAV reads -> mono 16 kHz float32 chunks (the session's format),
plus the same audio at 48 kHz for the output track."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from contracts.clock import SAMPLE_RATE

OUTPUT_RATE = 48_000
MAX_AUDIO_SECONDS = 3600.0


class AudioError(ValueError):
    """The audio input cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class AudioChunk:
    """One decoded piece: ``session`` mono 16 kHz float32, ``output`` mono 48 kHz float32."""

    session: np.ndarray
    output: np.ndarray


def mono_resampler(rate: int) -> av.AudioResampler:
    # FFmpeg's default stereo -> mono matrix adds L and R at -3 dB each, which lifts correlated
    # stereo (most music and speech) by 3 dB and pushes a mastered song over full scale in the
    # output track. rematrix_maxval=1 scales the matrix so that the mix cannot clip (L/2 + R/2).
    return av.AudioResampler(
        format="flt", layout="mono", rate=rate, options={"rematrix_maxval": "1.0"}
    )


def resample_mono(resampler: av.AudioResampler, frame: av.AudioFrame | None) -> np.ndarray:
    """One frame (``None`` flushes) through a ``mono_resampler``, as mono float32."""
    frames = resampler.resample(frame)
    if not frames:
        return np.zeros(0, np.float32)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32)


def iter_audio(path: str | Path, chunk_seconds: float = 0.02) -> Generator[AudioChunk]:
    """Decode ``path`` incrementally, yielding ~``chunk_seconds`` pieces in both formats.

    This is the offline twin of the live server's audio input: the motion generator sees the
    audio in the same small chunks a WebRTC track delivers (20 ms Opus frames).
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise AudioError(
            f"not a readable audio file: {path.name} ({exc.__class__.__name__})"
        ) from exc
    with container:
        if not container.streams.audio:
            raise AudioError(f"no audio stream in {path.name}")
        stream = container.streams.audio[0]
        to_session, to_output = mono_resampler(SAMPLE_RATE), mono_resampler(OUTPUT_RATE)
        chunk = max(1, round(chunk_seconds * SAMPLE_RATE))
        pending_session = np.zeros(0, np.float32)
        pending_output = np.zeros(0, np.float32)
        total = 0
        decoded_any = False
        try:
            for frame in container.decode(stream):
                decoded_any = True
                frame.pts = None  # resample by sample count; broken timestamps are common
                pending_session = np.concatenate(
                    [pending_session, resample_mono(to_session, frame)]
                )
                pending_output = np.concatenate([pending_output, resample_mono(to_output, frame)])
                # Strictly more than a chunk: something always stays pending for the final
                # chunk, which also carries the 48 kHz resampler's flushed tail (its filter
                # delay, ~1 ms). With ">=" a 16 kHz input (no delay on the session side)
                # ended with nothing pending and that tail was dropped from the output track.
                while len(pending_session) > chunk:
                    n_out = len(pending_session[:chunk]) * OUTPUT_RATE // SAMPLE_RATE
                    yield AudioChunk(pending_session[:chunk], pending_output[:n_out])
                    pending_session, pending_output = (
                        pending_session[chunk:],
                        pending_output[n_out:],
                    )
                    total += chunk
                    if total > MAX_AUDIO_SECONDS * SAMPLE_RATE:
                        raise AudioError(f"audio longer than {MAX_AUDIO_SECONDS:.0f} s")
        except (av.FFmpegError, ValueError) as exc:
            # ValueError: PyAV's resampler refuses a mid-stream format change.
            if isinstance(exc, AudioError):
                raise
            if not decoded_any:
                raise AudioError(f"cannot decode audio in {path.name}: {exc}") from exc
            # A damaged tail: keep what decoded (players do the same).
        if not decoded_any:
            raise AudioError(f"no decodable audio in {path.name}")
        pending_session = np.concatenate([pending_session, resample_mono(to_session, None)])
        pending_output = np.concatenate([pending_output, resample_mono(to_output, None)])
        if len(pending_session):
            yield AudioChunk(pending_session, pending_output)


def decode_audio(path: str | Path) -> np.ndarray:
    """The whole file as mono 16 kHz float32 (for tests and evaluation, not the render path)."""
    return np.concatenate([c.session for c in iter_audio(path)] or [np.zeros(0, np.float32)])
