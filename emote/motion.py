"""``emote motion``: a motion generator's frames for an audio file, as a motion file.

The file (JSON Lines, contracts/motion_file.py, docs/api.md) is what ``emote render
--motion-file`` reads: edit it, mix it with another source, or drive another renderer.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from contracts.paths import DEFAULT_SPEECH
from emote.errors import CliError
from emote.options import add_motion_arguments, check_audio, make_generator


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from engines.motion_generators import DEFAULT_MOTION

    motion = sub.add_parser(
        "motion",
        parents=[common],
        help="write a motion generator's frames for an audio file (JSON Lines, docs/api.md)",
    )
    motion.add_argument("--audio", type=Path, default=DEFAULT_SPEECH)
    motion.add_argument(
        "--output", type=Path, required=True, help="the motion file to write ('-': stdout)"
    )
    motion.add_argument("--seed", type=int, default=0)
    add_motion_arguments(motion, DEFAULT_MOTION)
    motion.set_defaults(func=cmd_motion)


def cmd_motion(args: argparse.Namespace) -> int:
    from contracts.motion_file import write_motion
    from engines.pipeline import motion_from_audio

    audio = Path(args.audio)
    check_audio(audio)  # before anything is written
    generator = make_generator(args)
    header = {
        "source": "emote motion",
        "motion": args.motion,
        "seed": args.seed,
        "steps": args.steps,
        "style": str(args.style),
        "audio": audio.name,
    }
    frames = motion_from_audio(audio, generator)
    if str(args.output) == "-":
        count = write_motion(sys.stdout, frames, **header)
    else:
        count = _write_atomically(
            Path(args.output), lambda handle: write_motion(handle, frames, **header)
        )
        print(
            f"wrote {args.output}: {count} motion frames ({count / 25:.2f} s at 25 fps)",
            file=sys.stderr,
        )
    return 0


def _write_atomically(path: Path, write: Callable[[IO[str]], int]) -> int:
    """Write through a temporary file beside ``path``: a failure leaves no partial file."""
    if path.parent != Path() and not path.parent.is_dir():
        raise CliError(f"no such folder: {path.parent}")
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            count = write(handle)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return count
