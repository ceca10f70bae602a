"""``emote bench``: the live latency benchmark (bench/latency.py, over measure/)."""

from __future__ import annotations

import argparse
import sys

from contracts.paths import REPO
from emote.errors import CliError
from measure.bench_options import add_arguments, check_arguments


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    bench = sub.add_parser(
        "bench",
        parents=[common],
        help="glass-to-glass latency, A/V offset and frame delivery of a live server",
    )
    add_arguments(bench)
    bench.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    # bench/ holds scripts, not a library: the `emote` script finds it in the checkout.
    if (REPO / "bench").is_dir() and str(REPO) not in sys.path:
        sys.path.append(str(REPO))
    try:
        from bench.latency import BenchError, run_arguments
    except ImportError as exc:
        raise CliError("`emote bench` runs from a source checkout (it needs bench/)") from exc
    if problem := check_arguments(args):
        raise CliError(problem)
    try:
        run_arguments(args)
    except BenchError as exc:
        raise CliError(str(exc)) from exc
    return 0
