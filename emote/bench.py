"""``emote bench``: the live latency benchmark (bench/latency.py, over measure/)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from contracts.paths import DEFAULT_SPEECH, REPO
from emote.errors import CliError


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    bench = sub.add_parser(
        "bench",
        parents=[common],
        help="glass-to-glass latency, A/V offset and frame delivery of a live server",
    )
    bench.add_argument("--url", help="a running server (default: start one on loopback)")
    bench.add_argument("--sessions", type=int, default=1, help="concurrent sessions")
    bench.add_argument("--duration", type=float, default=20.0, help="seconds per session")
    bench.add_argument("--audio", type=Path, default=DEFAULT_SPEECH, help="speech to send")
    bench.add_argument("--json", type=Path, help="write the results here")
    bench.add_argument("--plot", type=Path, help="latency histogram and timelines (PNG)")
    bench.add_argument(
        "--margin-ms",
        type=float,
        help="the compute margin of the server the bench starts (emote serve --margin-ms)",
    )
    bench.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    # bench/ holds scripts, not a library: the `emote` script finds it in the checkout.
    if (REPO / "bench").is_dir() and str(REPO) not in sys.path:
        sys.path.append(str(REPO))
    try:
        from bench.latency import BenchError, check_arguments, run_arguments
    except ImportError as exc:
        raise CliError("`emote bench` runs from a source checkout (it needs bench/)") from exc
    if problem := check_arguments(args):
        raise CliError(problem)
    try:
        run_arguments(args)
    except BenchError as exc:
        raise CliError(str(exc)) from exc
    return 0
