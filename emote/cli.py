"""The ``emote`` command line: prepare, render, motion, serve, live, livekit-worker, bench,
train, eval, export.

Builds the parser from each subcommand's module (emote.offline, emote.motion, emote.serve,
emote.bench, emote.train) and runs the chosen one; a user-facing failure prints one line
(``emote: error: ...``) and exits with status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from emote import bench, live, livekit, motion, offline, serve, train
from emote.errors import CliError

__all__ = ["CliError", "build_parser", "main"]


def _quiet_native_logs() -> None:
    # mediapipe/TFLite print banners on stderr; keep the CLI's output readable.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emote", description="Talking-portrait avatar engine")
    parser.add_argument(
        "--cache-dir", help="avatar cache (default $EMOTE_CACHE_DIR or ~/.cache/emote)"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    # Global options are accepted after the subcommand as well.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
    offline.register(sub, common)  # prepare, render
    motion.register(sub, common)
    serve.register(sub, common)
    serve.register_balancer(sub, common)
    livekit.register(sub, common)
    live.register(sub, common)
    bench.register(sub, common)
    train.register(sub, common)  # train, eval
    offline.register_export(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    _quiet_native_logs()
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s"
    )
    from contracts.settings import SettingsError
    from engines.audio_io import AudioError
    from engines.avatar import AvatarError
    from engines.engine import EngineError

    try:
        return int(args.func(args) or 0)
    except (CliError, AvatarError, AudioError, EngineError, SettingsError) as exc:
        print(f"emote: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("emote: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
