"""Session slots: taken in one step on the event loop, before the offer awaits anything.

The old check (``len(sessions) >= max``, then several awaits, then the session was added)
let every simultaneous offer through. ``take`` counts a slot as held from the moment it
answers yes until ``release``, whatever happens in between (a failed connection gives it
back). The limit is the smaller of ``--max-sessions`` and the measured capacity
(``stream_server.capacity``), which may change while the server runs: sessions already
admitted keep their slots; new ones wait for the count to fall below it.
"""

from __future__ import annotations


class Admission:
    def __init__(self, max_sessions: int, capacity: int) -> None:
        if max_sessions < 1 or capacity < 1:
            raise ValueError("at least one session")
        self.max_sessions = max_sessions
        self.capacity = capacity
        self.taken = 0

    @property
    def limit(self) -> int:
        return min(self.max_sessions, self.capacity)

    def take(self) -> bool:
        """Hold a slot if one is free (synchronous: no other offer runs in between)."""
        if self.taken >= self.limit:
            return False
        self.taken += 1
        return True

    def release(self) -> None:
        if self.taken <= 0:
            raise RuntimeError("released a slot that was not taken")
        self.taken -= 1

    def refusal(self) -> str:
        """Why an offer is refused now, for its 503."""
        bound = (
            f"this machine's measured capacity of {self.capacity}"
            if self.capacity <= self.max_sessions
            else f"--max-sessions {self.max_sessions}"
        )
        return f"the server is at capacity ({self.taken} sessions, {bound}); try again shortly"
