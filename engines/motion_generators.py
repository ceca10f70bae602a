"""Motion generators by name, for `emote render`, `emote serve`, `emote eval` and the bench.

* ``dsp``: the hand-written streaming generator (engines/dsp_motion.py), no model files.
* ``learned``: the distilled student of the learned model, 1-4 sampling steps.
* ``teacher``: the learned model's teacher, many steps (the quality reference; slow).
"""

from __future__ import annotations

from pathlib import Path

from engines.motion_stream import MotionGenerator

MOTION_CHOICES: tuple[str, ...] = ("dsp", "learned", "teacher")
# Which generator is used when none is named. Offline (`render`, `eval`): the learned student,
# which wins on rendered frames (docs/benchmarks.md, "Learned motion vs dsp"). Live (`serve`):
# still dsp, because the learned model fails the barge-in test (tests/test_server_loopback.py),
# which dsp passes: its head turns past what the renderer draws cleanly and the artifacts
# read as an open mouth (docs/benchmarks.md, "The learned model live").
DEFAULT_MOTION = "learned"
DEFAULT_LIVE_MOTION = "dsp"


def make_generator(
    name: str, seed: int = 0, steps: int | None = None, models_dir: Path | None = None
) -> MotionGenerator:
    """A fresh generator (one per session or render: generators carry per-stream state)."""
    if name == "dsp":
        if steps is not None:
            raise ValueError("--steps applies to the learned motion models only")
        from engines.dsp_motion import DspMotionGenerator

        return DspMotionGenerator(seed=seed)
    if name in ("learned", "teacher"):
        from engines.learned_motion import LearnedMotionGenerator

        which = "student" if name == "learned" else "teacher"
        return LearnedMotionGenerator(which=which, steps=steps, seed=seed, models_dir=models_dir)
    raise ValueError(f"unknown motion generator {name!r}; choose from {', '.join(MOTION_CHOICES)}")
