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
# which wins on rendered frames (docs/benchmarks.md, "Learned motion vs dsp", "Motion v2").
# Live (`serve`): still dsp. Since motion v2 the learned model passes the barge-in test
# (tests/test_server_loopback.py) and its latency is lower (60 ms lookahead, not 67.5), but
# in the live bench 4 of 23 speech onsets showed no visible opening within 800 ms (dsp: 0 of
# 23), so by issue 15's rule (no worse than dsp live) it is not the default yet
# (docs/benchmarks.md, "Motion v2").
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
