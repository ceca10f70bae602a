"""The engine interface: named inputs to named outputs, batch dimension first.

This module is the contract every backend meets (``Engine``, ``EngineError``, the model
registry); the backends live beside it and ``engines.backends.create_engine`` picks one:

* ``onnxruntime`` (default, engines/onnxruntime_engine.py): the shipped ONNX graphs; CPU by
  default, CUDA or TensorRT execution providers with ``device="cuda"`` / ``"tensorrt"``
  (onnxruntime-gpu).
* ``tensorrt`` (engines/tensorrt_engine.py): native TensorRT on an NVIDIA GPU.
* The torch reference modules are not a runtime backend: ``export.torch_engines`` wraps
  them in this interface (needs the ``train`` extra) for the command line's ``--backend
  torch``, training and the parity tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from contracts.paths import MODELS_DIR

__all__ = ["BACKENDS", "DEVICES", "MODELS", "MODELS_DIR", "Engine", "EngineError", "ModelSpec"]

BACKENDS = ("onnxruntime", "tensorrt")
DEVICES = ("cpu", "cuda", "tensorrt")


class EngineError(RuntimeError):
    """A model could not be loaded or run (missing file, backend not installed, bad input)."""


class Engine(Protocol):
    name: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@dataclass(frozen=True)
class ModelSpec:
    onnx_file: str


MODELS: dict[str, ModelSpec] = {
    "renderer": ModelSpec("renderer.onnx"),
    # The same renderer without its full-frame sampling (engines.compose finishes the frame):
    # what CPU engines run. engines.renderer_models.renderer_name picks one.
    "renderer_split": ModelSpec("renderer_split.onnx"),
}


def check_inputs(engine: Engine, inputs: Mapping[str, np.ndarray]) -> None:
    missing = [n for n in engine.input_names if n not in inputs]
    if missing:
        raise EngineError(f"{engine.name}: missing inputs {missing}")
