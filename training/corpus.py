"""Corpus synthesis: TTS voices -> utterances with exact phone timings -> augmented audio and
motion targets, written as shards with a manifest (training/corpus_format.py).

Everything is decided by the seed: the held-out voices, the sentence for each job, the
engine/voice/rate/pitch, the delivery (speech, held notes, song, rap), the
accompaniment, the speaking style, the augmentation chain and the motion style. Jobs
run in worker processes but their results are consumed in job order, so the corpus is the
same for a given seed and engine set whatever the scheduling. Whole voices are held out for
validation ("val" split), so validation measures generalisation to unseen speakers.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from contracts import motion_frame
from contracts.style import STYLES, Style, express
from training.corpus_format import frames_for, shard_name, write_manifest, write_shard
from training.utterance import SAMPLE_RATE

log = logging.getLogger(__name__)


@dataclass
class CorpusConfig:
    out: Path
    hours: float = 3.0
    seed: int = 0
    workers: int = 2
    val_voice_fraction: float = 0.12  # of each engine's voices, at least one where it has 2+
    augment_probability: float = 0.75
    # Deliveries (training/tts/pho.py): whole sung phrases (MBROLA voices), raps on a beat
    # grid (MBROLA; other engines rap as fast speech over a beat), and in speech, a few
    # vowels held like sung notes (MBROLA).
    # Songs run ~4x longer than a spoken sentence: 8% of jobs are a quarter of the hours.
    song_probability: float = 0.08
    rap_probability: float = 0.12
    rap_mbrola_share: float = 0.6
    held_probability: float = 0.15  # of MBROLA speech jobs
    # A band under the voice (training/music.py): most songs and raps, some speech.
    song_music_probability: float = 0.75
    rap_music_probability: float = 0.85
    speech_music_probability: float = 0.08
    # Speaking styles (contracts/style.py): the rest neutral, the others evenly, each at an
    # intensity drawn from style_intensity.
    styled_probability: float = 0.6
    style_intensity: tuple[float, float] = (0.3, 1.0)
    # Speech with one inner silence stretched to 0.3-1.2 s (training/pauses.py; measured on
    # two teacher seeds: docs/benchmarks.md, "Pauses between phrases in the corpus").
    inner_pause_probability: float = 0.5
    shard_seconds: float = 900.0
    engines: tuple[str, ...] = ()  # empty = every available engine
    max_voices_per_engine: int = 40
    progress: bool = True

    @staticmethod
    def tiny(out: Path, seed: int = 0) -> CorpusConfig:
        """A few sentences for CI: proves the pipeline, trains nothing useful."""
        return CorpusConfig(
            out=out,
            hours=90 / 3600,
            seed=seed,
            shard_seconds=30.0,
            song_probability=0.25,
            rap_probability=0.25,
        )


@dataclass(frozen=True)
class Job:
    index: int
    engine: str
    voice: str
    split: str
    text: str
    rate: float
    pitch: float
    delivery: str  # training.tts.base.DELIVERIES
    music: str  # "" or one of training.music.KINDS
    style: str  # contracts.style.STYLES
    intensity: float
    augment: bool
    seed: int
    inner_pause: float = 0.0  # the probability of a stretched inner silence (speech only)


@dataclass
class JobResult:
    job: Job
    audio: np.ndarray | None = None
    motion: np.ndarray | None = None
    visemes: np.ndarray | None = None
    augment: dict = field(default_factory=dict)
    pauses: dict = field(default_factory=dict)  # silence padded around it (training/pauses.py)
    error: str | None = None
    rate: float = 1.0  # what the voice was actually asked for (see run_job)
    pitch: float = 1.0


def _voices(config: CorpusConfig) -> dict[str, list[str]]:
    from training.tts import available_engines

    engines = available_engines()
    if config.engines:
        engines = [e for e in engines if e.name in config.engines]
        missing = set(config.engines) - {e.name for e in engines}
        if missing:
            raise RuntimeError(
                f"TTS engines not available: {sorted(missing)} (run scripts/install_tts.sh)"
            )
    if not engines:
        raise RuntimeError("no TTS engine is installed: run scripts/install_tts.sh")
    rng = np.random.default_rng(config.seed)
    voices: dict[str, list[str]] = {}
    for engine in sorted(engines, key=lambda e: e.name):
        names = sorted(engine.voices())
        if len(names) > config.max_voices_per_engine:
            names = sorted(rng.choice(names, config.max_voices_per_engine, replace=False))
        if names:
            voices[engine.name] = [str(n) for n in names]
    return voices


def split_voices(voices: dict[str, list[str]], fraction: float, seed: int) -> set[str]:
    """The held-out (validation) voices: a seeded share of each engine's voices."""
    rng = np.random.default_rng(seed + 1)
    held: set[str] = set()
    for _, names in sorted(voices.items()):
        if len(names) < 2:
            continue
        count = max(1, round(fraction * len(names)))
        held.update(str(v) for v in rng.choice(names, count, replace=False))
    return held


def plan_jobs(config: CorpusConfig, voices: dict[str, list[str]]) -> Iterator[Job]:
    """An endless, seeded stream of jobs; engines are drawn evenly, then a voice."""
    from training.sentences import sentences

    held = split_voices(voices, config.val_voice_fraction, config.seed)
    rng = np.random.default_rng(config.seed + 2)
    engines = sorted(voices)
    batch = 0
    index = 0
    while True:
        for text in sentences(config.seed * 1000 + batch, 200):
            delivery, engine = _delivery(config, engines, rng)
            voice = voices[engine][int(rng.integers(len(voices[engine])))]
            music_p = {
                "song": config.song_music_probability,
                "rap": config.rap_music_probability,
            }.get(delivery, config.speech_music_probability)
            kind = delivery if delivery in ("song", "rap") else "background"
            music = kind if rng.random() < music_p else ""
            rate = float(rng.uniform(0.8, 1.3))
            if delivery == "rap" and engine != "mbrola":
                rate = float(rng.uniform(*FAST_RATE))  # no beat grid: fast speech on a beat
            style = "neutral"
            if rng.random() < config.styled_probability:
                style = STYLES[1 + int(rng.integers(len(STYLES) - 1))]
            intensity = float(rng.uniform(*config.style_intensity))
            yield Job(
                index=index,
                engine=engine,
                voice=voice,
                split="val" if voice in held else "train",
                text=text,
                rate=rate,
                pitch=float(rng.uniform(0.85, 1.2)),
                delivery=delivery,
                music=music,
                style=style,
                intensity=round(intensity, 3),
                augment=bool(rng.random() < config.augment_probability),
                seed=int(rng.integers(2**31)),
                inner_pause=config.inner_pause_probability,
            )
            index += 1
        batch += 1


FAST_RATE = (1.3, 1.7)


def _delivery(
    config: CorpusConfig, engines: list[str], rng: np.random.Generator
) -> tuple[str, str]:
    """(delivery, engine) of a job: songs on MBROLA voices (the only engine whose timing can
    be re-written note by note), raps mostly there too, speech on any engine (evenly)."""
    r = rng.random()
    mbrola = "mbrola" in engines
    if mbrola and r < config.song_probability:
        return "song", "mbrola"
    if r < config.song_probability + config.rap_probability:
        if mbrola and rng.random() < config.rap_mbrola_share:
            return "rap", "mbrola"
        return "rap", engines[int(rng.integers(len(engines)))]
    engine = engines[int(rng.integers(len(engines)))]
    if engine == "mbrola" and rng.random() < config.held_probability:
        return "held", engine
    return "speech", engine


def run_job(job: Job) -> JobResult:
    """Synthesize, augment and annotate one utterance (runs in a worker process)."""
    from training.augment import augment
    from training.music import accompany
    from training.pauses import with_inner_pause, with_pauses
    from training.singing import sung_motion
    from training.tts import ENGINES, TtsError
    from training.visemes import dominant_visemes, phones_to_motion

    rng = np.random.default_rng(job.seed)
    engine = ENGINES[job.engine]
    # Some voices cannot change pitch (festival's HTS voice, flite rms): they speak at their
    # own pitch, then at their own rate, rather than being dropped from the corpus.
    attempts = [(job.rate, job.pitch), (job.rate, 1.0), (1.0, 1.0)]
    delivery = job.delivery if job.engine == "mbrola" else "speech"
    utt, error = None, ""
    for rate, pitch in attempts:
        try:
            utt = engine.synthesize(
                job.text, job.voice, rate=rate, pitch=pitch, delivery=delivery, seed=job.seed
            )
            break
        except ValueError as exc:
            error = f"ValueError: {exc}"
        except (TtsError, OSError) as exc:
            return JobResult(job, error=f"{type(exc).__name__}: {exc}")
    if utt is None:
        return JobResult(job, error=error)
    # A pause between phrases, in speech; then long pauses around it, as a live session has
    # them (generators of their own: the plan and every other draw are unchanged).
    if job.delivery in ("speech", "held"):
        utt = with_inner_pause(utt, np.random.default_rng([job.seed, 4]), job.inner_pause)
    utt = with_pauses(utt, np.random.default_rng([job.seed, 3]))
    if job.music:
        utt = accompany(utt, np.random.default_rng([job.seed, 1]), job.music)
    if job.augment:
        utt = augment(utt, rng)
    audio = np.clip(np.asarray(utt.audio, np.float32), -1.0, 1.0)
    n_frames = frames_for(len(audio))
    # Head and brows follow the voice, not the band; songs and raps nod to their beat.
    beats = [a for a, _ in utt.marks.get("beats", [])] if job.delivery in ("song", "rap") else []
    motion = phones_to_motion(utt.phones, n_frames, rng=rng, audio=utt.dry, beats=beats)
    if utt.marks.get("notes") or utt.marks.get("breaths"):
        motion = sung_motion(motion, utt.marks, utt.dry, np.random.default_rng([job.seed, 2]))
    motion = express(motion, Style(job.style, job.intensity))
    visemes = dominant_visemes(utt.phones, n_frames)
    return JobResult(
        job,
        audio,
        motion,
        visemes,
        augment=dict(utt.meta.get("augment", {}) or {}),
        pauses=dict(utt.meta.get("pauses", {}) or {}),
    )


def _results(config: CorpusConfig, jobs: Iterator[Job]) -> Iterator[JobResult]:
    if config.workers <= 1:
        yield from map(run_job, jobs)
        return
    ctx = multiprocessing.get_context("spawn")  # torch/onnxruntime threads do not fork well
    with ctx.Pool(config.workers) as pool:
        yield from pool.imap(run_job, jobs, chunksize=4)  # ordered: deterministic corpus


def synthesize_corpus(config: CorpusConfig) -> dict:
    """Write the corpus to ``config.out``; return the manifest."""
    t0 = time.perf_counter()
    config.out.mkdir(parents=True, exist_ok=True)
    for old in config.out.glob("shard-*.npz"):
        old.unlink()
    voices = _voices(config)
    held = split_voices(voices, config.val_voice_fraction, config.seed)
    target = config.hours * 3600.0
    utterances: list[dict] = []
    failures: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    shard: tuple[list, list, list] = ([], [], [])
    shard_index, shard_len, total = 0, 0.0, 0.0

    def flush() -> None:
        nonlocal shard, shard_index, shard_len
        if shard[0]:
            write_shard(config.out / shard_name(shard_index), *shard)
            shard_index += 1
        shard, shard_len = ([], [], []), 0.0

    bar = tqdm(total=round(target), unit="s", desc="corpus", disable=not config.progress)
    results = _results(config, plan_jobs(config, voices))
    try:
        for result in results:
            job = result.job
            if result.error is not None or result.audio is None:
                failures[job.engine] += 1
                log.warning("%s %s: %s", job.voice, job.text[:40], result.error)
                if sum(failures.values()) > 50 + len(utterances):
                    raise RuntimeError(f"TTS keeps failing: {dict(failures)}")
                continue
            length = len(result.audio) / SAMPLE_RATE
            utterances.append(
                {
                    "id": f"u{job.index:07d}",
                    "shard": shard_name(shard_index),
                    "index": len(shard[0]),
                    "engine": job.engine,
                    "voice": job.voice,
                    "split": job.split,
                    "text": job.text,
                    "seconds": round(length, 3),
                    "rate": round(result.rate, 3),
                    "pitch": round(result.pitch, 3),
                    "delivery": job.delivery,
                    "music": job.music,
                    "style": job.style,
                    "intensity": job.intensity,
                    "augment": result.augment,
                    "pauses": result.pauses,
                }
            )
            shard[0].append(result.audio)
            shard[1].append(result.motion)
            shard[2].append(result.visemes)
            seconds[f"{job.split}/{job.engine}"] += length
            shard_len += length
            total += length
            bar.update(min(round(total), round(target)) - bar.n)
            if shard_len >= config.shard_seconds:
                flush()
            if total >= target:
                break
    finally:
        results.close()
        bar.close()
    flush()
    from training.visemes import VISEME_NAMES

    manifest = {
        "seed": config.seed,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "sample_rate": SAMPLE_RATE,
        "fps": 25,
        "motion_fields": list(motion_frame.FIELDS),
        "viseme_names": list(VISEME_NAMES),
        "voices": voices,
        "val_voices": sorted(held),
        "utterances": utterances,
        "stats": {
            "hours": round(total / 3600, 3),
            "utterances": len(utterances),
            "seconds_by_split_engine": {k: round(v, 1) for k, v in sorted(seconds.items())},
            "failures_by_engine": dict(failures),
            "wall_seconds": round(time.perf_counter() - t0, 1),
        },
    }
    write_manifest(config.out, manifest)
    return manifest
