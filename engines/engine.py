"""The engine interface: named inputs to named outputs, batch dimension first.

Backends:
* ``onnxruntime`` (default): the shipped ONNX graphs; CPU by default, CUDA or TensorRT
  execution providers with ``device="cuda"`` / ``device="tensorrt"`` (onnxruntime-gpu).
* ``torch``: the reference torch modules (needs the ``train`` extra).

Every backend passes the same parity tests (tests/test_engine_parity.py).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

MODELS_DIR = Path(__file__).resolve().parent.parent / "assets" / "models"
BACKENDS = ("onnxruntime", "tensorrt", "torch")
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
    torch_factory: str  # "module:callable" returning an nn.Module in eval mode


MODELS: dict[str, ModelSpec] = {
    "renderer": ModelSpec("renderer.onnx", "export.renderer:Renderer"),
    # The same renderer without its full-frame sampling (engines.compose finishes the frame):
    # what CPU engines run. engines.renderer_models.renderer_for picks one.
    "renderer_split": ModelSpec("renderer_split.onnx", "export.renderer:split_renderer"),
}


def _check_inputs(engine: Engine, inputs: Mapping[str, np.ndarray]) -> None:
    missing = [n for n in engine.input_names if n not in inputs]
    if missing:
        raise EngineError(f"{engine.name}: missing inputs {missing}")


class OnnxRuntimeEngine:
    def __init__(self, name: str, path: Path, device: str = "cpu", threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise EngineError("onnxruntime is not installed") from exc
        if not path.is_file():
            raise EngineError(f"model file not found: {path} (run `emote export`)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or int(os.environ.get("EMOTE_ORT_THREADS", "1"))
        options.inter_op_num_threads = 1
        options.graph_optimization_level = _optimization_level(ort)
        providers = _providers(device, ort.get_available_providers(), path)
        self.name = name
        self.session = ort.InferenceSession(
            str(path),
            options,
            providers=providers,
            # It moves the renderer's channels-first transposes behind the elementwise ops,
            # which then broadcast over the innermost axis: ~3x slower on the CPU.
            disabled_optimizers=["TransposeOptimizer", "TransposeOptimizer_CPUExecutionProvider"],
        )
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self._dtypes = {
            i.name: np.float16 if i.type == "tensor(float16)" else np.float32
            for i in self.session.get_inputs()
        }
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        self.providers = tuple(self.session.get_providers())

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        _check_inputs(self, inputs)
        feed = {n: np.ascontiguousarray(inputs[n], dtype=self._dtypes[n]) for n in self.input_names}
        outputs = self.session.run(list(self.output_names), feed)
        return dict(zip(self.output_names, outputs, strict=True))


def _optimization_level(ort):
    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    return levels[os.environ.get("EMOTE_ORT_OPT", "all")]


def _providers(device: str, available: list[str], path: Path) -> list:
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise EngineError("device 'cuda' needs onnxruntime-gpu (pip install '.[gpu]')")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "tensorrt":
        if "TensorrtExecutionProvider" not in available:
            raise EngineError("device 'tensorrt' needs onnxruntime-gpu built with TensorRT")
        cache = Path(os.environ.get("EMOTE_TRT_CACHE", Path.home() / ".cache" / "emote" / "trt"))
        trt_options = {
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
            "trt_fp16_enable": True,
        }
        return [
            ("TensorrtExecutionProvider", trt_options),
            "CUDAExecutionProvider",
            "CPUExecutionProvider",
        ]
    raise EngineError(f"unknown device {device!r}; choose from {DEVICES}")


class TorchEngine:
    def __init__(self, name: str, factory: str, device: str = "cpu"):
        try:
            import torch
        except ImportError as exc:
            raise EngineError("the torch backend needs the 'train' extra (torch)") from exc
        module_name, attr = factory.split(":")
        self._torch = torch
        self.device = "cuda" if device in ("cuda", "tensorrt") else "cpu"
        model_module = importlib.import_module(module_name)
        self.module = getattr(model_module, attr)().eval().to(self.device)
        self.name = name
        self.input_names = tuple(model_module.INPUT_NAMES)
        self.output_names = tuple(getattr(self.module, "output_names", model_module.OUTPUT_NAMES))

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        _check_inputs(self, inputs)
        torch = self._torch
        with torch.no_grad():
            args = [
                torch.as_tensor(np.asarray(inputs[n])).to(self.device) for n in self.input_names
            ]
            out = self.module(*args)
        outs = out if isinstance(out, tuple) else (out,)
        return {n: o.cpu().numpy() for n, o in zip(self.output_names, outs, strict=True)}


def create_engine(
    model: str,
    backend: str = "onnxruntime",
    device: str = "cpu",
    threads: int | None = None,
    models_dir: Path | None = None,
) -> Engine:
    """Load ``model`` ("renderer", ...) on the chosen backend and device."""
    if model not in MODELS:
        raise EngineError(f"unknown model {model!r}; choose from {sorted(MODELS)}")
    spec = MODELS[model]
    if backend == "onnxruntime":
        return OnnxRuntimeEngine(
            model, (models_dir or MODELS_DIR) / spec.onnx_file, device, threads
        )
    if backend == "torch":
        return TorchEngine(model, spec.torch_factory, device)
    if backend == "tensorrt":
        from engines.tensorrt_engine import TensorRTEngine  # imports this module

        return TensorRTEngine(model, (models_dir or MODELS_DIR) / spec.onnx_file)
    raise EngineError(f"unknown backend {backend!r}; choose from {BACKENDS}")
