"""Distil the teacher into a 1-4 step student that follows the teacher's ODE paths.

    python -m training.distill --corpus CORPUS [--teacher runs/motion/teacher.pt]
                               [--out runs/motion/student.pt] [--tiny]

The student is the teacher's networks plus an embedding of the target time s (initialised
to zero, so training starts from "the student is the teacher's Euler step"). For each batch
of training windows the teacher solves the probability-flow ODE from fresh noise with
``teacher_steps`` Heun steps on a uniform grid, and the whole path is kept. The student
then learns, for pairs of times (t, s) on that path, the mean velocity that carries the
teacher's point at t to the teacher's point at s:

    loss = || u(z_t, t, s) - (z_s - z_t) / (s - t) ||^2

The pairs are the steps of uniform N-step schedules, N in ``student_steps`` (so the grid
must divide by each N: 24 serves 1, 2, 3 and 4), plus some random pairs on the grid that
keep the map smooth in between. One network thereby serves every N in 1..4 (a flow map,
as in consistency-trajectory / shortcut models, distilled directly from teacher paths
instead of bootstrapped, which is stable at this size). ``guidance`` > 1 bakes
classifier-free guidance into the paths, so the student gets it at no runtime cost.

``compare`` reports teacher vs student quality on held-out voices (see its docstring).
Measured with it (a 2 h corpus from training/corpus.py, seed 1; teacher 8000 steps and
students 3000 steps at batch 256; rollouts of 20 held-out utterances x 2 seeds, streamed in
20 ms chunks; jawOpen correlation with the targets, noise temperature 0.8):

    teacher Heun 24 (no guidance)                0.68
    student 2 steps, distilled without guidance  0.67
    student 2 steps, distilled with guidance 1.5 0.72   (1 step 0.70, 4 steps 0.72)
    dsp generator, for reference                 0.63

Guidance also lowered the mouth error (0.055 -> 0.054 mean |error|) at the cost of slightly
rougher motion (mouth second differences 1.17x the targets' instead of 1.0x), hence the
default 1.5. At temperature 1.0 every learned row drops by 0.03-0.06 (more variety, less
agreement with the one target), hence the generator's default 0.8.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from contracts import motion_frame
from contracts import motion_spec as spec
from engines.sampler import SAMPLERS, sample_heun, schedule_uniform
from export.motion_model import Checkpoint, MotionModel
from training.dataset import AugmentConfig, WindowSampler, hop_windows, load_utterances
from training.train_teacher import (
    RUNS_DIR,
    learning_rate,
    optimizer_step,
    run_info,
    set_determinism,
    to_tensors,
)

SAMPLES_PER_FRAME = spec.SAMPLES_PER_FRAME
MOUTH = slice(0, 16)  # jawOpen .. mouthLowerDownRight
JAW = motion_frame.INDEX["jawOpen"]


@dataclass
class DistillConfig:
    corpus: Path
    teacher: Path = RUNS_DIR / "teacher.pt"
    out: Path = RUNS_DIR / "student.pt"
    steps: int = 4_000  # ~13 min here with guidance; the shipped student
    batch: int = 256
    lr: float = 3e-4
    warmup: int = 200
    ema: float = 0.999
    teacher_steps: int = 24  # Heun steps of the teacher's paths (47 network calls)
    student_steps: tuple[int, ...] = (1, 2, 3, 4)
    any_pair_prob: float = 0.2
    reuse: int = 2  # student updates per batch of teacher paths (amortises the teacher)
    guidance: float = 1.5  # measured in rollouts: see the module docstring
    # The mouth's own guidance (its 16 blendshapes), None: ``guidance`` for every field.
    mouth_guidance: float | None = None
    seed: int = 0
    threads: int = 2
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    progress: bool = True

    @staticmethod
    def tiny(corpus: Path, teacher: Path, out: Path, seed: int = 0) -> DistillConfig:
        return DistillConfig(
            corpus=corpus,
            teacher=teacher,
            out=out,
            steps=120,
            batch=64,
            lr=1e-3,
            warmup=10,
            ema=0.9,
            teacher_steps=12,
            seed=seed,
            threads=1,
            progress=False,
        )


Guidance = float | torch.Tensor  # one scale, or one per motion field (DIM,)


def guidance_scale(guidance: float, mouth_guidance: float | None) -> Guidance:
    """``guidance`` for every field, or a (DIM,) scale with ``mouth_guidance`` on the mouth."""
    if mouth_guidance is None or mouth_guidance == guidance:
        return guidance
    scale = torch.full((spec.DIM,), float(guidance))
    scale[list(motion_frame.MOUTH_INDICES)] = float(mouth_guidance)
    return scale


def _unguided(guidance: Guidance) -> bool:
    return bool(torch.all(torch.as_tensor(guidance) == 1.0))


def guided_velocity(
    model: MotionModel, cond: torch.Tensor, cond_null: torch.Tensor | None, guidance: Guidance
):
    """The teacher's velocity field for the samplers, with classifier-free guidance when
    ``guidance`` != 1 (``cond_null``: the same windows with the "no audio" embedding); a
    (DIM,) ``guidance`` scales each motion field's guidance on its own."""
    unguided = cond_null is None or _unguided(guidance)

    def velocity(z: torch.Tensor, t: float, s: float) -> torch.Tensor:
        tt = torch.full((len(z), 1), t)
        v = model.velocity_z(cond, z, tt, tt)
        if unguided:
            return v
        v_null = model.velocity_z(cond_null, z, tt, tt)
        return v_null + guidance * (v - v_null)

    return velocity


def teacher_paths(
    teacher: MotionModel,
    mel: torch.Tensor,
    history: torch.Tensor,
    style: torch.Tensor,
    noise: torch.Tensor,
    steps: int,
    guidance: Guidance = 1.0,
) -> torch.Tensor:
    """(steps + 1, B, H, DIM) normalised points of the teacher's Heun paths on the uniform
    grid, from the noise (index 0, t = 1) to motion (index ``steps``, t = 0)."""
    with torch.no_grad():
        cond = teacher.condition(mel, history, style)
        cond_null = None
        if not _unguided(guidance):
            cond_null = teacher.condition(mel, history, style, torch.zeros(len(mel), 1))
        path = [noise]
        velocity = guided_velocity(teacher, cond, cond_null, guidance)
        sample_heun(velocity, noise, schedule_uniform(steps), lambda _, z: path.append(z))
    return torch.stack(path)


def step_pairs(
    n: int,
    grid: int,
    student_steps: tuple[int, ...],
    any_pair_prob: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Grid indices (a, b), a < b, of the jumps the student learns."""
    counts = rng.choice(np.array(student_steps), size=n)
    j = (rng.random(n) * counts).astype(int)
    a, b = grid * j // counts, grid * (j + 1) // counts
    anywhere = rng.random(n) < any_pair_prob
    x, y = rng.integers(0, grid + 1, size=(2, n))
    x, y = np.minimum(x, y), np.maximum(x, y)
    y = np.where(x == y, np.minimum(y + 1, grid), y)
    x = np.where(x == y, y - 1, x)
    return np.where(anywhere, x, a), np.where(anywhere, y, b)


def distill(config: DistillConfig) -> Checkpoint:
    for n in config.student_steps:
        if config.teacher_steps % n:
            raise ValueError(f"teacher_steps {config.teacher_steps} not divisible by {n}")
    set_determinism(config.seed, config.threads)
    teacher = Checkpoint.load(config.teacher).model.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = MotionModel(replace(teacher.config, flow_map=True))
    missing = student.load_state_dict(teacher.state_dict(), strict=False).missing_keys
    assert all(k.startswith("denoiser.target_time.") for k in missing), missing
    ema = copy.deepcopy(student).eval()
    train = load_utterances(config.corpus, "train", config.progress)
    sampler = WindowSampler(train, teacher.std.numpy(), config.augment, config.seed)
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    grid = config.teacher_steps
    guidance = guidance_scale(config.guidance, config.mouth_guidance)
    losses: list[float] = []
    started = time.monotonic()
    bar = tqdm(range(config.steps), desc="distill", disable=not config.progress)
    path = mel = history = style = None
    for step in bar:
        if step % config.reuse == 0:
            mel, history, _, style = to_tensors(sampler.sample(config.batch))
            noise = torch.randn(config.batch, *student.denoiser.shape, generator=gen)
            path = teacher_paths(teacher, mel, history, style, noise, grid, guidance)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config.steps, config.lr, config.warmup)
        a, b = step_pairs(config.batch, grid, config.student_steps, config.any_pair_prob, rng)
        rows = torch.arange(config.batch)
        za, zb = path[a, rows], path[b, rows]
        t = torch.from_numpy(1.0 - a / grid).float()[:, None]
        s = torch.from_numpy(1.0 - b / grid).float()[:, None]
        target = (zb - za) / (s - t)[:, :, None]
        cond = student.condition(mel, history, style)
        loss = torch.mean((student.velocity_z(cond, za, t, s) - target) ** 2)
        losses.append(optimizer_step(student, ema, optimizer, loss, step, config.ema))
        if step % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
    info = run_info(config, ema, losses, started)
    checkpoint = Checkpoint(ema, "student", info)
    checkpoint.save(config.out)
    return checkpoint


# --- teacher vs student ----------------------------------------------------------------------


@dataclass
class CompareConfig:
    corpus: Path
    teacher: Path = RUNS_DIR / "teacher.pt"
    student: Path = RUNS_DIR / "student.pt"
    split: str = "val"
    teacher_steps: int = 24
    student_steps: tuple[int, ...] = (1, 2, 3, 4)
    guidance: tuple[float, ...] = (1.0, 1.5, 2.0)
    max_utterances: int = 50
    seeds: int = 2
    rollout_utterances: int = 20
    temperature: float = 1.0  # of the rollouts' noise
    threads: int = 2


def compare(config: CompareConfig) -> dict[str, dict[str, dict[str, float]]]:
    """Teacher vs student on held-out voices: ``teacher_forced`` (each hop from the true
    history, same noise for all) and ``rollout`` (whole utterances streamed, each hop
    conditioned on the generator's own frames, as at run time)."""
    return {"teacher_forced": compare_teacher_forced(config), "rollout": compare_rollouts(config)}


def compare_teacher_forced(config: CompareConfig) -> dict[str, dict[str, float]]:
    """Teacher vs student on held-out windows with the true history (teacher forcing), the
    same noise for every sampler:

    * ``to_teacher``: RMS distance (normalised units) to the teacher's Heun output with the
      guidance the student was distilled with: how well it follows the teacher's paths;
    * ``mouth_mae``: mean |error| of the 16 mouth blendshapes against the corpus targets;
    * ``jaw_corr``: correlation of jawOpen with the targets (all hops pooled);
    * ``rms``: RMS error of all fields in normalised units.
    Rows: teacher with each guidance scale, student with each step count.
    """
    torch.set_num_threads(config.threads)
    teacher = Checkpoint.load(config.teacher).model.eval()
    student_checkpoint = Checkpoint.load(config.student)
    student = student_checkpoint.model.eval()
    distilled_with = float(student_checkpoint.info.get("config", {}).get("guidance", 1.0))
    guidance = sorted({*config.guidance, distilled_with})
    utterances = load_utterances(config.corpus, config.split)[: config.max_utterances]
    windows = [hop_windows(u, partial=p) for u in utterances for p in (False, True)]
    mel = torch.from_numpy(np.concatenate([w.mel for w in windows]))
    history = torch.from_numpy(np.concatenate([w.history for w in windows]))
    style = torch.from_numpy(np.concatenate([w.style for w in windows]))
    target = np.concatenate([w.target for w in windows])
    outputs: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        t_cond = teacher.condition(mel, history, style)
        t_null = teacher.condition(mel, history, style, torch.zeros(len(mel), 1))
        s_cond = student.condition(mel, history, style)
        for seed in range(config.seeds):
            noise = torch.randn(
                len(mel), *teacher.denoiser.shape, generator=torch.Generator().manual_seed(seed)
            )
            for g in guidance:
                velocity = guided_velocity(teacher, t_cond, t_null, g)
                z = SAMPLERS["heun"](velocity, noise, schedule_uniform(config.teacher_steps))
                outputs.setdefault(f"teacher heun{config.teacher_steps} g{g:g}", []).append(z)
            for n in config.student_steps:

                def flow_map(z, t, s):
                    tt, ss = torch.full((len(z), 1), t), torch.full((len(z), 1), s)
                    return student.velocity_z(s_cond, z, tt, ss)

                z = SAMPLERS["flow_map"](flow_map, noise, schedule_uniform(n))
                outputs.setdefault(f"student {n} step", []).append(z)
    std, mean = teacher.std.numpy(), teacher.mean.numpy()
    target_z = (target - mean) / std
    motion = {
        name: [motion_frame.clip(z.numpy() * std + mean) for z in zs]
        for name, zs in outputs.items()
    }
    clipped_z = {name: [(m - mean) / std for m in ms] for name, ms in motion.items()}
    reference = clipped_z[f"teacher heun{config.teacher_steps} g{distilled_with:g}"]
    report = {}
    for name, ms in motion.items():
        zs = clipped_z[name]
        report[name] = {
            "to_teacher": _mean(
                np.sqrt(np.mean((z - r) ** 2)) for z, r in zip(zs, reference, strict=True)
            ),
            "mouth_mae": _mean(np.abs(m[..., MOUTH] - target[..., MOUTH]).mean() for m in ms),
            "jaw_corr": _mean(
                np.corrcoef(m[..., JAW].ravel(), target[..., JAW].ravel())[0, 1] for m in ms
            ),
            "rms": _mean(np.sqrt(np.mean((z - target_z) ** 2)) for z in zs),
        }
    return report


def compare_rollouts(config: CompareConfig) -> dict[str, dict[str, float]]:
    """Whole held-out utterances through MotionStream (20 ms chunks, as live), torch backend,
    ``seeds`` seeds each:

    * ``jaw_corr``, ``mouth_mae``: as for teacher forcing, per utterance, averaged;
    * ``roughness``: mean |second difference| of the mouth fields over the targets' (1 = as
      smooth as the targets, > 1 jittery).
    Rows: the teacher (Heun, ``teacher_steps``), the student with each step count, and the
    hand-written "dsp" generator for reference.
    """
    from engines.dsp_motion import DspMotionGenerator
    from engines.learned_motion import LearnedMotionGenerator
    from engines.motion_stream import MotionStream
    from export.torch_engines import motion_engines

    torch.set_num_threads(config.threads)
    factories = {
        f"teacher heun{config.teacher_steps}": lambda seed: LearnedMotionGenerator(
            "teacher",
            config.teacher_steps,
            graphs=motion_engines(config.teacher, "teacher"),
            seed=seed,
            temperature=config.temperature,
        )
    }
    for n in config.student_steps:
        factories[f"student {n} step"] = lambda seed, n=n: LearnedMotionGenerator(
            "student",
            n,
            graphs=motion_engines(config.student, "student"),
            seed=seed,
            temperature=config.temperature,
        )
    factories["dsp"] = lambda seed: DspMotionGenerator(seed)
    utterances = load_utterances(config.corpus, config.split)[: config.rollout_utterances]
    report = {}
    for name, factory in factories.items():
        scores: dict[str, list[float]] = {"jaw_corr": [], "mouth_mae": [], "roughness": []}
        for seed, utt in itertools.product(range(config.seeds), utterances):
            frames = len(utt.motion)
            audio = utt.audio(0, frames * SAMPLES_PER_FRAME)
            stream = MotionStream(factory(seed))
            out = [f for i in range(0, len(audio), 320) for _, f in stream.push(audio[i : i + 320])]
            motion = np.stack(out + [f for _, f in stream.flush()])[:frames]
            target = utt.motion
            scores["jaw_corr"].append(np.corrcoef(motion[:, JAW], target[:, JAW])[0, 1])
            scores["mouth_mae"].append(np.abs(motion[:, MOUTH] - target[:, MOUTH]).mean())
            rough = np.abs(np.diff(motion[:, MOUTH], 2, axis=0)).mean()
            scores["roughness"].append(rough / np.abs(np.diff(target[:, MOUTH], 2, axis=0)).mean())
        report[name] = {k: _mean(np.nan_to_num(v)) for k, v in scores.items()}
    return report


def _mean(values) -> float:
    return round(float(np.mean(list(values))), 4)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Distil the motion teacher into a student")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--teacher", type=Path, default=RUNS_DIR / "teacher.pt")
    parser.add_argument("--out", type=Path, default=RUNS_DIR / "student.pt")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--guidance", type=float)
    parser.add_argument(
        "--mouth-guidance", type=float, help="the mouth's own (default: --guidance)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="CI preset (seconds)")
    parser.add_argument("--compare", action="store_true", help="only report teacher vs student")
    args = parser.parse_args(argv)
    if not args.compare:
        config = (
            DistillConfig.tiny(args.corpus, args.teacher, args.out, args.seed)
            if args.tiny
            else DistillConfig(args.corpus, args.teacher, args.out, seed=args.seed)
        )
        config.threads = args.threads
        config.guidance = args.guidance or config.guidance
        config.mouth_guidance = args.mouth_guidance
        config.steps = args.steps or config.steps
        distill(config)
    report = compare(CompareConfig(args.corpus, args.teacher, args.out, threads=args.threads))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
