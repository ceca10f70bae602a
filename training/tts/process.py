"""Running the engines' command-line programs: timeouts, clear errors, scratch folders.

Engines are separate programs that can hang on odd input or be missing on a machine; every
call has a timeout and turns a failure into a TtsError that quotes the program's stderr, so
a corpus build reports which voice and sentence broke instead of a bare CalledProcessError.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from training.tts.base import TtsError

DEFAULT_TIMEOUT_S = 60.0


def have(program: str) -> bool:
    return shutil.which(program) is not None


def run_tool(
    args: Sequence[str | Path], *, stdin: bytes | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    """Run a program to completion; raise TtsError if it is missing, fails or times out."""
    argv = [str(a) for a in args]
    try:
        result = subprocess.run(
            argv, input=stdin, capture_output=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise TtsError(f"{argv[0]} is not installed (see scripts/install_tts.sh)") from None
    except subprocess.TimeoutExpired:
        raise TtsError(f"{argv[0]} timed out after {timeout:.0f} s") from None
    if result.returncode != 0:
        tail = result.stderr.decode(errors="replace").strip()[-500:]
        raise TtsError(f"{argv[0]} exited with {result.returncode}: {tail}")
    return result


def scratch_dir() -> AbstractContextManager[str]:
    """A temporary folder removed on exit, for the files the programs read and write."""
    return tempfile.TemporaryDirectory(prefix="emote-tts-")
