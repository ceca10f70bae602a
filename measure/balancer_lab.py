"""`emote serve` nodes behind a real HAProxy (Debian's) on loopback, started here and stopped
by PID: for tests/test_balancer.py and bench.balancer_sessions (docs/deploy.md).

Each node gets ``--node-id`` and ``--agent-port`` (its free capacity for HAProxy's agent
check, stream_server/balancer_agent.py); HAProxy gets ``haproxy_config`` for them."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from measure.server import free_port, serve_process
from stream_server.balancer_agent import Node, haproxy_config

# --max-sessions of a node that measures its own capacity (it sets the compute margin too:
# stream_server.session.default_margin_s; 4 is what docs/benchmarks.md ran on 2 cores)
MAX_AUTO = 4


def status(method: str, url: str) -> int:
    """An HTTP request's status (0: nothing answered)."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except urllib.error.URLError:
        return 0  # nothing listening (yet)


@dataclass
class Cluster:
    url: str  # the balancer
    nodes: dict[str, str]  # node id -> its own URL
    pids: dict[str, int]  # node id -> its server's process id
    config: Path  # HAProxy's configuration


def haproxy_available() -> bool:
    return shutil.which("haproxy") is not None


@contextlib.contextmanager
def cluster(
    names: list[str],
    cache: Path,
    folder: Path,
    check_ms: int,
    capacity: int | None = 1,
    render_slots: int | None = 1,
) -> Iterator[Cluster]:
    """Nodes ``names`` (one avatar cache, as on shared storage; ``capacity`` sessions each,
    None: each measures its own, up to ``MAX_AUTO``) behind HAProxy, every node checked up."""
    with contextlib.ExitStack() as stack:
        nodes, urls, pids = [], {}, {}
        for name in names:
            agent = free_port()
            options: tuple[str, ...] = ("--node-id", name, "--agent-port", str(agent))
            if render_slots is not None:
                options += ("--render-slots", str(render_slots))
            if capacity is None:
                options += ("--capacity", "auto")
            most = capacity or MAX_AUTO
            url, pid = stack.enter_context(serve_process(most, cache, options=options))
            port = int(url.rsplit(":", 1)[1])
            nodes.append(Node(name, "127.0.0.1", port, agent))
            urls[name], pids[name] = url, pid
        bind = free_port()
        config = folder / "haproxy.cfg"
        config.write_text(haproxy_config(nodes, f"127.0.0.1:{bind}", check_ms))
        proxy = subprocess.Popen(["haproxy", "-db", "-f", str(config)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            url = f"http://127.0.0.1:{bind}"
            deadline = time.monotonic() + 20
            while status("GET", f"{url}/healthz") != 200:
                if proxy.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("haproxy did not start")
                time.sleep(0.2)
            time.sleep(3 * check_ms / 1000)  # every node checked up
            yield Cluster(url, urls, pids, config)
        finally:
            proxy.terminate()
            proxy.wait(5)
