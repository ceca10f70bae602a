"""``emote prepare``, ``emote render`` and ``emote export``: avatars, MP4s and ONNX graphs."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from contracts.paths import DEFAULT_PORTRAIT, DEFAULT_SPEECH, MODELS_DIR
from emote.errors import CliError
from emote.options import add_motion_arguments, cache_dir, check_audio, make_generator
from engines.avatar import Avatar
from engines.engine import Engine

if TYPE_CHECKING:
    from engines.offline import RenderResult
    from engines.pipeline import RenderOptions


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from engines.motion_generators import DEFAULT_MOTION

    prep = sub.add_parser(
        "prepare", parents=[common], help="prepare and cache an avatar from a portrait"
    )
    prep.add_argument("image", type=Path)
    prep.add_argument("--size", type=int, default=512)
    prep.set_defaults(func=cmd_prepare)

    render = sub.add_parser(
        "render", parents=[common], help="render a portrait speaking an audio file to MP4"
    )
    render.add_argument("--image", type=Path, default=DEFAULT_PORTRAIT)
    render.add_argument(
        "--audio",
        type=Path,
        default=None,
        help="speech or song to speak (default: the bundled clip; with --motion-file: "
        "the sound to mux in, cut or padded to the motion's length; none = silence)",
    )
    render.add_argument(
        "--text",
        default=None,
        help="text to speak instead of --audio, with a TTS voice (engines/tts.py; needs "
        "scripts/install_tts.sh)",
    )
    render.add_argument(
        "--voice",
        default=None,
        help="the --text voice: pico-en-US (default), pico-en-GB, flite-slt, flite-kal, "
        "flite-awb, flite-rms, espeak-en-us",
    )
    render.add_argument(
        "--motion-file",
        type=Path,
        help="render these motion frames (JSON Lines, docs/api.md) instead of a generator's",
    )
    render.add_argument("--output", type=Path, required=True)
    render.add_argument("--fps", type=int, default=25)
    render.add_argument("--size", type=int, default=512)
    render.add_argument("--seed", type=int, default=0)
    add_motion_arguments(render, DEFAULT_MOTION)
    render.add_argument("--backend", choices=("onnxruntime", "torch"), default="onnxruntime")
    render.add_argument("--device", choices=("cpu", "cuda", "tensorrt"), default="cpu")
    render.add_argument("--quiet", action="store_true", help="no progress bar")
    render.set_defaults(func=cmd_render)


def register_export(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    export = sub.add_parser(
        "export", parents=[common], help="export the torch models to ONNX (needs torch)"
    )
    export.add_argument("--out", type=Path, default=MODELS_DIR)
    export.add_argument("--size", type=int, default=512)
    export.set_defaults(func=cmd_export)


def _print_warnings(avatar: Avatar) -> None:
    for warning in avatar.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def cmd_prepare(args: argparse.Namespace) -> int:
    from engines.avatar import prepare_avatar
    from engines.rig import rig_for_avatar

    t0 = time.perf_counter()
    cache = cache_dir(args)
    avatar = prepare_avatar(args.image, size=args.size, cache_dir=cache)
    _print_warnings(avatar)
    rig_for_avatar(avatar.avatar_id, avatar.image, avatar.landmarks, cache)
    folder = cache / "avatars" / avatar.avatar_id
    print(
        f"avatar {avatar.avatar_id} ({args.size}x{args.size}, 478 landmarks) cached in {folder} "
        f"[{time.perf_counter() - t0:.2f} s]"
    )
    return 0


def _audio_duration(path: Path) -> float | None:
    import av

    try:
        with av.open(str(path)) as container:
            if container.duration:
                return float(container.duration) / 1_000_000
    except (av.FFmpegError, OSError):
        return None
    return None


def ensure_renderer(size: int, cache: Path) -> None:
    """Export the renderer graphs for ``size`` into the cache unless they are there (sizes
    other than the shipped 512; needs torch)."""
    from engines.renderer_models import RendererNotExported, renderer_model_for_size

    try:
        renderer_model_for_size(size, cache)
    except RendererNotExported as missing:
        try:
            from export.onnx_export import export_renderers
        except ImportError:
            raise CliError(str(missing)) from None
        export_renderers(missing.folder, size)


def cmd_render(args: argparse.Namespace) -> int:
    from engines.heap import keep_freed_memory
    from engines.pipeline import render_file

    keep_freed_memory()
    if not 1 <= args.fps <= 60:
        raise CliError("--fps must be between 1 and 60")
    if args.text is not None:
        return _render_text(args)
    if args.voice is not None:
        raise CliError("--voice goes with --text")
    if args.motion_file is not None:
        return _render_motion_file(args)
    audio = Path(args.audio) if args.audio is not None else DEFAULT_SPEECH
    if not audio.is_file():
        raise CliError(f"audio file not found: {audio}")
    check_audio(audio)  # before any avatar work: a bad file must change nothing
    generator = make_generator(args)
    ensure_renderer(args.size, cache_dir(args))
    options = _options(args)
    with _progress(_audio_duration(audio), args.quiet) as progress:
        options = dataclasses.replace(options, progress=progress)
        result = render_file(args.image, audio, args.output, generator, options)
    _report(args.output, result)
    return 0


def _render_text(args: argparse.Namespace) -> int:
    """--text: speak it with a TTS voice into a WAV, then render that like --audio."""
    import tempfile

    from engines import tts

    if args.audio is not None or args.motion_file is not None:
        raise CliError("--text is the speech: give it instead of --audio or --motion-file")
    try:
        text, voice = tts.check(args.text, args.voice)
    except tts.TtsError as exc:
        raise CliError(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="emote-text-") as tmp:
        wav = Path(tmp) / "speech.wav"
        try:
            seconds = tts.to_wav(text, voice, wav)
        except tts.TtsError as exc:
            raise CliError(str(exc)) from None
        if not args.quiet:
            print(f"{voice}: {seconds:.1f} s of speech", file=sys.stderr)
        args.text, args.audio = None, wav
        return cmd_render(args)


def _render_motion_file(args: argparse.Namespace) -> int:
    from contracts.motion_file import MotionFileError, read_motion_file
    from contracts.style import NEUTRAL
    from engines.motion_generators import DEFAULT_MOTION
    from engines.pipeline import render_motion_file

    chosen = args.motion != DEFAULT_MOTION or args.steps is not None or args.motion_models
    if chosen or args.style != NEUTRAL:
        raise CliError(
            "--motion-file renders the motion it holds; --motion, --steps, --motion-models "
            "and --style choose a generator instead: give one or the other"
        )
    # Everything is read and checked before any avatar work: a bad file changes nothing.
    try:
        track = read_motion_file(args.motion_file)
    except MotionFileError as exc:
        raise CliError(str(exc)) from None
    if track.ignored:
        print(
            f"warning: {args.motion_file.name}: ignored {len(track.ignored)} ARKit blendshape(s) "
            f"the motion frame does not carry: {', '.join(track.ignored)}",
            file=sys.stderr,
        )
    audio = Path(args.audio) if args.audio is not None else None
    if audio is not None:
        if not audio.is_file():
            raise CliError(f"audio file not found: {audio}")
        check_audio(audio)
    ensure_renderer(args.size, cache_dir(args))
    options = _options(args)
    with _progress(track.seconds, args.quiet) as progress:
        options = dataclasses.replace(options, progress=progress)
        result = render_motion_file(args.image, track.frames, args.output, audio, options)
    _report(args.output, result)
    return 0


def _options(args: argparse.Namespace) -> RenderOptions:
    """The render options of ``emote render``'s arguments (the torch backend built here)."""
    from engines.pipeline import RenderOptions

    return RenderOptions(
        size=args.size,
        fps=args.fps,
        cache_dir=cache_dir(args),
        backend=args.backend,
        device=args.device,
        engine=_torch_renderer(args.device) if args.backend == "torch" else None,
        on_avatar=_print_warnings,
    )


@contextlib.contextmanager
def _progress(seconds: float | None, quiet: bool) -> Iterator[Callable[[float], None]]:
    """A progress bar over ``seconds`` of output; yields its update function."""
    from tqdm import tqdm

    with tqdm(
        total=round(seconds, 2) if seconds else None,
        unit="s",
        desc="render",
        disable=quiet,
        bar_format="{l_bar}{bar}| {n:.1f}/{total_fmt} s audio [{elapsed}<{remaining}]",
    ) as bar:

        def progress(done: float) -> None:
            bar.update(done - bar.n)

        yield progress


def _report(output: Path, result: RenderResult) -> None:
    per_frame = result.stages.per_frame(result.frames)
    stages = ", ".join(f"{k.removesuffix('_ms')} {v:.1f}" for k, v in per_frame.items())
    print(
        f"wrote {output}: {result.frames} frames, {result.audio_seconds:.2f} s of audio in "
        f"{result.wall_seconds:.2f} s (real-time factor {result.realtime_factor:.2f}; "
        f"per frame ms: {stages})"
    )


def _torch_renderer(device: str) -> Engine:
    from engines.renderer_models import renderer_name

    try:
        from export.torch_engines import create_torch_engine
    except ImportError as exc:
        raise CliError("the torch backend needs the 'train' extra (torch)") from exc
    return create_torch_engine(renderer_name("torch", device), device)


def cmd_export(args: argparse.Namespace) -> int:
    try:
        from export.onnx_export import main as export_main
    except ImportError as exc:
        raise CliError("`emote export` needs torch: pip install '.[train]'") from exc
    export_main(["--out", str(args.out), "--size", str(args.size)])
    return 0
