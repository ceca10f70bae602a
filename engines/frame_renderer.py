"""One avatar's frame renderer: motion frames in, RGB frames out, through a renderer engine.

What offline rendering (engines/offline.py) and the live server's render processes
(stream_server/render_pool.py) both call. Either renderer graph works: the whole-frame one
(GPUs, the torch reference) returns frames; the split one (CPU onnxruntime) returns the
warp's source maps, which ``engines.compose`` samples and composites.
"""

from __future__ import annotations

import numpy as np

from engines.compose import Compositor
from engines.engine import Engine
from engines.head_turn import limit_motion
from engines.rig import Rig


class FrameRenderer:
    """Motion frames -> uint8 RGB frames through a renderer engine, for one avatar.

    The head's yaw is limited first (``engines.head_turn``): own + commanded stays within
    what a warp of this portrait can draw.

    Either renderer graph works: the full one returns frames; the split one (CPU engines)
    returns the warp's source maps, sampled and composited by ``engines.compose``."""

    def __init__(self, engine: Engine, rig: Rig) -> None:
        self.engine = engine
        self.inputs = rig.inputs()
        self._batched: dict[int, dict[str, np.ndarray]] = {1: self.inputs}
        self._compositor = Compositor(rig) if "source_map" in engine.output_names else None
        self.own_yaw = float(rig.own_yaw[0])

    def render(self, motion: np.ndarray) -> np.ndarray:
        """(n, DIM) motion -> (n, S, S, 3) uint8 RGB in one engine call (batch n)."""
        motion = motion.reshape(-1, motion.shape[-1]).astype(np.float32)
        # A portrait already turned is not turned on past what its pixels show.
        motion = limit_motion(motion, self.own_yaw)
        n = len(motion)
        if n not in self._batched:  # the rig repeated n times, built once per batch size
            self._batched[n] = {
                k: np.ascontiguousarray(np.repeat(v, n, 0)) for k, v in self.inputs.items()
            }
        inputs = {**self._batched[n], "motion": motion}  # a new dict: thread-safe
        out = self.engine.run(inputs)
        if self._compositor is None:
            return out["frame"]
        return self._compositor.frames(out["source_map"], out["jaw_map"], motion)
