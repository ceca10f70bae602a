"""``emote live``: the avatar on this machine's microphone, shown in a window, a virtual
camera and/or a file, heard on the speakers (engines/local_live.py; docs/integrations/local.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from contracts.paths import DEFAULT_PORTRAIT
from emote.errors import CliError
from emote.options import add_motion_arguments, cache_dir, make_generator


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from engines.motion_generators import DEFAULT_LIVE_MOTION

    live = sub.add_parser(
        "live",
        parents=[common],
        help="the avatar on this machine's microphone: window, virtual camera, file, speakers",
    )
    live.add_argument("--list-devices", action="store_true", help="list audio devices, exit")
    live.add_argument("--image", type=Path, default=DEFAULT_PORTRAIT)
    live.add_argument(
        "--mic", default=None, help="input device: index or name (default: the system's)"
    )
    live.add_argument("--window", action="store_true", help="show a preview window (tkinter)")
    live.add_argument(
        "--virtual-camera", action="store_true", help="send to a virtual camera (pyvirtualcam)"
    )
    live.add_argument("--output", type=Path, default=None, help="also write an MP4")
    live.add_argument(
        "--speaker",
        nargs="?",
        const="",
        default=None,
        metavar="DEVICE",
        help="play the avatar's sound, in step with its frames (optionally on DEVICE)",
    )
    live.add_argument(
        "--seconds", type=float, default=None, help="stop after this long (default: Ctrl-C)"
    )
    live.add_argument("--seed", type=int, default=0)
    live.add_argument("--stats", type=Path, default=None, help="write the run's numbers (JSON)")
    add_motion_arguments(live, DEFAULT_LIVE_MOTION)
    live.set_defaults(func=cmd_live)


def _device(text: str | None) -> int | str | None:
    if text is None or text == "":
        return None
    return int(text) if text.isdigit() else text


def cmd_live(args: argparse.Namespace) -> int:
    from engines import local_live
    from engines.audio_io import OUTPUT_RATE
    from engines.avatar import prepare_avatar
    from engines.avatar_frames import AvatarFrames
    from engines.frame_renderer import FrameRenderer
    from engines.renderer_models import create_renderer
    from engines.rig import rig_for_avatar

    try:
        if args.list_devices:
            print(local_live.list_devices())
            return 0
        if not (args.window or args.virtual_camera or args.output or args.speaker is not None):
            raise CliError("say where the avatar goes: --window, --virtual-camera, --output "
                           "FILE.mp4 and/or --speaker")  # fmt: skip
        if args.seconds is not None and args.seconds <= 0:
            raise CliError("--seconds must be positive")
        generator = make_generator(args)
        cache = cache_dir(args)
        avatar = prepare_avatar(args.image, cache_dir=cache)
        rig = rig_for_avatar(avatar.avatar_id, avatar.image, avatar.landmarks, cache)
        renderer = FrameRenderer(create_renderer(), rig)
        core = AvatarFrames(renderer.render, generator, rate=OUTPUT_RATE)
        size = int(avatar.image.shape[0])
        mic = local_live.Microphone(_device(args.mic))
        sinks: list[local_live.Sink] = []
        window = None
        try:
            if args.output is not None:
                sinks.append(local_live.FileSink(args.output, size))
            if args.speaker is not None:
                sinks.append(local_live.SpeakerSink(_device(args.speaker)))
            if args.virtual_camera:
                sinks.append(local_live.VirtualCameraSink(size))
            if args.window:
                window = local_live.WindowSink(size)
                sinks.append(window)
        except local_live.DeviceError:
            mic.close()
            for sink in sinks:
                sink.close()
            raise
        print("live: speak into the microphone (Ctrl-C stops)", file=sys.stderr)
        try:
            stats = local_live.run(
                core, mic, sinks, args.seconds, stop=lambda: bool(window and window.closed)
            )
        except KeyboardInterrupt:
            return 0
    except local_live.DeviceError as exc:
        raise CliError(str(exc)) from None
    report = stats.as_json()
    for sink in sinks:
        if isinstance(sink, local_live.SpeakerSink):
            report["speaker_dropped"] = sink.dropped
    print("live: " + ", ".join(f"{k} {v}" for k, v in report.items()), file=sys.stderr)
    if args.stats is not None:
        args.stats.write_text(json.dumps(report, indent=1) + "\n")
    return 0
