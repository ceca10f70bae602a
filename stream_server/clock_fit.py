"""The session clock, and the fitting of arriving audio to it.

Session sample i (16 kHz) belongs to wall time ``t0 + i / 16000`` (``time.monotonic``), with
``t0`` set at the session's start, so pacing never jumps (it moves once, by at most half a
packet, before any frame was made from it: below). Audio arrives in chunks whose timing the
sender and the network decide; ``ArrivalFitter`` decides where each chunk goes on the clock
(how much silence to put before it, how much of its start to cut) so that queues cannot grow
and the delay stays what it was at the start. It only counts: the session applies its
decisions to the motion stream and the returned audio. Pure (no threads, no aiortc).

Aligned to the frames (``frame_end`` given): a frame can be made once the sample completing
its lookahead has arrived, and that sample comes inside a 20 ms packet, so unaligned it waits
for the rest of the packet: 0-20 ms, set for the whole session by where its first packet
fell, and the session's latency has to hold a whole packet for it. Aligned, every chunk ends
``ALIGN_GUARD`` samples (1 ms) after a frame's completing sample, so a frame can be made as
its packet arrives and the latency holds only the guard. The first anchor aligns by moving
``t0`` by under half a packet while nothing has been made from the clock (free: the frames
and the audio move together); a later one (after a stall or an interrupt) places the audio up
to a packet after its arrival. Corrections between anchors are whole packets, which keep the
alignment.
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
PACKET = SAMPLE_RATE // 50  # 320 samples: WebRTC's 20 ms Opus packets
ALIGN_GUARD = 16  # samples (1 ms) between a frame's completing sample and its chunk's end


class SessionClock:
    """Maps session samples to wall time: sample i belongs to ``t0 + i / 16000``. ``t0`` is
    set at the session's start (now, unless given), so pacing never jumps; the audio is
    fitted to the clock instead (``ArrivalFitter``, which moves ``t0`` once, before any frame
    was made from it, to align the frames with the packets)."""

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
    audio cut, for the session's stats. ``frame_end``: the sample completing frame 0's
    lookahead (frame k's is 640 k later); given, the chunks' ends are aligned to the frames
    (module docstring); ``None``: every chunk ends at its arrival."""

    def __init__(self, clock: SessionClock, frame_end: int | None = None) -> None:
        self.clock = clock
        self.frame_end = frame_end
        self.written = 0  # session samples placed on the clock
        self.inserted = 0  # samples of silence put in (late audio, a stall, idle time)
        self.trimmed = 0  # samples of early audio cut
        self.delay = 0  # samples the audio is placed after its arrival, to stay aligned
        self.period = PACKET  # what alignment repeats on: the packet (two for 40 ms ones)
        self._need_anchor = True  # the first audio lands exactly at its arrival time
        self._last_arrival = -math.inf  # time of the newest chunk
        self._lateness: deque[int] = deque(maxlen=LATE_WINDOW)  # samples, per chunk

    def arrive(self, arrival: float, n: int, movable: bool = False) -> Fit:
        """Place a chunk of ``n`` samples arriving at ``arrival`` so that its end belongs to
        its arrival time, within tolerances.

        The first chunk, and the first after a stall or ``reanchor``, lands exactly at its
        arrival (aligned: at the first frame-aligned place after it, or at its arrival with
        ``t0`` moved to align it when ``movable``, i.e. nothing was made from the clock yet):
        silence before it, or the part overlapping the silence filled during the stall cut
        (a chunk cut whole leaves the anchor to the next one). Late audio makes late frames
        (the compute margin is small), so lateness is corrected: at once beyond ``JITTER_S``
        (a stall), and when every chunk of the last ``LATE_WINDOW`` was more than ``LATE_S``
        late (a steady offset, e.g. the sender's first packet left early), by the smallest
        of those delays; single late chunks (jitter) are left alone. Audio placed later than
        its arrival adds delay to everything after it: it is cut at once beyond ``JITTER_S``
        (a burst), and when every chunk of the last ``LATE_WINDOW`` was more than ``LATE_S``
        early (a steady offset, e.g. the first chunk arrived late and anchored the session
        late), by the smallest of those leads. Aligned, corrections are whole periods (the
        silence rounded up, the cut down). Each correction is a short silence or cut in the
        returned audio."""
        self._last_arrival = arrival
        if self._need_anchor:
            insert, trim = self._anchor(arrival, n, movable)
        else:
            insert, trim = self._correction(arrival, n)
        trim = min(n, trim)
        if trim:
            self.trimmed += trim
            self._lateness.clear()
        if insert:
            self.inserted += insert
            self._lateness.clear()
        self.written += insert + n - trim
        return Fit(insert, trim)

    def _anchor(self, arrival: float, n: int, movable: bool) -> tuple[int, int]:
        """(insert, trim) that land the chunk's end at its arrival, or aligned after it."""
        end = self.clock.samples_due(arrival)
        self.delay = 0
        if self.frame_end is not None:
            self.period = 2 * PACKET if n > PACKET else PACKET
            lag = (end - self.frame_end - ALIGN_GUARD) % self.period  # past the aligned end
            if movable:  # nothing made from the clock yet: move it, by under half a period
                shift = lag - self.period if lag >= self.period // 2 else lag
                self.clock.t0 += shift / SAMPLE_RATE
                end -= shift
            else:
                self.delay = -lag % self.period
                end += self.delay
        self._lateness.clear()
        behind = end - (self.written + n)
        self._need_anchor = behind <= -n  # cut whole: the next chunk anchors
        return max(0, behind), max(0, -behind)

    def _correction(self, arrival: float, n: int) -> tuple[int, int]:
        """(insert, trim) for a chunk after the anchor: jitter left alone, steady or large
        lateness and lead corrected."""
        behind = self.clock.samples_due(arrival) + self.delay - (self.written + n)
        self._lateness.append(behind)
        full = len(self._lateness) == LATE_WINDOW
        steady_late = min(self._lateness) if full else 0
        steady_early = -max(self._lateness) if full else 0
        insert = trim = 0
        if behind > int(JITTER_S * SAMPLE_RATE):
            insert = behind
        elif steady_late > int(LATE_S * SAMPLE_RATE):
            insert = steady_late
        elif -behind > int(JITTER_S * SAMPLE_RATE):  # running ahead: trim the oldest part
            trim = -behind
        elif steady_early > int(LATE_S * SAMPLE_RATE):
            trim = steady_early
        if self.frame_end is not None:  # whole periods keep the chunks' ends aligned
            insert = -(-insert // self.period) * self.period
            trim = trim // self.period * self.period
        return insert, trim

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
