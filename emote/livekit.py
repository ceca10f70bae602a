"""``emote livekit-worker``: the avatar as a LiveKit Agents avatar worker
(integrations/livekit_avatar.py; docs/integrations/livekit.md). Runs in .venv-integrations
(`./run.sh livekit-worker ...`): livekit needs protobuf>=5, mediapipe protobuf<5."""

from __future__ import annotations

import argparse
import os

from contracts.paths import DEFAULT_PORTRAIT
from emote.errors import CliError
from emote.options import cache_dir, parse_style


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from contracts.style import NEUTRAL
    from engines.motion_generators import DEFAULT_LIVE_MOTION, MOTION_CHOICES

    worker = sub.add_parser(
        "livekit-worker",
        parents=[common],
        help="serve the avatar to LiveKit Agents (explicit dispatch; docs/integrations/livekit.md)",
    )
    worker.add_argument("--url", default=None, help="LiveKit server URL (default $LIVEKIT_URL)")
    worker.add_argument("--api-key", default=None, help="default $LIVEKIT_API_KEY")
    worker.add_argument("--api-secret", default=None, help="default $LIVEKIT_API_SECRET")
    worker.add_argument(
        "--agent-name",
        default="emote-avatar",
        help="the name agents dispatch (default emote-avatar)",
    )
    worker.add_argument(
        "--avatar",
        default=str(DEFAULT_PORTRAIT),
        help="default portrait: a file prepared with `emote prepare`, or a prepared avatar's id",
    )
    worker.add_argument("--motion", choices=MOTION_CHOICES, default=DEFAULT_LIVE_MOTION)
    worker.add_argument("--style", type=parse_style, default=NEUTRAL, metavar="NAME[:INTENSITY]")
    worker.add_argument(
        "--max-sessions",
        type=int,
        default=None,
        help="rooms served at once; the load reported for dispatch is sessions / this "
        "(default: the CPU cores, at least 1: a 512 px frame costs ~10-14 ms of one core)",
    )
    worker.set_defaults(func=cmd_livekit_worker)


def cmd_livekit_worker(args: argparse.Namespace) -> int:
    try:
        from integrations.avatar_setup import AvatarSettings, load_avatar
        from integrations.livekit_avatar import WorkerState, serve_worker
    except ImportError as exc:
        raise CliError(
            f"the LiveKit integration is not installed here ({exc.name} missing): run "
            "`./run.sh livekit-worker ...` (it sets up .venv-integrations)"
        ) from exc
    url = args.url or os.environ.get("LIVEKIT_URL")
    key = args.api_key or os.environ.get("LIVEKIT_API_KEY")
    secret = args.api_secret or os.environ.get("LIVEKIT_API_SECRET")
    missing = [
        n for n, v in (("--url", url), ("--api-key", key), ("--api-secret", secret)) if not v
    ]
    if missing:
        raise CliError(f"missing {', '.join(missing)} (or LIVEKIT_URL / _API_KEY / _API_SECRET)")
    max_sessions = args.max_sessions or max(1, os.cpu_count() or 1)
    if max_sessions < 1:
        raise CliError("--max-sessions must be at least 1")
    settings = AvatarSettings(
        portrait=args.avatar, motion=args.motion, style=args.style, cache_dir=cache_dir(args)
    )
    load_avatar(settings.portrait, settings.cache_dir)  # fail now, not on the first dispatch
    assert url and key and secret
    serve_worker(WorkerState(url, key, secret, settings, max_sessions), args.agent_name)
    return 0
