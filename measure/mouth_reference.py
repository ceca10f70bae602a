"""The motion generator's own mouth timing on the bench's audio: the reference that turns the
live bench's "mouth vs returned sound" into the streams' A/V offset.

The live bench cross-correlates the mouth opening seen in the returned frames with the level
of the returned audio. That reading holds two things: how far the server's video and audio
streams are apart (what ``av_offset_ms`` is about), and the generator's own timing, the lips
moving before the sound as a speaker's do (dsp's mouth is driven by audio 15-75 ms after a
frame's centre). Here the same program is rendered offline by the same generator and
renderer, from the avatar the server used (its framed image, fetched from the server), with
frame k at the middle of its own audio, as the server sends it; the frames are read by the
same instrument (FaceMesh's plain mesh, ``measure.mouth.mouth_openings``), the same subset of
frames is kept, and the same cross-correlation is taken against the program's own level
(``measure.xcorr.xcorr_lag``). That is the generator's lead; the live reading minus it is the
offset the streams add.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from contracts.clock import FPS
from measure.mouth import mouth_openings, portrait_renderer

REFERENCE_S = 60.0  # of each session's program: enough onsets, bounded time (~10 s a minute)
KEEP_EVERY = 5  # as the live bench: every 5th frame, plus the second after each onset ...
KEEP_AFTER_S = 1.0  # ... as it arrives, i.e. shifted by the measured latency


@dataclass(frozen=True)
class Generator:
    """The server's motion generator, as ``GET /api/sessions/{id}`` reports it."""

    motion: str
    seed: int = 0
    steps: int | None = None

    @classmethod
    def from_stats(cls, stats: dict | None) -> Generator | None:
        if not stats or not isinstance(stats.get("motion"), str):
            return None  # a server that does not say: no reference
        return cls(stats["motion"], int(stats.get("motion_seed") or 0), stats.get("motion_steps"))


def program_motion(samples: np.ndarray, generator: Generator) -> list[np.ndarray]:
    """Motion frames of 48 kHz mono ``samples``, fed in 20 ms chunks through the server's
    resampling and a fresh generator (frame k from session samples 640k..640k+639)."""
    from engines.audio_io import mono_resampler, resample_mono
    from engines.motion_generators import make_generator
    from engines.motion_stream import MotionStream

    stream = MotionStream(make_generator(generator.motion, generator.seed, generator.steps), 2)
    resampler = mono_resampler(16_000)
    chunk = 960
    motion: dict[int, np.ndarray] = {}
    for j in range(len(samples) // chunk):
        pcm = np.clip(samples[j * chunk : (j + 1) * chunk] * 32767, -32768, 32767)
        frame = av.AudioFrame.from_ndarray(pcm.astype(np.int16).reshape(1, -1), "s16", "mono")
        frame.sample_rate = 48_000
        motion.update(stream.push(resample_mono(resampler, frame)))
    motion.update(stream.flush())
    return [motion[k] for k in sorted(motion)]


def kept_frames(n_frames: int, onsets_s: list[float], shift_s: float) -> list[int]:
    """The frames the live bench would have measured: every ``KEEP_EVERY``th, and those
    whose content lies in the ``KEEP_AFTER_S`` after each onset arrived back (``shift_s``:
    the live latency, by which arrival trails content)."""
    centre = (np.arange(n_frames) + 0.5) / FPS
    keep = np.arange(n_frames) % KEEP_EVERY == 0
    for onset in onsets_s:
        keep |= (centre > onset - shift_s) & (centre <= onset - shift_s + KEEP_AFTER_S)
    return [int(k) for k in np.flatnonzero(keep)]


def reference_mouth(
    samples: np.ndarray,
    onsets_s: list[float],
    avatar_png: bytes,
    generator: Generator,
    shift_s: float,
    limit_s: float = REFERENCE_S,
) -> tuple[np.ndarray, np.ndarray]:
    """(frame centre times in s from the program's start, mouth openings) of the program's
    first ``limit_s`` rendered offline for the avatar in ``avatar_png`` (kept frames only)."""
    samples = samples[: int(limit_s * 48_000)]
    motion = program_motion(samples, generator)
    with tempfile.TemporaryDirectory(prefix="emote-reference-") as tmp:
        image = Path(tmp) / "avatar.png"
        image.write_bytes(avatar_png)
        render = portrait_renderer(image, Path(tmp))
        keep = kept_frames(len(motion), [t for t in onsets_s if t < limit_s], shift_s)
        frames = {k: render.render(motion[k])[0] for k in keep}
    mouth = mouth_openings(frames)
    keys = sorted(mouth)
    return (np.asarray(keys) + 0.5) / FPS, np.asarray([mouth[k] for k in keys])
