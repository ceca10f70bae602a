"""The ``emote`` command line: prepare, render, export (and serve, bench: see docs)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_PORTRAIT = ASSETS / "portraits" / "mona_lisa.jpg"
DEFAULT_SPEECH = ASSETS / "speech" / "librivox_ss01_0870.wav"
# Real speech with reference phone alignments (evaluation only); a checkout's bundled copy
# of one clip when ../shared is not beside it.
_SHARED = ASSETS.parent.parent / "shared" / "assets" / "speech"
SHARED_SPEECH = _SHARED if _SHARED.is_dir() else ASSETS / "speech"


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 2, no traceback."""


def _quiet_native_logs() -> None:
    # mediapipe/TFLite print banners on stderr; keep the CLI's output readable.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _cache_dir(args: argparse.Namespace) -> Path:
    from engines.avatar import default_cache_dir

    return Path(args.cache_dir) if args.cache_dir else default_cache_dir()


def _prepare(args: argparse.Namespace):
    from engines.avatar import prepare_avatar

    avatar = prepare_avatar(args.image, size=args.size, cache_dir=_cache_dir(args))
    for warning in avatar.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return avatar


def cmd_prepare(args: argparse.Namespace) -> int:
    import time

    from engines.rig import rig_for_avatar

    t0 = time.perf_counter()
    avatar = _prepare(args)
    rig_for_avatar(avatar.avatar_id, avatar.image, avatar.landmarks, _cache_dir(args))
    cache = _cache_dir(args) / "avatars" / avatar.avatar_id
    print(
        f"avatar {avatar.avatar_id} ({args.size}x{args.size}, 478 landmarks) cached in {cache} "
        f"[{time.perf_counter() - t0:.2f} s]"
    )
    return 0


def _make_generator(args: argparse.Namespace):
    from engines.motion_generators import make_generator

    try:
        return make_generator(
            args.motion, seed=args.seed, steps=args.steps, models_dir=args.motion_models
        )
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def _add_motion_arguments(parser: argparse.ArgumentParser, default: str) -> None:
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


def _audio_duration(path: Path) -> float | None:
    import av

    try:
        with av.open(str(path)) as container:
            if container.duration:
                return container.duration / 1_000_000
    except (av.FFmpegError, OSError):
        return None
    return None


def _check_audio(path: Path) -> None:
    from engines.audio_io import iter_audio

    chunks = iter_audio(path)
    try:
        next(chunks, None)
    finally:
        chunks.close()


def cmd_render(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from engines.heap import keep_freed_memory
    from engines.offline import render_to_mp4
    from engines.renderer_models import create_renderer, renderer_model_for_size
    from engines.rig import rig_for_avatar

    keep_freed_memory()
    if not 1 <= args.fps <= 60:
        raise CliError("--fps must be between 1 and 60")
    audio = Path(args.audio)
    if not audio.is_file():
        raise CliError(f"audio file not found: {audio}")
    _check_audio(audio)  # before any avatar work: a bad file must change nothing
    generator = _make_generator(args)
    model_dir = renderer_model_for_size(args.size, _cache_dir(args))
    avatar = _prepare(args)
    rig = rig_for_avatar(avatar.avatar_id, avatar.image, avatar.landmarks, _cache_dir(args))
    engine = create_renderer(args.backend, args.device, models_dir=model_dir)
    duration = _audio_duration(audio)
    with tqdm(
        total=round(duration, 2) if duration else None,
        unit="s",
        desc="render",
        disable=args.quiet,
        bar_format="{l_bar}{bar}| {n:.1f}/{total_fmt} s audio [{elapsed}<{remaining}]",
    ) as bar:

        def progress(seconds: float) -> None:
            bar.update(seconds - bar.n)

        result = render_to_mp4(
            avatar, rig, audio, args.output, generator, engine, args.fps, progress
        )
    per_frame = result.stages.per_frame(result.frames)
    stages = ", ".join(f"{k.removesuffix('_ms')} {v:.1f}" for k, v in per_frame.items())
    print(
        f"wrote {args.output}: {result.frames} frames, {result.audio_seconds:.2f} s of audio in "
        f"{result.wall_seconds:.2f} s (real-time factor {result.realtime_factor:.2f}; "
        f"per frame ms: {stages})"
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from engines.heap import keep_freed_memory
    from stream_server.app import ServerConfig, create_app
    from stream_server.loopback import is_loopback, use_loopback_only

    if not Path(args.avatar).is_file():
        raise CliError(f"avatar image not found: {args.avatar}")
    _make_generator(args)  # a missing or broken motion model fails here, not per session
    config = ServerConfig(
        default_avatar=Path(args.avatar),
        cache_dir=_cache_dir(args),
        seed=args.seed,
        motion=args.motion,
        steps=args.steps,
        motion_models=args.motion_models,
    )
    if args.max_sessions is not None:
        if args.max_sessions < 1:
            raise CliError("--max-sessions must be at least 1")
        config.max_sessions = args.max_sessions
    if args.margin_ms is not None:
        if not 0.0 <= args.margin_ms <= 1000.0:
            raise CliError("--margin-ms must be between 0 and 1000")
        config.margin_ms = args.margin_ms
    if args.render_slots is not None:
        if args.render_slots < 1:
            raise CliError("--render-slots must be at least 1")
        config.render_slots = args.render_slots
    use_loopback_only(is_loopback(args.host))
    keep_freed_memory()  # the render processes set it for themselves
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("aioice").setLevel(logging.WARNING)
    print(
        f"emote: serving on http://{args.host}:{args.port} (max {config.max_sessions} sessions)",
        file=sys.stderr,
    )
    web.run_app(create_app(config), host=args.host, port=args.port, print=None, access_log=None)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    checkout = ASSETS.parent  # bench/ is not installed; the `emote` script finds it here
    if (checkout / "bench").is_dir() and str(checkout) not in sys.path:
        sys.path.append(str(checkout))
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


def cmd_export(args: argparse.Namespace) -> int:
    try:
        from export.onnx_export import main as export_main
    except ImportError as exc:
        raise CliError("`emote export` needs torch: pip install '.[train]'") from exc
    export_main(["--out", str(args.out), "--size", str(args.size)])
    return 0


RUNS = Path("runs")


def _train_corpus(args: argparse.Namespace) -> None:
    from training.corpus import CorpusConfig, synthesize_corpus

    config = (
        CorpusConfig.tiny(args.corpus, args.seed)
        if args.tiny
        else CorpusConfig(out=args.corpus, seed=args.seed)
    )
    if args.hours is not None:
        config.hours = args.hours
    config.progress = not args.quiet
    stats = synthesize_corpus(config)["stats"]
    print(
        f"corpus {args.corpus}: {stats['hours']:.2f} h in {stats['utterances']} utterances "
        f"[{stats['wall_seconds']:.0f} s]"
    )


def _train_teacher(args: argparse.Namespace) -> None:
    from training.export_motion import teacher_config
    from training.train_teacher import train_teacher

    config = teacher_config(args.corpus, args.work, args.tiny, args.seed, args.train_steps)
    config.progress = not args.quiet
    train_teacher(config)
    print(f"teacher checkpoint {config.out}")


def _train_distill(args: argparse.Namespace) -> None:
    from training.distill import distill
    from training.export_motion import distill_config

    config = distill_config(args.corpus, args.work, args.tiny, args.seed, args.distill_steps)
    config.progress = not args.quiet
    distill(config)
    print(f"student checkpoint {config.out}")


def _train_export(args: argparse.Namespace) -> None:
    import json

    from training.export_motion import ExportConfig, export_motion

    report = export_motion(
        ExportConfig(args.work / "teacher.pt", args.work / "student.pt", args.out, seed=args.seed)
    )
    print(json.dumps(report, indent=1))


def cmd_train(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise CliError("`emote train` needs torch: pip install '.[train]'") from exc
    import time

    t0 = time.perf_counter()
    stages = {
        "corpus": [_train_corpus],
        "teacher": [_train_teacher],
        "distill": [_train_distill],
        "export": [_train_export],
        "motion": [_train_teacher, _train_distill, _train_export],
        "all": [_train_corpus, _train_teacher, _train_distill, _train_export],
    }[args.stage]
    args.work.mkdir(parents=True, exist_ok=True)
    for stage in stages:
        if stage is not _train_corpus and not (args.corpus / "manifest.json").is_file():
            raise CliError(f"no corpus in {args.corpus}: run `emote train corpus` first")
        stage(args)
    print(f"emote train {args.stage}: done in {time.perf_counter() - t0:.0f} s")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from engines.motion_generators import make_generator
    from training.evaluate import EvalConfig, evaluate, markdown_table, write_results

    names = [n.strip() for n in args.motion.split(",") if n.strip()]
    generators = {}
    for name in names:
        steps = args.steps if name != "dsp" else None
        try:
            make_generator(name, 0, steps, args.motion_models)  # fail early
        except ValueError as exc:
            raise CliError(str(exc)) from exc
        generators[name] = lambda seed, n=name, k=steps: make_generator(
            n, seed, k, args.motion_models
        )
    corpus = args.corpus if args.corpus and (args.corpus / "manifest.json").is_file() else None
    if args.corpus and corpus is None:
        raise CliError(f"no corpus in {args.corpus}")
    if not args.speech.is_dir():
        raise CliError(f"speech folder not found: {args.speech}")
    config = EvalConfig(
        generators=generators,
        corpus=corpus,
        speech_dir=args.speech,
        image=args.image,
        render=not args.no_render,
        seeds=args.seeds,
        cache_dir=_cache_dir(args),
        progress=not args.quiet,
    )
    results = evaluate(config)
    print(markdown_table(results))
    if args.json:
        write_results(results, args.json)
        print(f"wrote {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from engines.motion_generators import DEFAULT_LIVE_MOTION, DEFAULT_MOTION

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
    render.add_argument("--audio", type=Path, default=DEFAULT_SPEECH)
    render.add_argument("--output", type=Path, required=True)
    render.add_argument("--fps", type=int, default=25)
    render.add_argument("--size", type=int, default=512)
    render.add_argument("--seed", type=int, default=0)
    _add_motion_arguments(render, DEFAULT_MOTION)
    render.add_argument("--backend", choices=("onnxruntime", "torch"), default="onnxruntime")
    render.add_argument("--device", choices=("cpu", "cuda", "tensorrt"), default="cpu")
    render.add_argument("--quiet", action="store_true", help="no progress bar")
    render.set_defaults(func=cmd_render)

    serve = sub.add_parser("serve", parents=[common], help="the live WebRTC avatar server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--avatar", type=Path, default=DEFAULT_PORTRAIT, help="default portrait")
    serve.add_argument(
        "--max-sessions",
        type=int,
        default=None,
        help="concurrent sessions (default: half the CPU cores, at least 1)",
    )
    serve.add_argument(
        "--margin-ms",
        type=float,
        default=None,
        help="compute margin added to each session's delay (default: 30 ms per session per "
        "CPU core at --max-sessions, e.g. 30 ms for 2 sessions on 2 cores, 60 ms for 4)",
    )
    serve.add_argument(
        "--render-slots",
        type=int,
        default=None,
        help="render processes shared by all sessions, earliest send time first "
        "(default: one per CPU core)",
    )
    serve.add_argument("--seed", type=int, default=0)
    _add_motion_arguments(serve, DEFAULT_LIVE_MOTION)
    serve.set_defaults(func=cmd_serve)

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

    train = sub.add_parser(
        "train",
        parents=[common],
        help="synthesize the corpus, train the teacher, distil the student, export (torch)",
    )
    train.add_argument(
        "stage",
        choices=("corpus", "teacher", "distill", "export", "motion", "all"),
        help="one stage; 'motion' = teacher+distill+export; 'all' = every stage",
    )
    train.add_argument("--tiny", action="store_true", help="seconds-long CI version")
    train.add_argument("--corpus", type=Path, default=RUNS / "corpus")
    train.add_argument("--work", type=Path, default=RUNS / "motion", help="checkpoints")
    train.add_argument("--out", type=Path, default=ASSETS / "models", help="ONNX graphs")
    train.add_argument("--hours", type=float, default=None, help="corpus size (default 3)")
    train.add_argument("--train-steps", type=int, default=None, help="teacher steps")
    train.add_argument("--distill-steps", type=int, default=None, help="student steps")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser(
        "eval", parents=[common], help="compare motion generators (lip sync, visemes, motion)"
    )
    evaluate.add_argument("--motion", default="dsp,teacher,learned", help="comma-separated")
    evaluate.add_argument("--steps", type=int, default=None, help="learned/teacher steps")
    evaluate.add_argument("--motion-models", type=Path, default=None, help="learned graphs")
    evaluate.add_argument("--corpus", type=Path, default=None, help="a corpus: its held-out voices")
    evaluate.add_argument("--speech", type=Path, default=SHARED_SPEECH)
    evaluate.add_argument("--image", type=Path, default=DEFAULT_PORTRAIT)
    evaluate.add_argument("--seeds", type=int, default=4, help="seeds for head-motion variety")
    evaluate.add_argument("--no-render", action="store_true", help="motion metrics only")
    evaluate.add_argument("--json", type=Path, help="write every number here")
    evaluate.add_argument("--quiet", action="store_true")
    evaluate.set_defaults(func=cmd_eval)

    export = sub.add_parser(
        "export", parents=[common], help="export the torch models to ONNX (needs torch)"
    )
    export.add_argument("--out", type=Path, default=ASSETS / "models")
    export.add_argument("--size", type=int, default=512)
    export.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    _quiet_native_logs()
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s"
    )
    from engines.audio_io import AudioError
    from engines.avatar import AvatarError
    from engines.engine import EngineError

    try:
        return int(args.func(args) or 0)
    except (CliError, AvatarError, AudioError, EngineError) as exc:
        print(f"emote: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("emote: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
