"""A private network with a real Janus in it, for the fan-out tests and bench.

Janus (libnice) never gathers a loopback interface's addresses, and this machine's kernel
makes no dummy or veth interfaces. So ``netns`` makes a network namespace of its own with
loopback and an empty bridge, ``emj0`` (up, no ports: nothing can leave through it), holding
10.213.0.1 (``DEFAULT_ADDRESS``), Janus's one ICE address (``interface`` and
``ice_enforce_list``). Everything that talks WebRTC (Janus, ``emote serve`` and the viewers
on 127.0.0.1) runs inside it (``ip netns exec``); the kernel delivers between the
namespace's own addresses, so media never leaves it and never touches the machine's own
interfaces. It needs root (CAP_NET_ADMIN and
CAP_SYS_ADMIN); ``unavailable`` says why not when it cannot run.

``Janus`` starts Debian's ``janus`` (``./run.sh test`` installs it) with a configuration
written here: the HTTP transport and the VideoRoom plugin only, ICE on the namespace's
interface, and stops it by PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

JANUS_LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
INTERFACE = "emj0"
DEFAULT_ADDRESS = "10.213.0.1"
HTTP_PORT = 8088


def unavailable(needs_janus: bool = True) -> str | None:
    """Why the lab cannot run here (None: it can); ``needs_janus``: with Janus in it."""
    if needs_janus and shutil.which("janus") is None:
        return "janus is not installed (apt install janus; ./run.sh test does)"
    if shutil.which("ip") is None:
        return "iproute2's ip is missing"
    if os.geteuid() != 0:
        return "network namespaces need root"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@contextlib.contextmanager
def netns(address: str = DEFAULT_ADDRESS) -> Iterator[str]:
    """A fresh network namespace with loopback and ``emj0`` at ``address``: its name."""
    name = f"emote-j{os.getpid()}"
    with contextlib.suppress(subprocess.CalledProcessError):
        _ip("netns", "del", name)  # left by a killed earlier run of this pid
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "add", INTERFACE, "type", "bridge")
        _ip("-n", name, "addr", "add", f"{address}/24", "dev", INTERFACE)
        _ip("-n", name, "link", "set", INTERFACE, "up")
        yield name
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "del", name)


def in_netns(name: str, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", name, *argv]


def write_config(folder: Path, address: str, port: int = HTTP_PORT) -> Path:
    """Janus's configuration for the lab, in ``folder``: its main file."""
    folder.mkdir(parents=True, exist_ok=True)
    plugins = ",".join(
        p.name
        for p in sorted((JANUS_LIB / "plugins").glob("libjanus_*.so"))
        if p.name != "libjanus_videoroom.so"
    )
    transports = ",".join(
        p.name
        for p in sorted((JANUS_LIB / "transports").glob("libjanus_*.so"))
        if p.name != "libjanus_http.so"
    )
    (folder / "janus.jcfg").write_text(
        f"""general: {{
    configs_folder = "{folder}"
    plugins_folder = "{JANUS_LIB / "plugins"}"
    transports_folder = "{JANUS_LIB / "transports"}"
    events_folder = "{JANUS_LIB / "events"}"
    loggers_folder = "{JANUS_LIB / "loggers"}"
    debug_level = 3
    server_name = "emote-lab"
    session_timeout = 60
}}
media: {{
    rtp_port_range = "20000-40000"
}}
nat: {{
    ice_enforce_list = "{address}"
    ignore_mdns = true
}}
plugins: {{
    disable = "{plugins}"
}}
transports: {{
    disable = "{transports}"
}}
events: {{
    broadcast = false
}}
loggers: {{
    disable = "libjanus_jsonlog.so"
}}
"""
    )
    (folder / "janus.transport.http.jcfg").write_text(
        f"""general: {{
    json = "compact"
    base_path = "/janus"
    http = true
    port = {port}
    ip = "{address}"
    https = false
}}
admin: {{
    admin_http = false
}}
"""
    )
    (folder / "janus.plugin.videoroom.jcfg").write_text("general: {\n}\n")
    return folder / "janus.jcfg"


class Janus:
    """Janus started with ``write_config`` (in the namespace this process runs in)."""

    def __init__(self, folder: Path, address: str = DEFAULT_ADDRESS, port: int = HTTP_PORT):
        self.folder = folder
        self.address = address
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / "janus.log"

    @property
    def url(self) -> str:
        """What ``emote serve --publish-to`` takes."""
        return f"janus+http://{self.address}:{self.port}/janus"

    @property
    def base(self) -> str:
        return f"http://{self.address}:{self.port}/janus"

    def __enter__(self) -> Janus:
        config = write_config(self.folder, self.address, self.port)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                ["janus", "-C", str(config), "-F", str(self.folder), "-o", "-i", self.address],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"janus exited ({self.proc.returncode}): {self.tail()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.base}/info", timeout=1) as response,
            ):
                if response.status == 200:
                    return self
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"janus did not answer in 20 s: {self.tail()}")

    def tail(self, n: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-n:]
        return ""

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
