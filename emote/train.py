"""``emote train`` and ``emote eval``: the learned motion model (training/)."""

from __future__ import annotations

import argparse
import functools
import json
import time
from collections.abc import Callable
from pathlib import Path

from contracts.paths import DEFAULT_PORTRAIT, MODELS_DIR, singing_dir, speech_dir
from emote.errors import CliError
from emote.options import cache_dir
from engines.motion_stream import MotionGenerator

RUNS = Path("runs")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
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
    train.add_argument("--out", type=Path, default=MODELS_DIR, help="ONNX graphs")
    train.add_argument("--hours", type=float, default=None, help="corpus size (default 3)")
    train.add_argument(
        "--inner-pauses",
        type=float,
        default=None,
        help="share of speech with an inner silence stretched to 0.3-1.2 s (default 0.5)",
    )
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
    evaluate.add_argument("--speech", type=Path, default=speech_dir())
    evaluate.add_argument(
        "--songs",
        type=Path,
        default=singing_dir(),
        help="singing and rap clips, rendered (default: ../shared/assets/singing if present)",
    )
    evaluate.add_argument("--no-songs", action="store_true", help="skip singing and rap")
    evaluate.add_argument(
        "--no-styles", action="store_true", help="skip rendering the speaking styles"
    )
    evaluate.add_argument("--image", type=Path, default=DEFAULT_PORTRAIT)
    evaluate.add_argument("--seeds", type=int, default=4, help="seeds for head-motion variety")
    evaluate.add_argument(
        "--sample-seeds",
        type=int,
        default=3,
        help="seeds each real clip is generated with; numbers are their mean (default 3)",
    )
    evaluate.add_argument("--no-render", action="store_true", help="motion metrics only")
    evaluate.add_argument("--json", type=Path, help="write every number here")
    evaluate.add_argument("--quiet", action="store_true")
    evaluate.set_defaults(func=cmd_eval)


def _train_corpus(args: argparse.Namespace) -> None:
    from training.corpus import CorpusConfig, synthesize_corpus

    config = (
        CorpusConfig.tiny(args.corpus, args.seed)
        if args.tiny
        else CorpusConfig(out=args.corpus, seed=args.seed)
    )
    if args.hours is not None:
        config.hours = args.hours
    if args.inner_pauses is not None:
        if not 0.0 <= args.inner_pauses <= 1.0:
            raise CliError("--inner-pauses is a share: 0..1")
        config.inner_pause_probability = args.inner_pauses
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
    from training.export_motion import ExportConfig, export_motion

    report = export_motion(
        ExportConfig(args.work / "teacher.pt", args.work / "student.pt", args.out, seed=args.seed)
    )
    print(json.dumps(report, indent=1))


STAGES: dict[str, list[Callable[[argparse.Namespace], None]]] = {
    "corpus": [_train_corpus],
    "teacher": [_train_teacher],
    "distill": [_train_distill],
    "export": [_train_export],
    "motion": [_train_teacher, _train_distill, _train_export],
    "all": [_train_corpus, _train_teacher, _train_distill, _train_export],
}


def cmd_train(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise CliError("`emote train` needs torch: pip install '.[train]'") from exc

    t0 = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    for stage in STAGES[args.stage]:
        if stage is not _train_corpus and not (args.corpus / "manifest.json").is_file():
            raise CliError(f"no corpus in {args.corpus}: run `emote train corpus` first")
        stage(args)
    print(f"emote train {args.stage}: done in {time.perf_counter() - t0:.0f} s")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from engines.motion_generators import make_generator
    from training.evaluate import EvalConfig, evaluate, markdown_table, write_results

    names = [n.strip() for n in args.motion.split(",") if n.strip()]
    generators: dict[str, Callable[[int], MotionGenerator]] = {}
    for name in names:
        steps = args.steps if name != "dsp" else None
        try:
            make_generator(name, 0, steps, args.motion_models)  # fail early
        except ValueError as exc:
            raise CliError(str(exc)) from exc
        generators[name] = functools.partial(
            make_generator, name, steps=steps, models_dir=args.motion_models
        )
    corpus = args.corpus if args.corpus and (args.corpus / "manifest.json").is_file() else None
    if args.corpus and corpus is None:
        raise CliError(f"no corpus in {args.corpus}")
    if not args.speech.is_dir():
        raise CliError(f"speech folder not found: {args.speech}")
    if args.sample_seeds < 1:
        raise CliError(f"--sample-seeds must be at least 1, got {args.sample_seeds}")
    songs = None if args.no_songs else args.songs
    if songs is not None and not songs.is_dir():
        raise CliError(f"songs folder not found: {songs}")
    config = EvalConfig(
        generators=generators,
        corpus=corpus,
        speech_dir=args.speech,
        songs_dir=songs,
        styles=not args.no_styles,
        image=args.image,
        render=not args.no_render,
        seeds=args.seeds,
        sample_seeds=args.sample_seeds,
        cache_dir=cache_dir(args),
        progress=not args.quiet,
    )
    results = evaluate(config)
    print(markdown_table(results))
    if args.json:
        write_results(results, args.json)
        print(f"wrote {args.json}")
    return 0
