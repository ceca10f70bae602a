"""The onnxruntime backend: one ONNX graph on the CPU (default) or onnxruntime-gpu's CUDA or
TensorRT execution providers."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from contracts import settings
from engines.engine import DEVICES, EngineError, check_inputs


class OnnxRuntimeEngine:
    def __init__(self, name: str, path: Path, device: str = "cpu", threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise EngineError("onnxruntime is not installed") from exc
        if not path.is_file():
            raise EngineError(f"model file not found: {path} (run `emote export`)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or settings.current().ort_threads
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
        check_inputs(self, inputs)
        feed = {n: np.ascontiguousarray(inputs[n], dtype=self._dtypes[n]) for n in self.input_names}
        outputs = self.session.run(list(self.output_names), feed)
        return dict(zip(self.output_names, outputs, strict=True))


def _optimization_level(ort: Any) -> Any:
    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    return levels[settings.current().ort_opt]


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
        cache = settings.current().trt_cache
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
