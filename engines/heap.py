"""Keep freed memory in the process instead of handing it back to the OS at once.

A render allocates and frees several large arrays per frame (the warp's 2 MB source map,
remapped planes, the composited windows). glibc's malloc serves large blocks with fresh
``mmap`` calls above its (dynamic) mmap threshold and hands a free heap top above its trim
threshold back to the OS, so a server render process faulted in ~1600 fresh pages (6 MB) a
frame: 8.6-9.0 ms of CPU a frame instead of 5.9-6.3 ms (docs/benchmarks.md). Fixed, high
thresholds keep those blocks in the heap for reuse; the process then holds on to at most
its peak working set. Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 << 20  # blocks below this come from the heap
TRIM_THRESHOLD = 512 << 20  # free heap kept before any is returned


def keep_freed_memory() -> bool:
    """Set glibc's malloc thresholds for this process; whether it took effect."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    done = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and done
    if not done:
        log.warning("malloc thresholds not set: renders will page-fault more")
    return done
