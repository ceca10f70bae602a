"""The torch reference modules behind the runtime's Engine interface (needs torch).

``create_torch_engine("renderer" | "renderer_split")``: the renderer module the ONNX graphs
are exported from (``emote render --backend torch``, the parity tests);
``motion_engines(checkpoint, which)``: the motion model's encoder and denoiser graphs over a
training checkpoint, for ``engines.learned_motion.LearnedMotionGenerator(graphs=...)``
(distillation's rollouts, the ONNX parity tests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from contracts import motion_spec as spec
from contracts import render_spec
from engines.engine import DEVICES, Engine, EngineError, check_inputs
from export.motion_model import Checkpoint, DenoiserGraph, EncoderGraph
from export.renderer import Renderer, split_renderer

RENDERERS: dict[str, Callable[[], nn.Module]] = {
    "renderer": Renderer,
    "renderer_split": split_renderer,
}
CHECKPOINTS_DIR = Path("runs") / "motion"  # where `emote train motion` leaves checkpoints


class TorchEngine:
    """One torch module with the Engine interface: numpy in, numpy out, no gradients."""

    def __init__(
        self,
        name: str,
        module: nn.Module,
        input_names: Sequence[str],
        output_names: Sequence[str],
        device: str = "cpu",
    ) -> None:
        if device not in DEVICES:
            raise EngineError(f"unknown device {device!r}; choose from {DEVICES}")
        self.device = "cuda" if device in ("cuda", "tensorrt") else "cpu"
        self.name = name
        self.module = module.eval().to(self.device)
        self.input_names = tuple(input_names)
        self.output_names = tuple(output_names)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_inputs(self, inputs)
        with torch.no_grad():
            args = [
                torch.as_tensor(np.asarray(inputs[n])).to(self.device) for n in self.input_names
            ]
            out = self.module(*args)
        outs = out if isinstance(out, tuple) else (out,)
        return {n: o.cpu().numpy() for n, o in zip(self.output_names, outs, strict=True)}


def create_torch_engine(model: str, device: str = "cpu") -> Engine:
    """The torch reference of renderer graph ``model`` (engines.engine.MODELS' names)."""
    if model not in RENDERERS:
        raise EngineError(f"unknown model {model!r}; choose from {sorted(RENDERERS)}")
    module = RENDERERS[model]()
    output_names = getattr(module, "output_names", render_spec.OUTPUT_NAMES)
    return TorchEngine(model, module, render_spec.INPUT_NAMES, output_names, device)


def motion_engines(checkpoint: Path | None, which: str) -> tuple[Engine, Engine]:
    """Encoder and denoiser engines over a training checkpoint (default: ``runs/motion``'s
    ``<which>.pt``)."""
    path = Path(checkpoint) if checkpoint else CHECKPOINTS_DIR / f"{which}.pt"
    if not path.is_file():
        raise EngineError(f"motion checkpoint missing: {path}; run `emote train motion`")
    model = Checkpoint.load(path).model
    return (
        TorchEngine(
            f"motion_{which}_encoder",
            EncoderGraph(model),
            spec.ENCODER_INPUTS,
            spec.ENCODER_OUTPUTS,
        ),
        TorchEngine(
            f"motion_{which}_denoiser",
            DenoiserGraph(model),
            spec.DENOISER_INPUTS,
            spec.DENOISER_OUTPUTS,
        ),
    )
