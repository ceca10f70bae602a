"""A session's counters, as ``GET /api/sessions/{id}`` reports them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SessionStats:
    frames_sent: int = 0
    frames_dropped: int = 0
    audio_chunks_in: int = 0
    interrupts: int = 0
    # The input audio fitted to the session clock (clock_fit.ArrivalFitter), in 16 kHz
    # samples: silence put in for late audio or a stall, and early audio cut.
    audio_inserted_samples: int = 0
    audio_trimmed_samples: int = 0

    def as_json(self) -> dict[str, int]:
        return dict(vars(self))
