"""Loading a registered model (engines.engine.MODELS) on a runtime backend."""

from __future__ import annotations

from pathlib import Path

from contracts.paths import MODELS_DIR
from engines.engine import BACKENDS, MODELS, Engine, EngineError
from engines.onnxruntime_engine import OnnxRuntimeEngine


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
    path = (models_dir or MODELS_DIR) / MODELS[model].onnx_file
    if backend == "onnxruntime":
        return OnnxRuntimeEngine(model, path, device, threads)
    if backend == "tensorrt":
        from engines.tensorrt_engine import TensorRTEngine  # optional: needs tensorrt

        return TensorRTEngine(model, path)
    hint = " (the torch reference: export.torch_engines, needs torch)" if backend == "torch" else ""
    raise EngineError(f"unknown backend {backend!r}; choose from {BACKENDS}{hint}")
