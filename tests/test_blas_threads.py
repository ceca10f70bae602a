"""engines.blas_threads: numpy's OpenBLAS limited to one thread in the server's processes
(its spinning worker thread cost a core per live session)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engines.blas_threads import loaded_openblas

CHECK = """
import ctypes, numpy
from engines.blas_threads import loaded_openblas, single_threaded_blas
path = [p for p in loaded_openblas() if "numpy" in p][0]
get = getattr(ctypes.CDLL(path), "openblas_get_num_threads64_")
before = get()
assert single_threaded_blas() >= 1
print(before, get())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_numpys_openblas_is_found_and_set_to_one_thread() -> None:
    import numpy  # noqa: F401

    assert any("openblas" in p.lower() for p in loaded_openblas())
    before, after = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True
    ).stdout.split()
    assert int(after) == 1 and int(before) >= 1
