"""Prometheus text-format metrics: counters, gauges and histograms, thread-safe, no deps."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence

LATENCY_BUCKETS_MS: tuple[float, ...] = (1, 2, 5, 10, 20, 40, 60, 80, 100, 150, 200, 300, 500, 1000)


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: Sequence[float] = LATENCY_BUCKETS_MS):
        self.name, self.help, self.buckets = name, help_text, tuple(buckets)
        self._counts = [0] * (len(self.buckets) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(self.buckets, value)] += 1
            self._sum += value

    def render(self) -> list[str]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        running = 0
        for bound, count in zip(self.buckets, counts, strict=False):
            running += count
            lines.append(f'{self.name}_bucket{{le="{bound:g}"}} {running}')
        running += counts[-1]
        lines += [
            f'{self.name}_bucket{{le="+Inf"}} {running}',
            f"{self.name}_sum {total:.3f}",
            f"{self.name}_count {running}",
        ]
        return lines


class Counter:
    def __init__(self, name: str, help_text: str):
        self.name, self.help = name, help_text
        self._value = 0
        self._lock = threading.Lock()

    def inc(self, amount: int = 1) -> None:
        with self._lock:
            self._value += amount

    @property
    def value(self) -> int:
        return self._value

    def render(self) -> list[str]:
        return [
            f"# HELP {self.name} {self.help}",
            f"# TYPE {self.name} counter",
            f"{self.name} {self._value}",
        ]


class Gauge:
    def __init__(self, name: str, help_text: str):
        self.name, self.help = name, help_text
        self.value = 0.0

    def render(self) -> list[str]:
        return [
            f"# HELP {self.name} {self.help}",
            f"# TYPE {self.name} gauge",
            f"{self.name} {self.value:g}",
        ]


class Metrics:
    """The server's metrics; one instance per app."""

    def __init__(self) -> None:
        self.sessions = Gauge("emote_sessions", "Sessions currently open")
        self.sessions_total = Counter("emote_sessions_total", "Sessions opened since start")
        self.rejected = Counter("emote_sessions_rejected_total", "Offers refused (capacity)")
        self.capacity = Gauge(
            "emote_capacity_sessions",
            "Sessions admitted at most: the measured capacity at 25 fps, capped by --max-sessions",
        )
        self.frame_cpu_ms = Gauge(
            "emote_frame_cpu_ms", "CPU time a frame costs on this machine (ms; probe or measured)"
        )
        self.session_fps_min = Gauge(
            "emote_session_fps_min", "The slowest session's frame rate over the last 5 s"
        )
        self.frames_delivered = Counter("emote_frames_delivered_total", "Video frames sent")
        self.frames_dropped = Counter(
            "emote_frames_dropped_total", "Video frames not sent: they could not be ready in time"
        )
        self.motion_ms = Histogram("emote_motion_ms", "Motion generation per hop (ms)")
        self.render_ms = Histogram("emote_render_ms", "Renderer call per frame (ms)")
        self.encode_ms = Histogram(
            "emote_encode_ms", "VP8 encoding per frame, ahead of its send time (ms)"
        )
        self.render_wait_ms = Histogram(
            "emote_render_wait_ms", "Wait for a render slot (shared by all sessions) (ms)"
        )
        self.ready_margin_ms = Histogram(
            "emote_frame_margin_ms",
            "Time from a frame being ready to its display time (ms)",
            (-40, -20, -10, 0, 10, 20, 40, 60, 80, 100, 150),
        )
        self.audio_to_frame_ms = Histogram(
            "emote_audio_to_frame_ms",
            "From the audio completing a frame's window arriving to the frame being rendered (ms)",
        )
        self.send_late_ms = Histogram(
            "emote_send_late_ms",
            "How late a video frame or 20 ms of audio is handed to aiortc after its send time "
            "(event-loop wake-up; ms)",
            (1, 2, 5, 10, 20, 40, 80),
        )

    def render(self) -> str:
        parts: list[Histogram | Counter | Gauge] = [
            self.sessions,
            self.sessions_total,
            self.rejected,
            self.capacity,
            self.frame_cpu_ms,
            self.session_fps_min,
            self.frames_delivered,
            self.frames_dropped,
            self.motion_ms,
            self.render_ms,
            self.encode_ms,
            self.render_wait_ms,
            self.ready_margin_ms,
            self.audio_to_frame_ms,
            self.send_late_ms,
        ]
        return "\n".join(line for part in parts for line in part.render()) + "\n"
