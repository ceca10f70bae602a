"""``emote serve`` on a free loopback port for a measurement (the live bench, the server tests
and the browser test), stopped when the measurement ends."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from contracts.paths import REPO


class BenchError(RuntimeError):
    """The benchmark cannot run (no server, offer refused); the message is for the user."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(
    max_sessions: int,
    cache_dir: Path | None = None,
    timeout_s: float = 120.0,
    margin_ms: float | None = None,
    options: tuple[str, ...] = (),
    host: str = "127.0.0.1",
) -> Iterator[str]:
    """Run ``emote serve`` on a free port (of loopback unless ``host`` says otherwise) until
    the block ends; yields its URL.
    ``margin_ms``: its ``--margin-ms`` (None: the server's default); ``options``: more of
    its command-line options (e.g. ``("--motion", "learned")``). The server admits
    ``max_sessions`` (``--capacity``) unless ``options`` name another ``--capacity`` (``auto``:
    the server measures its own). ``host``: the address it binds; another than loopback
    (a lab namespace's, measure.janus_lab) serves without a token (``--insecure``)."""
    with serve_process(max_sessions, cache_dir, timeout_s, margin_ms, options, host) as (
        url,
        _pid,
    ):
        yield url


@contextlib.contextmanager
def serve_process(
    max_sessions: int,
    cache_dir: Path | None = None,
    timeout_s: float = 120.0,
    margin_ms: float | None = None,
    options: tuple[str, ...] = (),
    host: str = "127.0.0.1",
) -> Iterator[tuple[str, int]]:
    """:func:`serve`, yielding the URL and the server's process id (for readings of its
    memory, threads and files: measure.soak)."""
    import urllib.request

    port = free_port()
    with contextlib.ExitStack() as stack:
        if cache_dir is None:
            cache_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="emote-")))
        log = stack.enter_context(tempfile.TemporaryFile())
        command = [sys.executable, "-m", "emote", "serve", "--host", host]
        command += ["--port", str(port), "--max-sessions", str(max_sessions)]
        command += ["--cache-dir", str(cache_dir)]
        if "--capacity" not in options:  # a measurement states its load; the server's own
            command += ["--capacity", str(max_sessions)]  # capacity probe is tested apart
        if margin_ms is not None:
            command += ["--margin-ms", str(margin_ms)]
        command += list(options)
        if host != "127.0.0.1":
            command.append("--insecure")
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://{host}:{port}"
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read().decode(errors="replace")[-2000:]
                    raise BenchError(f"the server did not start:\n{tail}")
                with (
                    contextlib.suppress(OSError, ValueError),
                    urllib.request.urlopen(f"{url}/healthz", timeout=1) as response,
                ):
                    if json.loads(response.read())["status"] == "ok":
                        break
                time.sleep(0.3)
            yield url, process.pid
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
