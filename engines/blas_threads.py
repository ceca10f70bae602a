"""One BLAS thread per process, for the live server and its render processes.

numpy's OpenBLAS (and OpenCV's own copy) start a worker thread per core and, after each call,
keep those threads spinning for a while in case another call comes. The dsp motion generator
solves a small linear system every hop (its formant fit), so in a live session numpy's
second BLAS thread never got to sleep: it spent a whole core (99.8% of one, measured with
one session on the 2-core VM of docs/benchmarks.md) to speed up 4x4 solves that need none.
The server's work is parallel across sessions and processes, not inside a BLAS call.

``OPENBLAS_NUM_THREADS`` only works before the library loads; ``single_threaded_blas`` sets
the count of every OpenBLAS already loaded in the process (found in /proc/self/maps),
through its own ``openblas_set_num_threads`` symbol. Elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path

log = logging.getLogger(__name__)

SYMBOLS = ("openblas_set_num_threads64_", "openblas_set_num_threads")


def loaded_openblas() -> list[str]:
    """Paths of the OpenBLAS libraries mapped into this process (Linux)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    paths = {line.split()[-1] for line in maps.splitlines() if "openblas" in line.lower()}
    return sorted(p for p in paths if p.startswith("/"))


def single_threaded_blas() -> int:
    """Set every loaded OpenBLAS to one thread; how many were set."""
    import numpy  # noqa: F401  (loads numpy's OpenBLAS, if it is not loaded yet)

    done = 0
    for path in loaded_openblas():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for name in SYMBOLS:
            setter = getattr(library, name, None)
            if setter is not None:
                setter.argtypes = [ctypes.c_int]
                setter.restype = None
                setter(1)
                done += 1
                break
    if done == 0:
        log.debug("no OpenBLAS found to limit to one thread")
    return done
