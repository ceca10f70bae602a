"""The session clock, and the fitting of arriving audio to it.

Session sample i (16 kHz) belongs to wall time ``t0 + i / 16000`` (``time.monotonic``), with
``t0`` fixed at the session's start, so pacing never jumps. Audio arrives in chunks whose
timing the sender and the network decide; ``ArrivalFitter`` decides where each chunk goes on
the clock (how much silence to put before it, how much of its start to cut) so that queues
cannot grow and the delay stays what it was at the start. It only counts: the session applies
its decisions to the motion stream and the returned audio. Pure (no threads, no aiortc).
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from contracts.clock import FPS, SAMPLE_RATE, SAMPLES_PER_FRAME

# Audio late by up to STALL_FILL_S is waited for; after that much time without any, the
# clock goes on in silence up to the present (idle frames on time), and the next audio lands
# at its arrival time.
STALL_FILL_S = 0.10
JITTER_S = 0.04  # arrivals up to this much early are left alone; later ones are a stall
LATE_S = 0.005  # audio persistently this much late (over LATE_WINDOW chunks) is re-anchored
LATE_WINDOW = 25  # 0.5 s of 20 ms chunks


class SessionClock:
    """Maps session samples to wall time: sample i belongs to ``t0 + i / 16000``. ``t0`` is
    fixed at the session's start (now, unless given), so pacing never jumps; the audio is
    fitted to the clock instead (``ArrivalFitter``)."""

    def __init__(self, latency_s: float, t0: float | None = None) -> None:
        self.latency_s = latency_s
        self.t0 = time.monotonic() if t0 is None else t0

    def samples_due(self, now: float) -> int:
        """Session samples that belong to times up to ``now``."""
        return int((now - self.t0) * SAMPLE_RATE)

    def frame_due(self, k: int) -> float:
        return self.t0 + k / FPS + self.latency_s

    def next_frame(self, now: float) -> int:
        """The first frame due at or after ``now``."""
        return max(0, int(np.ceil((now - self.t0 - self.latency_s) * FPS)))

    def audio_due(self, sample: int) -> float:
        """Sample i goes out with the frame whose audio it is the middle of."""
        return self.t0 + (sample - SAMPLES_PER_FRAME // 2) / SAMPLE_RATE + self.latency_s


@dataclass(frozen=True)
class Fit:
    """Where an arriving chunk goes: ``insert`` samples of silence before it, or its first
    ``trim`` samples cut (never both)."""

    insert: int = 0
    trim: int = 0


class ArrivalFitter:
    """Places audio on a ``SessionClock``, in 16 kHz samples. ``written`` counts the samples
    placed so far (silence included); ``inserted`` and ``trimmed`` the silence put in and the
    audio cut, for the session's stats."""

    def __init__(self, clock: SessionClock) -> None:
        self.clock = clock
        self.written = 0  # session samples placed on the clock
        self.inserted = 0  # samples of silence put in (late audio, a stall, idle time)
        self.trimmed = 0  # samples of early audio cut
        self._need_anchor = True  # the first audio lands exactly at its arrival time
        self._last_arrival = -math.inf  # time of the newest chunk
        self._lateness: deque[int] = deque(maxlen=LATE_WINDOW)  # samples, per chunk

    def arrive(self, arrival: float, n: int) -> Fit:
        """Place a chunk of ``n`` samples arriving at ``arrival`` so that its end belongs to
        its arrival time, within tolerances.

        The first chunk, and the first after a stall or ``reanchor``, lands exactly at its
        arrival: silence before it, or the part overlapping the silence filled during the
        stall cut. Late audio makes late frames (the compute margin is small), so lateness is
        corrected: at once beyond ``JITTER_S`` (a stall), and when every chunk of the last
        ``LATE_WINDOW`` was more than ``LATE_S`` late (a steady offset, e.g. the sender's
        first packet left early), by the smallest of those delays; single late chunks
        (jitter) are left alone. Audio placed later than its arrival adds delay to
        everything after it: it is cut at once beyond ``JITTER_S`` (a burst), and when every
        chunk of the last ``LATE_WINDOW`` was more than ``LATE_S`` early (a steady offset,
        e.g. the first chunk arrived late and anchored the session late), by the smallest of
        those leads. Each correction is a short silence or cut in the returned audio."""
        self._last_arrival = arrival
        behind = self.clock.samples_due(arrival) - (self.written + n)
        self._lateness.append(behind)
        full = len(self._lateness) == LATE_WINDOW
        steady_late = min(self._lateness) if full else 0
        steady_early = -max(self._lateness) if full else 0
        insert = trim = 0
        if behind > int(JITTER_S * SAMPLE_RATE) or (self._need_anchor and behind > 0):
            insert = behind
        elif self._need_anchor and behind < 0:  # overlaps the silence filled in a stall
            trim = -behind
        elif steady_late > int(LATE_S * SAMPLE_RATE):
            insert = steady_late
        elif -behind > int(JITTER_S * SAMPLE_RATE):  # running ahead: trim the oldest part
            trim = -behind
        elif steady_early > int(LATE_S * SAMPLE_RATE):
            trim = steady_early
        if trim:
            trim = min(n, trim)
            self.trimmed += trim
            self._lateness.clear()
        if insert:
            self.inserted += insert
            self._lateness.clear()
        self._need_anchor = False
        self.written += insert + n - trim
        return Fit(insert, trim)

    def idle(self, now: float) -> int:
        """No audio (lost packets, a stalled or silent sender, no mic at all): the samples of
        silence that take the clock on to ``STALL_FILL_S`` before ``now`` while audio may
        still come, and up to ``now`` once none came for that long (then the next chunk lands
        at its arrival, not after this silence)."""
        stalled = now - self._last_arrival > STALL_FILL_S
        gap = self.clock.samples_due(now if stalled else now - STALL_FILL_S) - self.written
        if stalled:
            self._need_anchor = True
        if gap <= 0:
            return 0
        self.inserted += gap
        self.written += gap
        return gap

    def reanchor(self) -> None:
        """The audio before now was dropped (an interrupt): the next chunk lands at its
        arrival time, or every frame after it would be late by the gap."""
        self._need_anchor = True
        self._lateness.clear()
