"""A real TURN server (Debian's coturn) on loopback for the TURN test
(tests/test_turn.py): TURN REST API credentials (``use-auth-secret``), loopback peers
allowed (coturn refuses relaying to them by default), started here and stopped by PID."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from pathlib import Path

from measure.server import free_port


def available() -> bool:
    return shutil.which("turnserver") is not None


class Coturn:
    """``turnserver`` on 127.0.0.1 with ``secret`` as its static-auth-secret."""

    def __init__(self, secret: str, folder: Path) -> None:
        self.secret = secret
        self.port = free_port()
        self.folder = folder
        self.log = folder / "turnserver.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def __enter__(self) -> Coturn:
        command = [
            "turnserver", "-n", "--no-cli", "--no-tls", "--no-dtls", "--simple-log",
            "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", f"--listening-port={self.port}",
            "--min-port=49160", "--max-port=49400", "--use-auth-secret",
            f"--static-auth-secret={self.secret}", "--realm=emote.test",
            "--allow-loopback-peers", "--no-tcp-relay", "--log-file=stdout", "--verbose",
            f"--pidfile={self.folder / 'turnserver.pid'}", f"--userdb={self.folder / 'turndb'}",
        ]  # fmt: skip
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while "Total General servers" not in self.text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"turnserver did not start: {self.text()[-1500:]}")
            time.sleep(0.1)
        return self

    def text(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")
        return ""

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
