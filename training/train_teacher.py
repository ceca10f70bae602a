"""Train the teacher: rectified flow (flow matching) on motion hops, many-step sampling.

    python -m training.train_teacher --corpus CORPUS [--out runs/motion/teacher.pt] [--tiny]

Objective: z_t = (1 - t) z_0 + t eps on normalised motion hops z_0, the network predicts the
velocity eps - z_0 (MSE). Times are logit-normal (most of them mid-way, where the
prediction is hardest) with some uniform ones so both ends are covered. The audio
conditioning is dropped for ``audio_dropout`` of the windows (a learned "no audio"
embedding) so classifier-free guidance can be tried at sampling time. The weights kept are
an exponential moving average of the trained ones.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from export.motion_model import Checkpoint, MotionModel, MotionModelConfig, parameter_count
from training.dataset import (
    AugmentConfig,
    WindowBatch,
    WindowSampler,
    load_utterances,
    motion_statistics,
)

RUNS_DIR = Path("runs") / "motion"


@dataclass
class TeacherConfig:
    corpus: Path
    out: Path = RUNS_DIR / "teacher.pt"
    steps: int = 12_000  # 11-17 min here; the shipped teacher (docs/training.md)
    batch: int = 256
    lr: float = 1e-3
    warmup: int = 500
    ema: float = 0.999
    audio_dropout: float = 0.1
    uniform_time_prob: float = 0.2
    seed: int = 0
    threads: int = 2
    model: MotionModelConfig = field(default_factory=MotionModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    progress: bool = True

    @staticmethod
    def tiny(corpus: Path, out: Path, seed: int = 0) -> TeacherConfig:
        """Seconds on a CPU: proves the pipeline, learns only what a toy corpus holds."""
        return TeacherConfig(
            corpus=corpus,
            out=out,
            steps=300,
            batch=64,
            lr=2e-3,
            warmup=30,
            ema=0.95,
            seed=seed,
            threads=1,
            progress=False,
        )


def set_determinism(seed: int, threads: int) -> None:
    torch.manual_seed(seed)
    torch.set_num_threads(threads)


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def update_ema(ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float) -> None:
    """Averaging warms up (short memory at first) so early, random weights fade fast."""
    rate = min(decay, (1.0 + step) / (10.0 + step))
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters(), strict=True):
            e.lerp_(p, 1.0 - rate)


def optimizer_step(
    model: torch.nn.Module,
    ema: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss: torch.Tensor,
    step: int,
    ema_decay: float,
) -> float:
    """One clipped update of ``model`` and its weight average; returns the loss value."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    update_ema(ema, model, step, ema_decay)
    return float(loss.detach())


def run_info(config: object, ema: torch.nn.Module, losses: list[float], started: float) -> dict:
    """What a checkpoint records about the run that made it."""
    return {
        "config": _jsonable(asdict(config)),  # type: ignore[call-overload]
        "final_loss": float(np.mean(losses[-100:])) if losses else None,
        "parameters": parameter_count(ema),
        "seconds": round(time.monotonic() - started, 1),
    }


def to_tensors(
    batch: WindowBatch,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        torch.from_numpy(batch.mel),
        torch.from_numpy(batch.history),
        torch.from_numpy(batch.target),
        torch.from_numpy(batch.style),
    )


def sample_times(n: int, uniform_prob: float, generator: torch.Generator) -> torch.Tensor:
    logit_normal = torch.sigmoid(torch.randn(n, 1, generator=generator))
    uniform = torch.rand(n, 1, generator=generator)
    pick = torch.rand(n, 1, generator=generator) < uniform_prob
    return torch.where(pick, uniform, logit_normal)


def flow_matching_loss(
    model: MotionModel,
    mel: torch.Tensor,
    history: torch.Tensor,
    target: torch.Tensor,
    style: torch.Tensor,
    audio_keep: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:
    z0 = model.normalise(target)
    zt = (1.0 - t[:, :, None]) * z0 + t[:, :, None] * noise
    cond = model.condition(mel, history, style, audio_keep)
    velocity = model.velocity_z(cond, zt, t, t)
    return torch.mean((velocity - (noise - z0)) ** 2)


def train_teacher(config: TeacherConfig) -> Checkpoint:
    set_determinism(config.seed, config.threads)
    train = load_utterances(config.corpus, "train", config.progress)
    mean, std = motion_statistics(train)
    sampler = WindowSampler(train, std, config.augment, config.seed)
    model = MotionModel(replace(config.model, flow_map=False))
    model.set_normalisation(torch.from_numpy(mean), torch.from_numpy(std))
    ema = copy.deepcopy(model).eval()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(config.seed)
    losses: list[float] = []
    started = time.monotonic()
    bar = tqdm(range(config.steps), desc="teacher", disable=not config.progress)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config.steps, config.lr, config.warmup)
        mel, history, target, style = to_tensors(sampler.sample(config.batch))
        keep = (torch.rand(config.batch, 1, generator=gen) >= config.audio_dropout).float()
        t = sample_times(config.batch, config.uniform_time_prob, gen)
        noise = torch.randn(target.shape, generator=gen)
        loss = flow_matching_loss(model, mel, history, target, style, keep, t, noise)
        losses.append(optimizer_step(model, ema, optimizer, loss, step, config.ema))
        if step % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
    info = run_info(config, ema, losses, started) | {"train_utterances": len(train)}
    checkpoint = Checkpoint(ema, "teacher", info)
    checkpoint.save(config.out)
    return checkpoint


def _jsonable(values: dict) -> dict:
    return json.loads(json.dumps(values, default=str))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the motion teacher (flow matching)")
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=RUNS_DIR / "teacher.pt")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="CI preset (seconds)")
    args = parser.parse_args(argv)
    config = (
        TeacherConfig.tiny(args.corpus, args.out, args.seed)
        if args.tiny
        else TeacherConfig(args.corpus, args.out, seed=args.seed)
    )
    config.threads = args.threads
    config.steps = args.steps or config.steps
    config.batch = args.batch or config.batch
    checkpoint = train_teacher(config)
    print(json.dumps({k: v for k, v in checkpoint.info.items() if k != "config"}, indent=1))


if __name__ == "__main__":
    main()
