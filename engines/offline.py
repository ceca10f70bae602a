"""Offline rendering: portrait + audio file -> MP4, through the live pipeline's code path.

Audio is decoded incrementally and pushed in 20 ms chunks into the same MotionStream the
server uses; every motion frame is rendered by the renderer engine as soon as it exists.
Frames render on a small thread pool (onnxruntime releases the GIL; one intra-op thread per
call) and encode on another thread, so a 2-core machine keeps both cores busy.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contracts import motion_frame, settings
from contracts.clock import FPS
from engines.audio_io import OUTPUT_RATE, iter_audio
from engines.avatar import Avatar
from engines.engine import Engine
from engines.frame_renderer import FrameRenderer
from engines.motion_stream import MotionGenerator, MotionStream
from engines.mp4_writer import Mp4Writer
from engines.rig import Rig

ENCODE_QUEUE = 16
# Render threads: cores + 1 by default ($EMOTE_RENDER_WORKERS) keeps both cores rendering while
# the others wait on the encoder; frames per engine call: 1 ($EMOTE_RENDER_BATCH), batches of
# 2 measured no faster on 2 cores (docs/benchmarks.md). contracts/settings.py reads both.


@dataclass
class StageTimes:
    """Wall-clock milliseconds spent per stage (sums; divide by frames for per-frame cost)."""

    decode_ms: float = 0.0
    motion_ms: float = 0.0
    render_ms: float = 0.0
    encode_ms: float = 0.0

    def per_frame(self, frames: int) -> dict[str, float]:
        n = max(frames, 1)
        return {k: round(v / n, 3) for k, v in vars(self).items()}


@dataclass
class RenderResult:
    frames: int
    audio_seconds: float
    wall_seconds: float
    stages: StageTimes = field(default_factory=StageTimes)

    @property
    def realtime_factor(self) -> float:
        return self.wall_seconds / max(self.audio_seconds, 1e-9)


def _retime(frames: Iterator[tuple[int, np.ndarray]], fps: int) -> Iterator[np.ndarray]:
    """25 fps motion frames -> motion at ``fps`` by linear interpolation in time."""
    if fps == FPS:
        for _, frame in frames:
            yield frame
        return
    previous: np.ndarray | None = None
    out_index = 0
    for k, frame in frames:
        if previous is None:
            previous = frame
        while (t := out_index * FPS / fps) <= k:
            w = t - (k - 1)
            yield frame if w >= 1.0 or k == 0 else previous + (frame - previous) * w
            out_index += 1
        previous = frame


def render_to_mp4(
    avatar: Avatar,
    rig: Rig,
    audio_path: str | Path,
    output: str | Path,
    generator: MotionGenerator,
    engine: Engine,
    fps: int = FPS,
    progress: Callable[[float], None] | None = None,
) -> RenderResult:
    """Render ``audio_path`` spoken by ``avatar`` into ``output`` (H.264 + AAC MP4)."""
    stream = MotionStream(generator)

    def source(emit_audio: Callable[[np.ndarray], None], stages: StageTimes) -> MotionSource:
        chunks = iter_audio(audio_path)
        while True:
            t0 = time.perf_counter()
            chunk = next(chunks, None)
            stages.decode_ms += (time.perf_counter() - t0) * 1000.0
            if chunk is None:
                break
            emit_audio(chunk.output)
            t0 = time.perf_counter()
            ready = stream.push(chunk.session)
            stages.motion_ms += (time.perf_counter() - t0) * 1000.0
            yield from ready
        t0 = time.perf_counter()
        ready = stream.flush()
        stages.motion_ms += (time.perf_counter() - t0) * 1000.0
        yield from ready

    return _render(avatar, rig, source, output, engine, fps, progress)


def render_motion_to_mp4(
    avatar: Avatar,
    rig: Rig,
    motion: np.ndarray,
    output: str | Path,
    engine: Engine,
    audio_path: str | Path | None = None,
    fps: int = FPS,
    progress: Callable[[float], None] | None = None,
) -> RenderResult:
    """Render given 25 fps motion frames ``(n, DIM)`` into ``output`` (H.264 + AAC MP4).

    The motion sets the clip's length (n / 25 s). ``audio_path``'s sound is muxed in, cut at
    that length and padded with silence if shorter; without it the audio track is silent.
    """
    if motion.ndim != 2 or motion.shape[1] != motion_frame.DIM or not len(motion):
        raise ValueError(f"motion must be (n >= 1, {motion_frame.DIM}), got {motion.shape}")
    total = len(motion) * OUTPUT_RATE // FPS  # output-rate samples the clip lasts

    def source(emit_audio: Callable[[np.ndarray], None], stages: StageTimes) -> MotionSource:
        sent = 0
        chunks = iter_audio(audio_path) if audio_path is not None else iter(())
        for k, frame in enumerate(motion):
            due = (k + 1) * OUTPUT_RATE // FPS  # the audio up to the end of frame k
            while sent < due:
                t0 = time.perf_counter()
                chunk = next(chunks, None)
                stages.decode_ms += (time.perf_counter() - t0) * 1000.0
                samples = (
                    np.zeros(due - sent, np.float32)
                    if chunk is None
                    else chunk.output[: total - sent]
                )
                emit_audio(samples)
                sent += len(samples)
            yield k, frame

    return _render(avatar, rig, source, output, engine, fps, progress)


# A motion source yields (frame index, motion frame)s at 25 fps and hands the output audio
# (48 kHz mono) that goes with them to the callback, in order.
MotionSource = Iterator[tuple[int, np.ndarray]]


def _render(
    avatar: Avatar,
    rig: Rig,
    source: Callable[[Callable[[np.ndarray], None], StageTimes], MotionSource],
    output: str | Path,
    engine: Engine,
    fps: int,
    progress: Callable[[float], None] | None,
) -> RenderResult:
    start = time.perf_counter()
    workers, batch_size = settings.current().render_workers, settings.current().render_batch
    stages = StageTimes()
    renderer = FrameRenderer(engine, rig)
    size = avatar.image.shape[0]
    jobs: queue.Queue[tuple[str, np.ndarray] | None] = queue.Queue(ENCODE_QUEUE)
    failure: list[BaseException] = []
    frames_done = 0
    audio_samples = 0

    def encoder(writer: Mp4Writer) -> None:
        try:
            while (job := jobs.get()) is not None:
                t0 = time.perf_counter()
                kind, data = job
                writer.write_video(data) if kind == "video" else writer.write_audio(data)
                stages.encode_ms += (time.perf_counter() - t0) * 1000.0
        except BaseException as exc:  # reported on the main thread
            failure.append(exc)
            while jobs.get() is not None:
                pass

    def emit_audio(samples: np.ndarray) -> None:
        nonlocal audio_samples
        audio_samples += len(samples)
        jobs.put(("audio", samples))

    def render_batch(motions: list[np.ndarray]) -> np.ndarray:
        t0 = time.perf_counter()
        rgb = renderer.render(np.stack(motions))
        stages.render_ms += (time.perf_counter() - t0) * 1000.0
        return rgb

    def deliver(future: Future[np.ndarray]) -> None:
        nonlocal frames_done
        for rgb in future.result():
            jobs.put(("video", rgb))
            frames_done += 1
        if failure:
            raise failure[0]
        if progress is not None:
            progress(frames_done / fps)

    in_flight: deque[Future[np.ndarray]] = deque()
    batch: list[np.ndarray] = []
    with Mp4Writer(output, fps, size) as writer, ThreadPoolExecutor(workers) as pool:
        thread = threading.Thread(target=encoder, args=(writer,), name="mp4-encoder", daemon=True)
        thread.start()
        try:
            for motion in _retime(source(emit_audio, stages), fps):
                batch.append(motion)
                if len(batch) == batch_size:
                    in_flight.append(pool.submit(render_batch, batch))
                    batch = []
                if len(in_flight) > 2 * workers:  # bounded: frames leave in order
                    deliver(in_flight.popleft())
            if batch:
                in_flight.append(pool.submit(render_batch, batch))
            while in_flight:
                deliver(in_flight.popleft())
        finally:
            for future in in_flight:
                future.cancel()
            jobs.put(None)
            thread.join()
        if failure:
            raise failure[0]
    return RenderResult(
        frames=frames_done,
        audio_seconds=audio_samples / OUTPUT_RATE,
        wall_seconds=time.perf_counter() - start,
        stages=stages,
    )
