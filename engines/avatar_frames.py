"""The push core: audio in as it comes, (video frame, the audio it shows) out as soon as the
motion generator has seen far enough ahead. For transports that pace their own output: the
LiveKit avatar worker (``integrations.livekit_avatar``: livekit's ``AVSynchronizer`` plays the
frames at 25 fps with their audio). The live WebRTC server paces on its own session clock
instead (``stream_server.session``) around the same ``MotionStream``, renderer and mouth
closing (``engines.mouth_close``), so both show the same face for the same audio.

Timeline: frame k shows the motion made for the 16 kHz samples [640k, 640(k+1)) and carries
the output-rate samples [kP, (k+1)P) (P = rate / 25). Pushed audio is appended at the end;
``idle`` adds one frame of silence (the face keeps blinking and breathing); ``end_segment``
pads the last spoken frame with silence and emits every frame that has pushed audio;
``clear_buffer`` drops what was not emitted yet, and the next ``CLOSE_FRAMES`` frames shut
the mouth as the live server's do. A frame whose span holds no pushed audio is idle: its
``audio`` is ``None`` (a transport shows it without sound).

Not thread-safe: one caller at a time (a transport runs it on one worker thread).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np

from contracts.clock import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME
from engines.audio_io import mono_resampler, resample_mono
from engines.motion_stream import MotionGenerator, MotionStream
from engines.mouth_close import CLOSE_FRAMES, MOUTH_CLOSE_RATE, MOUTH_FIELDS

# Frames per renderer call. One: every call has the shape the renderer was warmed up with (a
# new batch size costs onnxruntime 0.2-0.4 s on its first call, a stall on the first words);
# on the CPU, batching saves nothing measurable (docs/integrations/livekit.md).
RENDER_BATCH = 1


@dataclass(frozen=True)
class AvatarFrame:
    """Video frame ``index``: ``rgb`` (S, S, 3) uint8 and ``audio``, its ``P`` int16 mono
    samples at the core's rate, or ``None`` for a frame without pushed audio (idle)."""

    index: int
    rgb: np.ndarray
    audio: np.ndarray | None


class AvatarFrames:
    """Pushed audio -> ``AvatarFrame`` s, in order, each index once."""

    def __init__(
        self,
        render: Callable[[np.ndarray], np.ndarray],
        generator: MotionGenerator,
        rate: int = 24_000,
        hop_frames: int = 2,
    ) -> None:
        if rate % FPS or not 8_000 <= rate <= 96_000:
            raise ValueError(f"audio rate {rate} Hz: use 8000..96000 Hz, a multiple of {FPS}")
        self.rate = rate
        self.per_frame = rate // FPS
        self._render = render
        self._stream = MotionStream(generator, hop_frames=hop_frames)
        self._resampler = mono_resampler(SAMPLE_RATE)  # rate -> the motion's 16 kHz
        self._fresh = True  # the resampler holds no audio (start, segment end, clear)
        self._out = np.zeros(0, np.int16)  # output samples [_out_start, _out_start + len)
        self._out_start = 0
        self._spoken: list[list[int]] = []  # [start, end) output samples of pushed audio
        self._closing = 0  # frames of mouth closing still to apply
        self._close_from: np.ndarray | None = None

    @property
    def lookahead_s(self) -> float:
        """Audio the generator must see past a frame before it can make it."""
        return self._stream.generator.lookahead_samples / SAMPLE_RATE

    @property
    def next_index(self) -> int:
        """The index of the next frame to be emitted."""
        return self._stream.next_frame

    @property
    def generator(self) -> MotionGenerator:
        return self._stream.generator

    # -- input -------------------------------------------------------------------------------

    def push_audio(self, pcm: np.ndarray) -> list[AvatarFrame]:
        """Append mono audio at ``rate`` (int16, or float in [-1, 1]); return the frames it
        completed."""
        pcm = as_int16(pcm)
        if not len(pcm):
            return []
        motions: list[tuple[int, np.ndarray]] = []
        if self._fresh:
            motions += self._to_frame_start()
            self._fresh = False
        if self._spoken and self._spoken[-1][1] == self._out_end:
            self._spoken[-1][1] += len(pcm)
        else:
            self._spoken.append([self._out_end, self._out_end + len(pcm)])
        self._out = np.concatenate([self._out, pcm])
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.rate
        motions += self._stream.push(resample_mono(self._resampler, frame))
        return self._emit(motions)

    def end_segment(self) -> list[AvatarFrame]:
        """The pushed speech ended: emit every frame that holds some of it (the last one
        padded with silence)."""
        motions = self._drain_resampler()
        speech_end = self._spoken[-1][1] if self._spoken else 0
        k_end = -(-speech_end // self.per_frame)  # frames < k_end hold speech
        need = k_end * SAMPLES_PER_FRAME + self._stream.generator.lookahead_samples
        motions += self._stream.push(np.zeros(max(0, need - self._stream.ring.end), np.float32))
        motions += self._align()
        return self._emit(motions)

    def idle(self) -> list[AvatarFrame]:
        """No audio to show: add silence until one more frame is made; return it (with any
        frames of a starved segment that the silence completed)."""
        motions = self._drain_resampler() + self._align()
        need = (self.next_index + 1) * SAMPLES_PER_FRAME + self._stream.generator.lookahead_samples
        motions += self._stream.push(np.zeros(max(0, need - self._stream.ring.end), np.float32))
        motions += self._align()
        return self._emit(motions)

    def clear_buffer(self) -> None:
        """Barge-in: drop the audio not emitted yet; the next ``CLOSE_FRAMES`` frames shut the
        mouth (from the last frame emitted) and the generator, reset, goes on from there."""
        self._resampler = mono_resampler(SAMPLE_RATE)
        self._fresh = True
        shown_end = self.next_index * self.per_frame
        self._out = self._out[: max(0, shown_end - self._out_start)]
        self._spoken = [[a, min(b, shown_end)] for a, b in self._spoken if a < shown_end]
        self._stream.generator.reset()
        self._close_from = self._stream.buffer.latest()
        self._closing = CLOSE_FRAMES

    # -- internals ---------------------------------------------------------------------------

    @property
    def _out_end(self) -> int:
        return self._out_start + len(self._out)

    def _drain_resampler(self) -> list[tuple[int, np.ndarray]]:
        if self._fresh:
            return []
        tail = resample_mono(self._resampler, None)
        self._resampler = mono_resampler(SAMPLE_RATE)
        self._fresh = True
        return self._stream.push(tail)

    def _align(self) -> list[tuple[int, np.ndarray]]:
        """Bring the output audio and the motion's 16 kHz audio to the same instant (the
        resampler's delay, a segment end's lookahead) with silence on the shorter one."""
        motions: list[tuple[int, np.ndarray]] = []
        ring_end = self._stream.ring.end
        if self._out_end * SAMPLE_RATE > ring_end * self.rate:
            need = -(-self._out_end * SAMPLE_RATE // self.rate)
            motions += self._stream.push(np.zeros(need - ring_end, np.float32))
            ring_end = self._stream.ring.end
        want = ring_end * self.rate // SAMPLE_RATE
        if want > self._out_end:
            self._out = np.concatenate([self._out, np.zeros(want - self._out_end, np.int16)])
        return motions

    def _to_frame_start(self) -> list[tuple[int, np.ndarray]]:
        """Silence on both timelines up to the next frame start, so that speech after a
        pause starts a frame (its first frame is not half silence). Costs at most the
        generator's lookahead rounded up to whole frames, which has passed in silence."""
        motions = self._align()
        k = max(-(-self._out_end // self.per_frame), -(-self._stream.ring.end // SAMPLES_PER_FRAME))
        motions += self._stream.push(
            np.zeros(k * SAMPLES_PER_FRAME - self._stream.ring.end, np.float32)
        )
        self._out = np.concatenate(
            [self._out, np.zeros(k * self.per_frame - self._out_end, np.int16)]
        )
        return motions

    def _emit(self, motions: list[tuple[int, np.ndarray]]) -> list[AvatarFrame]:
        if not motions:
            return []
        indices = [k for k, _ in motions]
        stack = np.stack([self._closed(m) for _, m in motions]).astype(np.float32)
        frames: list[AvatarFrame] = []
        for start in range(0, len(stack), RENDER_BATCH):
            rgb = self._render(stack[start : start + RENDER_BATCH])
            for i, image in enumerate(rgb):
                k = indices[start + i]
                frames.append(AvatarFrame(k, image, self._audio_of(k)))
        keep_from = (indices[-1] + 1) * self.per_frame
        self._spoken = [span for span in self._spoken if span[1] > keep_from]
        cut = max(0, min(len(self._out), keep_from - self._out_start))
        self._out, self._out_start = self._out[cut:], self._out_start + cut
        return frames

    def _closed(self, motion: np.ndarray) -> np.ndarray:
        if self._closing <= 0 or self._close_from is None:
            return motion
        step = CLOSE_FRAMES - self._closing + 1
        out = np.array(motion, np.float32, copy=True)
        out[MOUTH_FIELDS] = self._close_from[MOUTH_FIELDS] * MOUTH_CLOSE_RATE**step
        self._closing -= 1
        if self._closing == 0:  # the generator goes on from the shut mouth
            self._stream.buffer.clear_to(out)
        return out

    def _audio_of(self, k: int) -> np.ndarray | None:
        start = k * self.per_frame
        end = start + self.per_frame
        if not any(a < end and b > start for a, b in self._spoken):
            return None
        lo = start - self._out_start
        piece = self._out[max(0, lo) : lo + self.per_frame]
        if len(piece) < self.per_frame:  # never before the buffer; short only at its end
            piece = np.concatenate([piece, np.zeros(self.per_frame - len(piece), np.int16)])
        return piece


def as_int16(pcm: np.ndarray) -> np.ndarray:
    """Mono samples as int16: int16 as is, floats in [-1, 1] scaled and clipped."""
    pcm = np.asarray(pcm).reshape(-1)
    if pcm.dtype == np.int16:
        return pcm
    if not np.issubdtype(pcm.dtype, np.floating):
        raise ValueError(f"audio samples must be int16 or float, not {pcm.dtype}")
    return (np.clip(pcm, -1.0, 1.0) * 32767.0).astype(np.int16)
