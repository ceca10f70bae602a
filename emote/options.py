"""Options and helpers shared by several subcommands."""

from __future__ import annotations

import argparse
from pathlib import Path

from contracts.style import NEUTRAL, STYLES, Style
from emote.errors import CliError
from engines.motion_stream import MotionGenerator


def cache_dir(args: argparse.Namespace) -> Path:
    from engines.avatar import default_cache_dir

    return Path(args.cache_dir) if args.cache_dir else default_cache_dir()


def check_audio(path: Path) -> None:
    """Decode the first chunk of ``path``: a missing or unreadable file raises AudioError
    before any other work (a bad input must change nothing)."""
    from engines.audio_io import iter_audio

    chunks = iter_audio(path)
    try:
        next(chunks, None)
    finally:
        chunks.close()


def make_generator(args: argparse.Namespace) -> MotionGenerator:
    from engines.motion_generators import make_generator as make

    try:
        generator = make(
            args.motion, seed=args.seed, steps=args.steps, models_dir=args.motion_models
        )
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    generator.set_style(args.style)
    return generator


def parse_style(text: str) -> Style:
    """argparse type of ``--style``: a clear error for an unknown name or intensity."""
    try:
        return Style.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_motion_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    from engines.motion_generators import MOTION_CHOICES

    parser.add_argument(
        "--motion",
        choices=MOTION_CHOICES,
        default=default,
        help=f"motion generator (default {default}; docs/training.md)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="sampling steps of the learned model (learned: 1-4, default 2; teacher: default 24)",
    )
    parser.add_argument(
        "--motion-models",
        type=Path,
        default=None,
        help="folder of the learned motion graphs (default: the shipped assets/models)",
    )
    parser.add_argument(
        "--style",
        type=parse_style,
        default=NEUTRAL,
        metavar="NAME[:INTENSITY]",
        help=f"speaking style: {', '.join(STYLES)}, intensity 0-1 (default 1), e.g. happy:0.6",
    )
