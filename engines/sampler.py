"""Few- and many-step samplers for the motion flow, in the style of k-diffusion.

Each sampler is a short pure function over ``(model, x, ts)``: ``x`` starts as the noise
sample at ``ts[0] = 1`` and ends as motion at ``ts[-1] = 0``; the schedule ``ts`` is data, so
the step count is a number, not a code path. ``model(x, t, s)`` returns the mean velocity
of the flow's path from time t to time s (``model(x, t, t)``: the velocity at t), so a step
is ``x + (s - t) * model(x, t, s)``. The teacher's velocity does not depend on s; the
distilled student's does, which lets one student jump the teacher's whole path in 1-4 steps.

The functions only add and scale ``x``, so they run on numpy arrays (the runtime) and on
torch tensors (distillation, which records the teacher's path through ``callback``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

X = TypeVar("X")  # np.ndarray or torch.Tensor
Model = Callable[[Any, float, float], Any]
Callback = Callable[[int, Any], None]


def schedule_uniform(steps: int) -> np.ndarray:
    """``steps`` equal steps from t = 1 to t = 0."""
    if steps < 1:
        raise ValueError("steps must be >= 1")
    return np.linspace(1.0, 0.0, steps + 1)


def schedule_shifted(steps: int, shift: float) -> np.ndarray:
    """Uniform steps warped by t -> shift t / (1 + (shift - 1) t) (SD3's time shift):
    shift > 1 spends more steps near the noise end, shift < 1 near the motion end."""
    t = schedule_uniform(steps)
    return shift * t / (1.0 + (shift - 1.0) * t)


def sample_euler(model: Model, x: X, ts: np.ndarray, callback: Callback | None = None) -> X:
    """Euler steps with the velocity at the start of each step."""
    for i, (t, s) in enumerate(_steps(ts)):
        x = x + (s - t) * model(x, t, t)
        if callback is not None:
            callback(i, x)
    return x


def sample_heun(model: Model, x: X, ts: np.ndarray, callback: Callback | None = None) -> X:
    """Heun's second-order steps (trapezoid of the velocities at both ends); the last step
    to t = 0 is an Euler step (the velocity there is not needed, as in k-diffusion)."""
    for i, (t, s) in enumerate(_steps(ts)):
        d = model(x, t, t)
        x_euler = x + (s - t) * d
        x = x_euler if s == 0.0 else x + (s - t) * 0.5 * (d + model(x_euler, s, s))
        if callback is not None:
            callback(i, x)
    return x


def sample_flow_map(model: Model, x: X, ts: np.ndarray, callback: Callback | None = None) -> X:
    """The distilled student's steps: each jumps from t to s along the teacher's path."""
    for i, (t, s) in enumerate(_steps(ts)):
        x = x + (s - t) * model(x, t, s)
        if callback is not None:
            callback(i, x)
    return x


SAMPLERS: dict[str, Callable[..., Any]] = {
    "euler": sample_euler,
    "heun": sample_heun,
    "flow_map": sample_flow_map,
}


def model_calls(sampler: str, ts: np.ndarray) -> int:
    """Network evaluations a sampler makes over a schedule."""
    steps = len(ts) - 1
    if sampler == "heun":
        return 2 * steps - int(ts[-1] == 0.0)
    return steps


def _steps(ts: np.ndarray) -> list[tuple[float, float]]:
    ts = np.asarray(ts, np.float64)
    if ts.ndim != 1 or len(ts) < 2 or np.any(np.diff(ts) >= 0.0):
        raise ValueError("a schedule is a decreasing sequence of at least two times")
    values = ts.tolist()
    return list(itertools.pairwise(values))
