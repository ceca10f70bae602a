"""Corpus synthesis: TTS voices -> utterances with exact phone timings -> augmented audio and
motion targets, written as shards with a manifest (training/corpus_format.py).

Everything is decided by the seed: the held-out voices, the sentence for each job, the
engine/voice/rate/pitch/singing choice, the augmentation chain and the motion style. Jobs
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
    sing_probability: float = 0.25  # MBROLA jobs only: held vowels like sung notes
    shard_seconds: float = 900.0
    engines: tuple[str, ...] = ()  # empty = every available engine
    max_voices_per_engine: int = 40
    progress: bool = True

    @staticmethod
    def tiny(out: Path, seed: int = 0) -> CorpusConfig:
        """A few sentences for CI: proves the pipeline, trains nothing useful."""
        return CorpusConfig(out=out, hours=60 / 3600, seed=seed, shard_seconds=30.0)


@dataclass(frozen=True)
class Job:
    index: int
    engine: str
    voice: str
    split: str
    text: str
    rate: float
    pitch: float
    sing: bool
    augment: bool
    seed: int


@dataclass
class JobResult:
    job: Job
    audio: np.ndarray | None = None
    motion: np.ndarray | None = None
    visemes: np.ndarray | None = None
    augment: dict = field(default_factory=dict)
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
            engine = engines[int(rng.integers(len(engines)))]
            voice = voices[engine][int(rng.integers(len(voices[engine])))]
            sing = engine == "mbrola" and rng.random() < config.sing_probability
            yield Job(
                index=index,
                engine=engine,
                voice=voice,
                split="val" if voice in held else "train",
                text=text,
                rate=float(rng.uniform(0.8, 1.3)),
                pitch=float(rng.uniform(0.85, 1.2)),
                sing=bool(sing),
                augment=bool(rng.random() < config.augment_probability),
                seed=int(rng.integers(2**31)),
            )
            index += 1
        batch += 1


def run_job(job: Job) -> JobResult:
    """Synthesize, augment and annotate one utterance (runs in a worker process)."""
    from training.augment import augment
    from training.tts import ENGINES, TtsError
    from training.visemes import dominant_visemes, phones_to_motion

    rng = np.random.default_rng(job.seed)
    engine = ENGINES[job.engine]
    # Some voices cannot change pitch (festival's HTS voice, flite rms): they speak at their
    # own pitch, then at their own rate, rather than being dropped from the corpus.
    attempts = [(job.rate, job.pitch), (job.rate, 1.0), (1.0, 1.0)]
    utt, error = None, ""
    for rate, pitch in attempts:
        try:
            utt = engine.synthesize(
                job.text, job.voice, rate=rate, pitch=pitch, sing=job.sing, seed=job.seed
            )
            break
        except ValueError as exc:
            error = f"ValueError: {exc}"
        except (TtsError, OSError) as exc:
            return JobResult(job, error=f"{type(exc).__name__}: {exc}")
    if utt is None:
        return JobResult(job, error=error)
    if job.augment:
        utt = augment(utt, rng)
    audio = np.clip(np.asarray(utt.audio, np.float32), -1.0, 1.0)
    n_frames = frames_for(len(audio))
    motion = phones_to_motion(utt.phones, n_frames, rng=rng, audio=audio)
    visemes = dominant_visemes(utt.phones, n_frames)
    return JobResult(job, audio, motion, visemes, augment=dict(utt.meta.get("augment", {}) or {}))


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
                    "sing": job.sing,
                    "augment": result.augment,
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
