"""Sessions per node with the balancer in front: `emote serve` nodes behind a real HAProxy on
this machine, loaded through the balancer one session more at a time.

    python -m bench.balancer_sessions [--nodes 1] [--duration 30] [--json OUT.json]

Starts ``--nodes`` nodes behind HAProxy (measure.balancer_lab). Each measures its own
capacity at start-up, as `emote serve` does by default (``--capacity auto``, here with
``--max-sessions 4`` and its default render processes). It reads each node's capacity from
its ``/healthz``, then for N = 1 .. the total capacity runs the latency bench
(measure.latency: real speech bursts, glass to glass read with FaceMesh, A/V offset, frame
rate) with N sessions through the balancer. Last, with every slot held (as many as the nodes
admit then: a node's live meter lowers its capacity when the steps above overloaded it), one
more session is offered: the balancer must refuse it (503) without touching the sessions it
holds. The bench's clients run in this process, on the same cores as the nodes, as in
``emote bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CHECK_MS = 300


def _health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
        return dict(json.loads(response.read()))


def _wait_idle(nodes: dict[str, str]) -> None:
    """Until every node holds no session, then until HAProxy's agent checks know it."""
    deadline = time.monotonic() + 30
    while any(_health(url)["sessions"] for url in nodes.values()):
        if time.monotonic() > deadline:
            raise RuntimeError("the nodes did not let their sessions go in 30 s")
        time.sleep(0.2)
    time.sleep(3 * CHECK_MS / 1000)


async def _refusal(url: str, hold: int) -> dict[str, Any]:
    """Hold ``hold`` sessions through the balancer, then offer one more."""
    import aiohttp

    from measure.server import BenchError
    from measure.webrtc_client import Client

    held: list[Client] = []
    async with aiohttp.ClientSession() as http:
        try:
            for _ in range(hold):
                client = Client(url, None)
                try:
                    await client.connect(http)
                except BenchError as exc:  # refused below the capacity the nodes reported
                    return {"held": len(held), "hold_refused": str(exc)[:200]}
                await asyncio.wait_for(client.first_frame.wait(), 30)
                held.append(client)
                await asyncio.sleep(3 * CHECK_MS / 1000)  # its node's agent now knows
            extra = Client(url, None)
            started = time.monotonic()
            try:
                await extra.connect(http)
                refused = None
            except BenchError as exc:
                refused = str(exc)
            answer_ms = round((time.monotonic() - started) * 1000, 1)
            if extra.pc is not None:
                await extra.pc.close()
            before = [len(c.received.video_t) for c in held]
            await asyncio.sleep(2.0)
            fps = [(len(c.received.video_t) - b) / 2.0 for c, b in zip(held, before, strict=True)]
            return {
                "held": len(held),
                "extra_refused": refused,
                "refusal_ms": answer_ms,
                "held_fps_after": [round(f, 1) for f in fps],
            }
        finally:
            for client in held:
                await client.close(http)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GLOG_minloglevel", "2")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not 1 <= args.nodes <= 4:
        parser.error("--nodes: 1 to 4 on one machine")
    from contracts.paths import DEFAULT_SPEECH
    from measure.balancer_lab import cluster, haproxy_available
    from measure.latency import analyse, run_sessions, summarize
    from measure.program import cut_bursts, load_speech

    if not haproxy_available():
        print("bench.balancer_sessions: haproxy is not installed (apt install haproxy)")
        return 2
    bursts = cut_bursts(load_speech(DEFAULT_SPEECH))
    names = [f"n{i + 1}" for i in range(args.nodes)]
    steps = []
    with tempfile.TemporaryDirectory() as tmp:
        cache, folder = Path(tmp) / "cache", Path(tmp)
        with cluster(names, cache, folder, CHECK_MS, capacity=None, render_slots=None) as running:
            capacities = {name: _health(url)["capacity"] for name, url in running.nodes.items()}
            total = sum(capacities.values())
            print(f"capacities {capacities}", file=sys.stderr, flush=True)
            for n in range(1, total + 1):
                clients = asyncio.run(run_sessions(running.url, n, args.duration, bursts))
                summary = summarize([analyse(i, c, s) for i, (c, s) in enumerate(clients)])
                nodes = sorted(str(c.session_id).split("-", 1)[0] for c, _ in clients)
                step = {
                    "sessions": n,
                    "nodes": nodes,
                    "fps": summary["fps"],
                    "fps_min": summary["fps_min"],
                    "latency_ms": summary["latency_ms"],
                    "av_offset_ms": summary["av_offset_ms"],
                    "mouth_vs_sound_ms": summary["mouth_vs_sound_ms"],
                    "generator_lead_ms": summary["generator_lead_ms"],
                    "dropped": summary["dropped"],
                    "onsets_missed": summary["onsets_missed"],
                }
                print(json.dumps(step), flush=True)
                steps.append(step)
                _wait_idle(running.nodes)
            _wait_idle(running.nodes)
            # the nodes' live meters may have changed their capacity under the load above
            limits = {name: _health(url)["max_sessions"] for name, url in running.nodes.items()}
            refusal = asyncio.run(_refusal(running.url, sum(limits.values())))
            refusal["limits_after_steps"] = limits
            print(json.dumps(refusal), flush=True)
    report = {
        "command": f"python -m bench.balancer_sessions --nodes {args.nodes} "
        f"--duration {args.duration:g}",
        "cpus": os.cpu_count(),
        "capacities": capacities,
        "steps": steps,
        "full": refusal,
    }
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
