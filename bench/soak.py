"""Soak and churn of the live server: memory, threads, files and shared memory over time.

Usage:
    python -m bench.soak [--sessions 4] [--duration 3600] [--warmup-s 300] [--churn 200]
                         [--url URL --pid PID] [--server-option "--capacity 4" ...]
                         [--json OUT.json]

Without ``--url`` it starts its own server (``emote serve`` on a free loopback port, with
``--max-sessions`` the soak's sessions and any ``--server-option``) and stops it at the end;
with ``--url`` the resources are read only when ``--pid`` names the server's process.
``--sessions 0`` leaves the soak out, ``--churn 0`` the churn. The script: arguments, the
run, the JSON and the table. What each number means, and the code that measures it:
measure/soak.py. The exit status does not depend on the targets (PASS/FAIL is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import sys
from pathlib import Path

from contracts.paths import DEFAULT_SPEECH
from measure.program import cut_bursts, load_speech
from measure.server import serve_process
from measure.soak import Config, format_report, run_soak

__all__ = ["build_parser", "check_arguments", "main", "run"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: start one on loopback)")
    parser.add_argument("--pid", type=int, help="with --url: its process id, for the readings")
    parser.add_argument("--sessions", type=int, default=4, help="soak sessions (0: no soak)")
    parser.add_argument("--duration", type=float, default=3600.0, help="soak seconds")
    parser.add_argument(
        "--warmup-s", type=float, default=300.0, help="the soak's baseline is read this late"
    )
    parser.add_argument("--churn", type=int, default=200, help="churn sessions (0: no churn)")
    parser.add_argument(
        "--churn-warmup", type=int, default=5, help="churn sessions before its baseline"
    )
    parser.add_argument("--hold-s", type=float, default=1.5, help="each churn session's video")
    parser.add_argument(
        "--settle-s", type=float, default=15.0, help="wait after closing before a reading"
    )
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between readings")
    parser.add_argument(
        "--audio", type=Path, default=DEFAULT_SPEECH, help="speech to send (cut into bursts)"
    )
    parser.add_argument(
        "--server-option",
        action="append",
        default=[],
        metavar="'OPTIONS'",
        help="options of the server it starts, e.g. --server-option '--capacity 4' (repeatable)",
    )
    parser.add_argument("--cache-dir", type=Path, help="the spawned server's avatar cache")
    parser.add_argument("--json", type=Path, help="write the report and every reading here")
    return parser


def check_arguments(args: argparse.Namespace) -> str | None:
    """A user-facing problem with the arguments, or None."""
    if args.sessions < 0 or args.churn < 0 or args.churn_warmup < 0:
        return "--sessions, --churn and --churn-warmup cannot be negative"
    if args.sessions == 0 and args.churn == 0:
        return "nothing to run: --sessions 0 and --churn 0"
    if args.sessions and not 0 <= args.warmup_s < args.duration:
        return "--warmup-s must be below --duration (the baseline is read after it)"
    if args.interval < 1 or args.hold_s <= 0 or args.settle_s < 0:
        return "--interval must be at least 1 s, --hold-s above 0, --settle-s not negative"
    if args.url and (args.server_option or args.cache_dir):
        return "--server-option and --cache-dir set the server the bench starts; not with --url"
    if args.pid is not None and not args.url:
        return "--pid names the process of a running server (--url)"
    if not Path(args.audio).is_file():
        return f"audio file not found: {args.audio}"
    return None


def run(args: argparse.Namespace) -> dict:
    """The bench with the parsed arguments: prints the table, writes the JSON, returns it."""
    bursts = cut_bursts(load_speech(args.audio))
    if not bursts:
        raise ValueError(f"no speech onsets found in {args.audio}")
    options = tuple(word for option in args.server_option for word in shlex.split(option))
    with contextlib.ExitStack() as stack:
        url, pid = args.url, args.pid
        if url is None:
            print(f"starting a server {shlex.join(options)}".rstrip() + " ...", file=sys.stderr)
            server = serve_process(max(args.sessions, 1), args.cache_dir, options=options)
            url, pid = stack.enter_context(server)
        config = Config(
            url, pid, args.sessions, args.duration, args.warmup_s, args.churn,
            args.churn_warmup, args.hold_s, args.settle_s, args.interval,
        )  # fmt: skip
        report = asyncio.run(run_soak(config, bursts))
    report["server_options"] = list(options)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    print(format_report(report))
    return report


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GLOG_minloglevel", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if problem := check_arguments(args):
        parser.error(problem)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
