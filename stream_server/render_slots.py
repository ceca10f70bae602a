"""Render slots shared by a server's sessions: at most N renders at once, earliest send time
first, less a share bias so that an overloaded server slows every session alike.

Every session has its own worker thread. Left alone, four workers on two cores render four
frames at once and each takes several times its CPU time (the server measured 20-28 ms of
wall time for a 6.5 ms render under load). With slots, renders beyond the cores queue
instead, the frame due soonest goes first, and a frame whose send time can no longer be met
once its turn comes is skipped before it costs anything.

Plain earliest-deadline-first starves under overload: with 4 sessions on 2 cores the one
whose frames fall last in each frame period lost nearly every contest (23.7 / 21.5 / 16.5 /
6.6 fps measured). A waiter's priority is therefore its deadline plus ``SHARE_BIAS_S`` per
frame its session rendered in the last second (``DeadlineRenderer``): sessions at the same
rate keep pure deadline order; one that has fallen behind goes first until it catches up.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import threading
from collections.abc import Iterator


def default_slots(cpus: int | None = None) -> int:
    """One render at a time per core. Measured with 4 sessions on 2 cores (docs/benchmarks.md):
    one slot starves rendering (a render's wall time is ~3x its CPU time under load, so one
    slot renders ~55 frames/s of the 100 needed); two repeated fewer frames than four."""
    return max(1, cpus or os.cpu_count() or 1)


class RenderSlots:
    """A counting semaphore whose waiters are served in order of their deadline."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("at least one render slot")
        self.slots = slots
        self._free = slots
        self._waiting: list[tuple[float, int]] = []  # heap of (deadline, arrival order)
        self._order = itertools.count()
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def slot(self, deadline: float, bias: float = 0.0) -> Iterator[None]:
        """Hold a slot for the block; waits while all are busy or an earlier ``deadline +
        bias`` waits (``bias``: the session's share, see the module's docstring)."""
        entry = (deadline + bias, next(self._order))
        with self._cond:
            heapq.heappush(self._waiting, entry)
            while self._free == 0 or self._waiting[0] != entry:
                self._cond.wait()
            heapq.heappop(self._waiting)
            self._free -= 1
            self._cond.notify_all()  # the next waiter may take another free slot
        try:
            yield
        finally:
            with self._cond:
                self._free += 1
                self._cond.notify_all()

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)
