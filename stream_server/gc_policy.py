"""When the server collects garbage: the start-up heap frozen, a collection after each session.

A closed session leaves its objects in reference cycles: aiortc's peer connection, its
transceivers and senders, and with them the sender's Opus encoder and PyAV audio filter
graphs, each holding ffmpeg worker threads (about 4 a session on 2 cores). CPython frees
cycles only when a collection of the oldest generation runs, which is rare in a server whose
heap barely grows: over 200 short sessions the server's threads went 38 -> 70 and stayed
there (docs/benchmarks.md, "Soak and churn").

Collecting after every session frees them at once, but a full collection walks the whole
heap: ~72 000 objects after start-up (torch, onnxruntime, aiortc), 12-18 ms of the event
loop on the 2-core VM, a stall every live session would see. So the start-up heap is
frozen (``gc.freeze``: moved to a permanent generation no collection walks) and the
collection after a session walks only what came since, well under a millisecond to a few ms.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger("emote.gc")

__all__ = ["collect_closed_session", "freeze_startup"]


def freeze_startup() -> int:
    """Collect what start-up left (the capacity probe's generator), then freeze the rest.
    Returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def collect_closed_session() -> float:
    """A full collection (frozen objects left out) after a session closed; returns its
    duration in ms."""
    start = time.perf_counter()
    found = gc.collect()
    elapsed_ms = (time.perf_counter() - start) * 1000.0
    log.debug("collected %d objects in %.1f ms", found, elapsed_ms)
    return elapsed_ms
