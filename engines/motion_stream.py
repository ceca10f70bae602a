"""Chunk-by-chunk driver shared by offline rendering and the live server.

Audio arrives in chunks of any size. After each chunk, every frame whose audio window
(``past`` samples before it through ``lookahead`` samples after it) has fully arrived is
generated, in hops of at most ``hop_frames`` frames, and appended to the rolling motion
buffer. The same code path serves ``emote render`` and ``emote serve``, so a render is a
faithful preview of the live output.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from contracts.clock import SAMPLES_PER_FRAME
from contracts.style import Style
from engines.audio_ring import AudioRing
from engines.motion_buffer import MotionBuffer


class MotionGenerator(Protocol):
    """Audio window + motion history -> the next hop of motion frames.

    ``generate`` receives samples [640*first - past, 640*(first+n) + lookahead) (zeros
    before the session start) and the newest ``history_frames`` frames of the rolling
    buffer, and returns ``(n, DIM)`` float32 frames for frames first..first+n-1.
    It must be deterministic given its seed and the calls it has seen, and must not read
    beyond ``lookahead`` samples of future audio.
    """

    past_samples: int
    lookahead_samples: int
    history_frames: int

    def generate(
        self, audio: np.ndarray, history: np.ndarray, first_frame: int, n_frames: int
    ) -> np.ndarray: ...

    def reset(self) -> None:
        """Forget transient state (barge-in); the next frames ease back to idle."""

    def set_style(self, style: Style) -> None:
        """Speak in ``style`` (contracts/style.py) from the next frames on."""


class MotionStream:
    """Owns a session's audio ring and motion buffer and drives a generator."""

    def __init__(
        self,
        generator: MotionGenerator,
        hop_frames: int = 2,
        ring_seconds: float = 10.0,
        buffer_frames: int = 50,
    ) -> None:
        if not 1 <= hop_frames <= 8:
            raise ValueError("hop_frames must be in 1..8")
        self.generator = generator
        self.hop_frames = hop_frames
        self.ring = AudioRing(ring_seconds)
        self.buffer = MotionBuffer(max(buffer_frames, generator.history_frames))

    @property
    def next_frame(self) -> int:
        return self.buffer.next_index

    def frames_ready(self) -> int:
        """How many frames could be generated now from the audio received so far."""
        usable = self.ring.end - self.generator.lookahead_samples
        return max(0, usable // SAMPLES_PER_FRAME - self.next_frame)

    def push(self, samples: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Add a chunk of 16 kHz mono float32 audio (any length); return the new
        (frame_index, frame)s. Long chunks are fed in pieces so the ring never overflows."""
        samples = np.asarray(samples, np.float32).reshape(-1)
        piece = self.ring.capacity // 4
        out: list[tuple[int, np.ndarray]] = []
        for start in range(0, len(samples), piece):
            self.ring.write(samples[start : start + piece])
            out.extend(self._generate_ready())
        return out

    def flush(self) -> list[tuple[int, np.ndarray]]:
        """End of stream: pad with silence so that every frame with audio gets generated."""
        total_frames = -(-self.ring.end // SAMPLES_PER_FRAME)
        needed_end = total_frames * SAMPLES_PER_FRAME + self.generator.lookahead_samples
        out = self.push(np.zeros(max(0, needed_end - self.ring.end), np.float32))
        return [(k, f) for k, f in out if k < total_frames]

    def _generate_ready(self) -> list[tuple[int, np.ndarray]]:
        out: list[tuple[int, np.ndarray]] = []
        while (ready := self.frames_ready()) > 0:
            n = min(ready, self.hop_frames)
            first = self.next_frame
            start = first * SAMPLES_PER_FRAME - self.generator.past_samples
            stop = (first + n) * SAMPLES_PER_FRAME + self.generator.lookahead_samples
            audio = self.ring.read(start, stop)
            history = self.buffer.last(self.generator.history_frames)
            frames = self.generator.generate(audio, history, first, n)
            for i in range(n):
                self.buffer.append(first + i, frames[i])
                out.append((first + i, frames[i]))
        return out
