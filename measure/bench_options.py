"""The live latency benchmark's options, shared by ``emote bench`` and ``python -m bench.latency``.

Plain argparse and paths: ``emote`` registers them at every start without importing aiortc.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from contracts.paths import DEFAULT_SPEECH


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="a running server (default: start one on loopback)")
    parser.add_argument("--sessions", type=int, default=1, help="concurrent sessions")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per session")
    parser.add_argument(
        "--audio", type=Path, default=DEFAULT_SPEECH, help="speech to send (cut into bursts)"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="latency histogram and timelines (PNG)")
    parser.add_argument(
        "--margin-ms",
        type=float,
        help="the compute margin of the server the bench starts (emote serve --margin-ms)",
    )


def check_arguments(args: argparse.Namespace) -> str | None:
    """A user-facing problem with the arguments, or None."""
    if args.sessions < 1:
        return "--sessions must be at least 1"
    if args.duration < 5:
        return "--duration must be at least 5 s"
    if not Path(args.audio).is_file():
        return f"audio file not found: {args.audio}"
    if args.margin_ms is not None and args.url:
        return "--margin-ms sets the server the bench starts; without --url only"
    if args.margin_ms is not None and not 0.0 <= args.margin_ms <= 1000.0:
        return "--margin-ms must be between 0 and 1000"
    return None
