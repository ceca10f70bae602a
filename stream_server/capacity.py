"""How many sessions this machine can serve at 25 fps, measured here, at start-up and as it runs.

At start-up (``probe``) the server times what one frame costs on its own: the motion
generator on two seconds of modulated noise, the render processes on the frames it made, VP8
on what they rendered. The parts of a live frame the probe does not run (RTP packetization
and SRTP, the Opus voice, the event loop, render hand-offs) are covered by
``LIVE_OVERHEAD``, the ratio of a live session's measured CPU per frame sent to the probe's
sum on the machine of docs/benchmarks.md.

As it runs (``CpuMeter``), the server reads the CPU time it and its render processes
actually spent over the last window, divided by the frames its sessions sent: the real cost
of a frame on this machine under this load, which replaces the probe's estimate once a
window with sessions has passed. Capacity is the number of sessions whose frames fit in
``UTILIZATION`` of the cores at 25 fps, and never less than one.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contracts.clock import FPS, SAMPLE_RATE
from engines.motion_stream import MotionGenerator, MotionStream
from stream_server.video_codec import Vp8Stream

UTILIZATION = 0.85  # of the cores: the rest absorbs jitter (a render's wall time grows with load)
LIVE_OVERHEAD = (
    1.5  # a live frame's CPU / the probe's sum: 17.5 / 11.5 ms (docs/benchmarks.md, "Capacity")
)
PROBE_SECONDS = 2.0
WINDOW_S = 20.0  # the runtime meter's window
MIN_FRAMES = 100  # a window with fewer frames sent says little about their cost


def sessions_for(frame_cost_ms: float, cpus: int, fps: float = FPS) -> int:
    """Sessions at ``fps`` whose frames, at ``frame_cost_ms`` of CPU each, fit in
    ``UTILIZATION`` of ``cpus`` cores; at least one."""
    if frame_cost_ms <= 0:
        raise ValueError("a frame costs some CPU time")
    return max(1, math.floor(cpus * UTILIZATION * 1000.0 / (fps * frame_cost_ms)))


@dataclass(frozen=True)
class FrameCost:
    """CPU milliseconds per frame: the probe's parts and the total a live frame costs."""

    motion_ms: float
    render_ms: float
    encode_ms: float
    source: str  # "probe" or "measured"
    total_ms: float

    @classmethod
    def from_probe(cls, motion_ms: float, render_ms: float, encode_ms: float) -> FrameCost:
        total = (motion_ms + render_ms + encode_ms) * LIVE_OVERHEAD
        return cls(motion_ms, render_ms, encode_ms, "probe", total)

    def measured(self, total_ms: float) -> FrameCost:
        return FrameCost(self.motion_ms, self.render_ms, self.encode_ms, "measured", total_ms)

    def as_json(self) -> dict[str, object]:
        return {
            "frame_cpu_ms": round(self.total_ms, 2),
            "source": self.source,
            "probe_ms": {
                "motion": round(self.motion_ms, 2),
                "render": round(self.render_ms, 2),
                "encode": round(self.encode_ms, 2),
            },
        }


def probe(
    generator: MotionGenerator,
    render: Callable[[np.ndarray], np.ndarray],
    seconds: float = PROBE_SECONDS,
) -> FrameCost:
    """Time one frame's motion, render and VP8 on this machine (blocking: call from a worker
    thread). ``render`` takes a motion frame and returns an I420 frame (a render process)."""
    rng = np.random.default_rng(0)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    audio = (0.1 * rng.standard_normal(n) * (0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t))).astype(
        np.float32
    )
    stream = MotionStream(generator, hop_frames=2)
    started = time.thread_time()
    frames = [motion for _, motion in stream.push(audio)]
    motion_ms = (time.thread_time() - started) * 1000.0 / max(1, len(frames))
    render(frames[0])  # warm: the avatar's first frame loads its rig
    rendered = []
    started = time.perf_counter()
    for motion in frames:
        rendered.append(render(motion))
    render_ms = (time.perf_counter() - started) * 1000.0 / len(frames)
    vp8 = Vp8Stream()
    started = time.thread_time()
    for k, frame in enumerate(rendered):
        vp8.encode(frame, k)
    encode_ms = (time.thread_time() - started) * 1000.0 / len(rendered)
    return FrameCost.from_probe(motion_ms, render_ms, encode_ms)


def cpu_seconds(pids: Sequence[int]) -> float:
    """CPU time (user + system) of this process and of ``pids`` (its render processes)."""
    total = time.process_time()
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # not Linux, or the process was replaced
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


class CpuMeter:
    """The CPU per frame sent, over windows of ``WINDOW_S``: call ``sample`` now and then
    with the frames sent so far; it returns the window's cost in ms when a window closes."""

    def __init__(self, pids: Callable[[], Sequence[int]]) -> None:
        self._pids = pids
        self._start: tuple[float, float, int] | None = None  # wall, cpu, frames

    def sample(self, frames_sent: int, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        cpu = cpu_seconds(self._pids())
        if self._start is None or frames_sent < self._start[2]:
            self._start = (now, cpu, frames_sent)
            return None
        wall0, cpu0, frames0 = self._start
        if now - wall0 < WINDOW_S:
            return None
        self._start = (now, cpu, frames_sent)
        frames = frames_sent - frames0
        if frames < MIN_FRAMES:
            return None
        return (cpu - cpu0) * 1000.0 / frames
