"""`emote eval`: compare motion generators (dsp, learned teacher, learned student).

Three kinds of measurement, all written to one JSON and summarised as one table:

* **Motion space, held-out voices** (the corpus "val" split: whole TTS voices never
  trained on): the generated mouth against the coarticulated targets made from the exact
  phone timings: mouth blendshape error, jawOpen correlation, viseme accuracy (each frame's
  mouth matched to the nearest viseme prototype of training/visemes.py, compared with the
  target's nearest prototype).
* **Motion space, real speech** (../shared/assets/speech, never trained on): the same
  against targets made from the reference phone alignments.
* **Rendered frames, real speech**: each clip (padded with its own room tone) is rendered
  with the bundled portrait and tracked with FaceMesh: p/b/m closure (rate, and depth: the
  lowest opening in each p/b/m as a fraction of the clip's closed-to-open range), open-vowel
  to p/b/m opening contrast, rounding (mouth width at spread vowels over rounded ones),
  viseme accuracy on pixels (how often a phone of one class is told apart from a phone of
  the other class by the tracked opening or width: open vowels vs p/b/m, open vowels vs
  close vowels, spread vs rounded), lag against the speech envelope, mouth motion in
  pauses (std of the opening in silences >= 300 ms over its std in speech), head motion (std
  of the nose tip in pixels) and blinks per minute.
* **Rendered frames, singing and rap** (../shared/assets/singing: ``sing_*`` over
  accompaniment, ``rap_*`` fast speech, no phone alignments; training/evaluate_songs.py
  defines each number): mouth range, correlation and lag with the voice-band envelope,
  mouth open on held notes and jaw quiver on them (singing), syllable nuclei met by a mouth
  peak, head motion and blinks per minute.

Seeds: every real clip (speech, styles, onsets, songs) is generated with each of
``sample_seeds`` seeds (0, 1, ...; a seed draws the sampling noise, the head, the blinks) and
every number is the mean over clips and seeds; each section also keeps ``spread``: per
number, the lowest and highest of the per-seed values. One seed's table is not a
measurement of a sampled model: on sing_multitalk3 alone a retrained learned model's
envelope correlation went -0.19 / -0.17 / +0.51 over seeds 0-2 (docs/benchmarks.md, "Teacher vs
student ..."). The held-out voices (40 utterances) use seed 0.

Also, per generator: smoothness at hop boundaries (mean frame-to-frame change across hop
boundaries over the mean within hops: 1.0 = seamless) and the variety of head motion
across seeds on the same audio (mean pairwise RMS distance between head-pose tracks,
in radians).
"""

from __future__ import annotations

import functools
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from contracts import motion_frame
from contracts.clock import FPS, SAMPLE_RATE
from contracts.phones import Phone
from contracts.style import Style
from engines.motion_stream import MotionGenerator, MotionStream

if TYPE_CHECKING:
    from measure.facemesh import FaceTrack
    from training.evaluate_onsets import Burst

MOUTH = slice(0, 16)  # jawOpen .. mouthLowerDownRight: the lip-sync blendshapes
HOP = 2
CLOSED = frozenset({"P", "B", "M"})
OPEN = frozenset({"AA", "AE", "AH", "AO", "AW", "AY"})
CLOSE_FRONT = frozenset({"IY", "IH", "EY"})
SPREAD = frozenset({"IY", "IH", "EY", "EH"})
ROUNDED = frozenset({"UW", "UH", "OW", "OY", "W"})

GeneratorFactory = Callable[[int], MotionGenerator]


@dataclass
class EvalConfig:
    generators: dict[str, GeneratorFactory]
    corpus: Path | None = None
    speech_dir: Path | None = None
    songs_dir: Path | None = None  # sing_*.wav, rap_*.wav; rendered only (needs render)
    styles: bool = True  # render the first speech clip in every speaking style
    image: Path | None = None
    max_val_utterances: int = 40
    seeds: int = 4  # for head-motion variety
    sample_seeds: int = 1  # seeds 0..n-1 for every real clip (module docstring)
    render: bool = True
    cache_dir: Path | None = None
    progress: bool = True
    results: dict = field(default_factory=dict)


def run_generator(generator: MotionGenerator, audio: np.ndarray) -> np.ndarray:
    """All frames of ``audio`` through the live chunked path (20 ms chunks, hops of 2)."""
    stream = MotionStream(generator, hop_frames=HOP, ring_seconds=4.0)
    frames: list[np.ndarray] = []
    for start in range(0, len(audio), 320):
        frames.extend(f for _, f in stream.push(audio[start : start + 320]))
    frames.extend(f for _, f in stream.flush())
    return np.stack(frames).astype(np.float32)


# ---- motion-space metrics -------------------------------------------------------------


def viseme_prototypes() -> np.ndarray:
    """(n_visemes, 16) the mouth blendshapes of each viseme's target (training/visemes.py)."""
    from training.visemes import VISEME_NAMES, phones_to_motion

    protos = []
    for name in VISEME_NAMES:
        label = _representative_phone(name)
        phones = [Phone(label, 0.0, 1.0)] if label != "SIL" else []
        protos.append(phones_to_motion(phones, 25)[12, MOUTH])
    return np.stack(protos)


def _representative_phone(viseme: str) -> str:
    from training.visemes import PHONE_TO_VISEME

    return next((p for p, v in PHONE_TO_VISEME.items() if v == viseme), "SIL")


def nearest_viseme(mouth: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    return np.argmin(((mouth[:, None, :] - prototypes[None]) ** 2).sum(-1), axis=1)


def motion_metrics(generated: np.ndarray, target: np.ndarray, prototypes: np.ndarray) -> dict:
    n = min(len(generated), len(target))
    g, t = generated[:n, MOUTH], target[:n, MOUTH]
    speech = t.max(axis=1) > 0.08  # frames where the target mouth is doing something
    jaw = motion_frame.INDEX["jawOpen"]
    corr = float(np.corrcoef(generated[:n, jaw], target[:n, jaw])[0, 1])
    match = nearest_viseme(g, prototypes) == nearest_viseme(t, prototypes)
    return {
        "mouth_mae": float(np.abs(g - t).mean()),
        "jaw_corr": corr if np.isfinite(corr) else 0.0,
        "viseme_accuracy": float(match[speech].mean()) if speech.any() else float("nan"),
    }


def hop_smoothness(frames: np.ndarray, hop: int = HOP) -> float:
    """Mean |change| across hop boundaries / mean |change| inside hops (1.0 = seamless)."""
    step = np.abs(np.diff(frames[:, : motion_frame.NUM_BLENDSHAPES], axis=0)).mean(axis=1)
    boundary = (np.arange(1, len(frames)) % hop) == 0
    inside = step[~boundary].mean()
    return float(step[boundary].mean() / max(inside, 1e-9))


def _generate(factory: GeneratorFactory, audio: np.ndarray, seed: int) -> np.ndarray:
    return run_generator(factory(seed), audio)


def head_variety(factory: GeneratorFactory, audio: np.ndarray, seeds: int) -> float:
    """Mean pairwise RMS distance (radians) between head rotation tracks of several seeds."""
    tracks = [
        run_generator(factory(seed), audio)[:, motion_frame.HEAD_SLICE][:, :3]
        for seed in range(seeds)
    ]
    dists = [float(np.sqrt(((a - b) ** 2).mean())) for a, b in itertools.combinations(tracks, 2)]
    return float(np.mean(dists)) if dists else 0.0


# ---- rendered-frame metrics -----------------------------------------------------------


def _auc(high: list[float], low: list[float]) -> float:
    """P(a phone of the 'high' class measures higher than one of the 'low' class)."""
    if not high or not low:
        return float("nan")
    a, b = np.asarray(high)[:, None], np.asarray(low)[None, :]
    return float((a > b).mean() + 0.5 * (a == b).mean())


def rendered_metrics(track: FaceTrack, audio: np.ndarray, phones: list) -> dict:
    """FaceMesh measurements of one rendered clip against its reference phones
    (contracts.phones.Phone: label, start, end)."""
    from measure.lipsync import fill_nan, lipsync_report, phone_frames
    from training.evaluate_songs import face_motion

    report = lipsync_report(track, audio, phones)
    n = len(track.mouth)
    mouth, width = fill_nan(track.mouth), fill_nan(track.width)
    lo, hi = np.percentile(mouth, 5), np.percentile(mouth, 95)

    def mean_of(values: np.ndarray, labels: frozenset[str]) -> list[float]:
        return [float(values[phone_frames(p, n)].mean()) for p in phones if p.label in labels]

    bilabials = [p for p in phones if p.label in CLOSED and p.duration >= 0.03]
    depth = [float((mouth[phone_frames(p, n)].min() - lo) / max(hi - lo, 1e-9)) for p in bilabials]
    aucs = {
        "open_vs_pbm": _auc(mean_of(mouth, OPEN), mean_of(mouth, CLOSED)),
        "open_vs_close_front": _auc(mean_of(mouth, OPEN), mean_of(mouth, CLOSE_FRONT)),
        "spread_vs_rounded": _auc(mean_of(width, SPREAD), mean_of(width, ROUNDED)),
    }
    spread, rounded = mean_of(width, SPREAD), mean_of(width, ROUNDED)
    return {
        "pbm_closure": report.bilabial_closure,
        "pbm_count": report.bilabials,
        "pbm_depth": float(np.mean(depth)) if depth else float("nan"),
        "vowel_to_pbm": report.vowel_to_bilabial,
        "rounding_ratio": float(np.mean(spread) / max(float(np.mean(rounded)), 1e-9))
        if spread and rounded
        else float("nan"),
        "viseme_auc": aucs,
        "viseme_accuracy": float(np.nanmean(list(aucs.values()))),
        "lag_ms": report.lag_ms,
        "envelope_corr": report.correlation,
        "silence_motion": report.silence_to_speech_std,
        "tracked": report.tracked_fraction,
    } | face_motion(track)


# ---- the evaluation -------------------------------------------------------------------


def _number_keys(row: dict) -> list[str]:
    """The keys of a row's numbers (its seed is a label, not a number to average)."""
    return [k for k, v in row.items() if isinstance(v, int | float) and k != "seed"]


def _mean_dicts(items: list[dict]) -> dict:
    return {k: float(np.nanmean([it[k] for it in items])) for k in _number_keys(items[0])}


def seed_spread(per_seed: list[dict]) -> dict[str, list[float]]:
    """{number: [lowest, highest]} over the per-seed values of every number the dicts share
    (NaN where a seed had none)."""
    if not per_seed:
        return {}
    spread = {}
    for key in _number_keys(per_seed[0]):
        values = np.array([d.get(key, np.nan) for d in per_seed], np.float64)
        finite = values[np.isfinite(values)]
        spread[key] = [float(finite.min()), float(finite.max())] if len(finite) else [np.nan] * 2
    return spread


def _real_speech(speech_dir: Path) -> list[tuple[str, np.ndarray, list, list]]:
    """(name, audio, phones, words) of every clip with a reference alignment."""
    from contracts.phones import load_phones
    from engines.audio_io import decode_audio
    from training.evaluate_onsets import read_words

    clips = []
    for phones_path in sorted(speech_dir.glob("*.phones.json")):
        wav = phones_path.with_name(phones_path.name.removesuffix(".phones.json") + ".wav")
        clips.append(
            (wav.stem, decode_audio(wav), load_phones(phones_path), read_words(phones_path))
        )
    return clips


def _to_training_phones(phones: list) -> list[Phone]:
    from training.utterance import ARPABET

    out = []
    for p in phones:
        label = p.label.upper().rstrip("012")
        label = label if label in ARPABET else "SIL"
        if p.duration > 0:
            out.append(Phone(label, p.start, p.end))
    return out


def evaluate(config: EvalConfig) -> dict:
    from tqdm import tqdm

    from training.visemes import phones_to_motion

    t0 = time.perf_counter()
    prototypes = viseme_prototypes()
    results: dict[str, dict] = {name: {} for name in config.generators}

    if config.corpus is not None:
        from training.corpus_format import iter_examples

        examples = list(
            itertools.islice(iter_examples(config.corpus, "val"), config.max_val_utterances)
        )
        for name, factory in config.generators.items():
            per = [
                motion_metrics(run_generator(factory(0), ex.audio), ex.motion, prototypes)
                for ex in tqdm(examples, desc=f"val {name}", disable=not config.progress)
            ]
            results[name]["heldout_voices"] = _mean_dicts(per) | {"utterances": len(per)}

    from training.evaluate_noise import noise_metrics

    for name, factory in config.generators.items():
        results[name]["noise"] = noise_metrics(
            functools.partial(_generate, factory), config.sample_seeds
        )

    renderer = None
    if config.render and (config.speech_dir is not None or config.songs_dir is not None):
        renderer = _Renderer(config.image, config.cache_dir)

    if config.speech_dir is not None:
        from measure.lipsync import pad_with_room_tone
        from training.evaluate_onsets import burst_program

        speech = _real_speech(config.speech_dir)
        clips = [(n, *pad_with_room_tone(a, p)) for n, a, p, _ in speech]
        bursts = burst_program([(a, words) for _, a, _, words in speech])
        for name, factory in config.generators.items():
            motion_rows, render_rows, smooth = [], [], []
            motion_seeds, render_seeds = [], []
            for seed in range(config.sample_seeds):
                motion_seed, render_seed = [], []
                for clip, audio, phones in tqdm(
                    clips, desc=f"speech {name} seed {seed}", disable=not config.progress
                ):
                    frames = run_generator(factory(seed), audio)
                    target = phones_to_motion(_to_training_phones(phones), len(frames))
                    row = motion_metrics(frames, target, prototypes) | {"clip": clip, "seed": seed}
                    motion_seed.append(row)
                    smooth.append(hop_smoothness(frames))
                    if renderer is not None:
                        track = renderer.track(frames)
                        rendered = rendered_metrics(track, audio, phones)
                        render_seed.append(rendered | {"clip": clip, "seed": seed})
                motion_rows += motion_seed
                render_rows += render_seed
                motion_seeds.append(_mean_dicts(motion_seed))
                if render_seed:
                    render_seeds.append(_pool_rendered(render_seed))
            results[name]["real_speech_motion"] = _mean_dicts(motion_rows)
            spread = results[name].setdefault("spread", {})
            spread["real_speech_motion"] = seed_spread(motion_seeds)
            results[name]["hop_smoothness"] = float(np.mean(smooth))
            results[name]["head_variety_rad"] = head_variety(factory, clips[0][1], config.seeds)
            if render_rows:
                results[name]["rendered"] = _pool_rendered(render_rows)
                results[name]["rendered_per_clip"] = render_rows
                spread["rendered"] = seed_spread(render_seeds)
            if renderer is not None and config.styles:
                per_seed = [
                    _evaluate_styles(factory, clips[0][1], renderer, seed)
                    for seed in range(config.sample_seeds)
                ]
                results[name]["styles"] = per_seed[0] | {
                    "reads": float(np.mean([r["reads"] for r in per_seed])),
                    "reads_per_seed": [r["reads"] for r in per_seed],
                }
                spread["styles"] = seed_spread([{"reads": r["reads"]} for r in per_seed])
            if renderer is not None:
                per_seed = [
                    _evaluate_onsets(factory, bursts, renderer, seed)
                    for seed in range(config.sample_seeds)
                ]
                results[name]["onsets"] = _mean_dicts(per_seed)
                spread["onsets"] = seed_spread(per_seed)

    if config.songs_dir is not None and renderer is not None:
        _evaluate_songs(config, renderer, results)
    if renderer is not None:
        renderer.close()
    results["_meta"] = {"wall_seconds": round(time.perf_counter() - t0, 1)}
    return results


def _evaluate_onsets(
    factory: GeneratorFactory,
    program: tuple[np.ndarray, list[Burst], list[tuple[float, float]]],
    renderer: _Renderer,
    seed: int = 0,
) -> dict:
    """Speech bursts after 1 s pauses (training/evaluate_onsets.py: ``program`` is
    burst_program's); ``deterministic``: the same program generated twice gives the same
    frames."""
    from training.evaluate_onsets import onset_metrics

    audio, bursts, pauses = program
    frames = run_generator(factory(seed), audio)
    again = run_generator(factory(seed), audio)
    metrics = onset_metrics(renderer.track(frames), bursts, pauses)
    return metrics | {"deterministic": float(np.array_equal(frames, again))}


def _evaluate_styles(
    factory: GeneratorFactory, audio: np.ndarray, renderer: _Renderer, seed: int = 0
) -> dict:
    """The first speech clip in every style (training/evaluate_styles.py)."""
    from training.evaluate_styles import evaluate_styles

    def generate(style: Style) -> np.ndarray:
        generator = factory(seed)
        generator.set_style(style)
        return run_generator(generator, audio)

    return evaluate_styles(generate, renderer.track)


def _evaluate_songs(config: EvalConfig, renderer: _Renderer, results: dict) -> None:
    """Render every singing and rap clip per generator and seed and measure it
    (training/evaluate_songs.py): ``songs`` and ``rap`` are the means over the ``sing_*``
    and the ``rap_*`` clips and the seeds, ``songs_per_clip`` every clip's row."""
    from tqdm import tqdm

    from training.evaluate_songs import song_clips, song_metrics

    assert config.songs_dir is not None
    clips = song_clips(config.songs_dir)
    if not clips:
        return
    for name, factory in config.generators.items():
        rows = []
        for seed in range(config.sample_seeds):
            for clip in tqdm(clips, desc=f"songs {name} seed {seed}", disable=not config.progress):
                track = renderer.track(run_generator(factory(seed), clip.audio))
                metrics = song_metrics(track, clip.audio, clip.kind)
                rows.append({"clip": clip.name, "kind": clip.kind, "seed": seed} | metrics)
        spread = results[name].setdefault("spread", {})
        for kind, section in (("sing", "songs"), ("rap", "rap")):
            of_kind = [r for r in rows if r["kind"] == kind]
            if of_kind:
                results[name][section] = _mean_dicts(of_kind) | {"clips": len(of_kind)}
                per_seed = [
                    _mean_dicts([r for r in of_kind if r["seed"] == seed])
                    for seed in range(config.sample_seeds)
                ]
                spread[section] = seed_spread(per_seed)
        results[name]["songs_per_clip"] = rows


def _pool_rendered(rows: list[dict]) -> dict:
    pooled = _mean_dicts(rows)
    weights = [r["pbm_count"] for r in rows]
    pooled["pbm_closure"] = float(np.average([r["pbm_closure"] for r in rows], weights=weights))
    pooled["pbm_count"] = int(sum(weights))
    for key in rows[0]["viseme_auc"]:
        pooled[f"auc_{key}"] = float(np.nanmean([r["viseme_auc"][key] for r in rows]))
    # The mean of the clips' pause ratios is carried by one event (a jaw held open through a
    # clip's room tone reads 2-4.5 on its own): the median and the worst clip say which.
    pauses = [r["silence_motion"] for r in rows]
    pooled["silence_motion_median"] = float(np.median(pauses))
    pooled["silence_motion_worst"] = float(np.max(pauses))
    return pooled


class _Renderer:
    """The bundled portrait rendered with onnxruntime, tracked with FaceMesh (static mode:
    video mode smooths landmarks over time and would add lag)."""

    def __init__(self, image: Path | None, cache_dir: Path | None) -> None:
        from contracts.paths import DEFAULT_PORTRAIT
        from engines.avatar import default_cache_dir, prepare_avatar
        from engines.frame_renderer import FrameRenderer
        from engines.renderer_models import create_renderer, renderer_model_for_size
        from engines.rig import rig_for_avatar
        from measure.facemesh import FaceTracker

        image = image or DEFAULT_PORTRAIT
        cache = cache_dir or default_cache_dir()
        avatar = prepare_avatar(image, size=512, cache_dir=cache)
        rig = rig_for_avatar(avatar.avatar_id, avatar.image, avatar.landmarks, cache)
        engine = create_renderer(models_dir=renderer_model_for_size(512, cache))
        self._frames = FrameRenderer(engine, rig)
        self._tracker = FaceTracker(static=True)

    def track(self, motion: np.ndarray) -> FaceTrack:
        rgb = [self._frames.render(m[None])[0] for m in motion]
        return self._tracker.track(rgb)

    def close(self) -> None:
        self._tracker.close()


# ---- the table --------------------------------------------------------------------------

ROWS: tuple[tuple[str, str, str, str], ...] = (
    # (section, key, label, better)
    ("rendered", "pbm_closure", "p/b/m closed (rendered, FaceMesh)", "higher"),
    ("rendered", "pbm_depth", "p/b/m closure depth (0 = fully closed)", "lower"),
    ("rendered", "vowel_to_pbm", "open vowel / p/b/m opening", "higher"),
    ("rendered", "rounding_ratio", "spread / rounded mouth width", "higher"),
    ("rendered", "viseme_accuracy", "viseme accuracy on pixels (pairwise)", "higher"),
    ("rendered", "lag_ms", "lag vs speech envelope, ms (- = lips lead)", "closer to 0"),
    ("rendered", "silence_motion", "mouth std in pauses / in speech", "lower"),
    ("rendered", "silence_motion_median", "the same, median clip", "lower"),
    ("rendered", "silence_motion_worst", "the same, worst clip", "lower"),
    ("rendered", "head_px_std", "head motion, nose-tip std px (real: 8-25)", "in 8-25"),
    ("rendered", "blinks_per_min", "blinks per minute (speech)", "in 12-24"),
    ("noise", "steady_jaw_max", "jawOpen in steady noise, -45 dBFS (largest)", "lower"),
    ("noise", "beating_jaw_max", "jawOpen in noise beating at 4 Hz, -30 dBFS (largest)", "lower"),
    ("real_speech_motion", "viseme_accuracy", "viseme accuracy, motion (real speech)", "higher"),
    ("real_speech_motion", "mouth_mae", "mouth blendshape error (real speech)", "lower"),
    ("real_speech_motion", "jaw_corr", "jawOpen correlation (real speech)", "higher"),
    ("heldout_voices", "viseme_accuracy", "viseme accuracy, motion (held-out voices)", "higher"),
    ("heldout_voices", "mouth_mae", "mouth blendshape error (held-out voices)", "lower"),
    ("", "hop_smoothness", "hop boundary / in-hop change (1 = seamless)", "closer to 1"),
    ("", "head_variety_rad", "head motion variety across seeds, rad", "higher"),
    ("onsets", "onset_in_window", "onsets after 1 s pauses within -60..+40 ms", "higher"),
    ("onsets", "onset_median_ms", "onset: median mouth onset - first vowel, ms", "in -60..40"),
    ("onsets", "onset_missed", "onsets missed (no opening within 400 ms)", "lower"),
    ("onsets", "bilabials_shut", "p/b/m before the first vowel kept shut", "higher"),
    ("onsets", "pause_open", "mouth open in the 1 s pauses (share of frames)", "lower"),
    ("styles", "reads", "speaking styles that read on FaceMesh (of 4)", "higher"),
    ("songs", "mouth_range", "singing: mouth range p95-p5 (face heights)", "higher"),
    ("songs", "envelope_corr", "singing: corr with voice-band envelope", "higher"),
    ("songs", "envelope_lag_ms", "singing: lag vs voice-band envelope, ms", "closer to 0"),
    ("songs", "held_open", "singing: mouth open on held notes", "higher"),
    ("songs", "held_mean_opening", "singing: mean opening on held notes (face h.)", "higher"),
    ("songs", "jaw_quiver", "singing: jaw quiver on held notes / range", "lower"),
    ("songs", "syllable_peaks", "singing: syllables met by a mouth peak", "higher"),
    ("songs", "head_px_std", "singing: head motion, nose-tip std px", "in 8-25"),
    ("songs", "blinks_per_min", "singing: blinks per minute", "in 12-24"),
    ("rap", "mouth_range", "rap: mouth range p95-p5 (face heights)", "higher"),
    ("rap", "envelope_corr", "rap: corr with voice-band envelope", "higher"),
    ("rap", "envelope_lag_ms", "rap: lag vs voice-band envelope, ms", "closer to 0"),
    ("rap", "syllable_peaks", "rap: syllables met by a mouth peak", "higher"),
    ("rap", "head_px_std", "rap: head motion, nose-tip std px", "in 8-25"),
    ("rap", "blinks_per_min", "rap: blinks per minute", "in 12-24"),
)


def markdown_table(results: dict) -> str:
    """One row per ROWS entry, one column per generator: the mean, then (lowest..highest)
    over the sample seeds where they differ."""
    names = [n for n in results if not n.startswith("_")]
    lines = [
        "| metric | better | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for section, key, label, better in ROWS:
        cells = []
        for name in names:
            source = results[name].get(section, {}) if section else results[name]
            value = source.get(key) if isinstance(source, dict) else None
            spread = results[name].get("spread", {}).get(section, {}).get(key)
            cell = "–" if value is None else f"{value:.3g}"
            if value is not None and spread is not None and spread[0] != spread[1]:
                cell += f" ({spread[0]:.3g}..{spread[1]:.3g})"
            cells.append(cell)
        lines.append(f"| {label} | {better} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=float))


__all__ = ["FPS", "SAMPLE_RATE", "EvalConfig", "evaluate", "markdown_table", "write_results"]
