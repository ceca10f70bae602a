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
# chosen when it won on rendered frames (docs/benchmarks.md, "Learned motion vs dsp"); it
# still wins on onsets, jaw correlation and sung range, dsp on the rows named below.
# Live (`serve`): still dsp. The learned model passes the barge-in test
# (tests/test_server_loopback.py) and, trained with long pauses, misses no onset of the live
# bench (0 of 23, p95 174 ms against dsp's 179), but on rendered real speech dsp still reads
# better (vowel contrast 8.9x vs 5.8x, pixel viseme accuracy 0.86 vs 0.79, 3 of 4 styles vs 1;
# docs/benchmarks.md, "A mouth that stays shut in pauses"), so it is not the live default yet.
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
