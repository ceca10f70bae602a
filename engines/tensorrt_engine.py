"""Native TensorRT backend: builds, caches, loads and runs one ONNX graph on an NVIDIA GPU.

In the style of NVIDIA's TensorRT diffusion demo: one class that builds the engine from the
shipped ONNX file (an optimization profile over the dynamic batch dimension), caches the
serialized plan on disk, allocates device buffers once for the largest batch, and runs with
``execute_async_v3`` on its own CUDA stream. Device memory and the stream come from
torch.cuda, so there is no second CUDA binding to install.

The cache key is every input that makes a plan invalid: the ONNX bytes, the precision, the
TensorRT version, the GPU (name and compute capability) and the batch profile; plans live in
``$EMOTE_TRT_CACHE`` (default ``~/.cache/emote/trt``), next to onnxruntime's TensorRT cache.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from contracts import settings
from engines.engine import EngineError

PRECISIONS = ("fp32", "fp16")
DEFAULT_MAX_BATCH = 8
WORKSPACE_BYTES = 1 << 30
TRT_MISSING = "native TensorRT backend needs the 'gpu' extra (tensorrt) and an NVIDIA GPU"

# TensorRT DataType name -> (numpy dtype, torch dtype name).
_DTYPES: dict[str, tuple[type[np.generic], str]] = {
    "FLOAT": (np.float32, "float32"),
    "HALF": (np.float16, "float16"),
    "INT32": (np.int32, "int32"),
    "INT64": (np.int64, "int64"),
    "INT8": (np.int8, "int8"),
    "UINT8": (np.uint8, "uint8"),
    "BOOL": (np.bool_, "bool"),
}


def trt_cache_dir() -> Path:
    return settings.current().trt_cache


def engine_cache_key(
    onnx_bytes: bytes, precision: str, trt_version: str, gpu: str, max_batch: int
) -> str:
    """Hex key naming a serialized engine; any change in what the plan depends on changes it."""
    model_digest = hashlib.sha256(onnx_bytes).hexdigest()
    parts = (model_digest, precision, trt_version, gpu, f"batch1-{max_batch}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def _import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError as exc:
        raise EngineError(TRT_MISSING) from exc
    return tensorrt


def _import_torch_cuda() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise EngineError(
            "native TensorRT backend allocates GPU memory through torch.cuda: install torch"
        ) from exc
    if not torch.cuda.is_available():
        raise EngineError(f"{TRT_MISSING}: torch sees no CUDA device")
    return torch


class TensorRTEngine:
    """One ONNX graph as a TensorRT engine; batch-first named inputs to named outputs."""

    def __init__(
        self,
        name: str,
        onnx_path: Path,
        precision: str | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        cache_dir: Path | None = None,
    ) -> None:
        trt = _import_tensorrt()
        torch = _import_torch_cuda()
        precision = precision or settings.current().trt_precision
        if precision not in PRECISIONS:
            raise EngineError(f"unknown TensorRT precision {precision!r}; choose from {PRECISIONS}")
        if not onnx_path.is_file():
            raise EngineError(f"model file not found: {onnx_path} (run `emote export`)")
        self._trt = trt
        self._torch = torch
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)  # must outlive the engine
        self._lock = threading.Lock()  # one execution context: one run at a time
        self.name = name
        self.precision = precision
        self.max_batch = max_batch

        device = torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(device)
        gpu = f"{torch.cuda.get_device_name(device)} sm_{major}{minor}"
        key = engine_cache_key(onnx_path.read_bytes(), precision, trt.__version__, gpu, max_batch)
        self.engine_path = (cache_dir or trt_cache_dir()) / f"{name}-{precision}-{key}.plan"
        self.engine = self._load() or self._build(onnx_path)
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()

        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        modes = {n: self.engine.get_tensor_mode(n) for n in names}
        self.input_names = tuple(n for n in names if modes[n] == trt.TensorIOMode.INPUT)
        self.output_names = tuple(n for n in names if modes[n] == trt.TensorIOMode.OUTPUT)
        self._allocate()

    def _load(self) -> Any | None:
        if not self.engine_path.is_file():
            return None
        # None when the file is truncated or was written by an incompatible build: rebuild.
        return self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())

    def _build(self, onnx_path: Path) -> Any:
        trt = self._trt
        builder = trt.Builder(self._logger)
        network = builder.create_network(0)  # TensorRT 10: always explicit batch
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(parser.get_error(i).desc() for i in range(parser.num_errors))
            raise EngineError(f"TensorRT cannot parse {onnx_path}: {errors}")

        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        if self.precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        else:
            # TF32 matmuls (on by default) move warp coordinates enough to flip nearest samples.
            config.clear_flag(trt.BuilderFlag.TF32)
        profile = builder.create_optimization_profile()
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            rest = tuple(tensor.shape)[1:]
            if any(d < 0 for d in rest):
                raise EngineError(f"{tensor.name}: only the batch dimension may be dynamic")
            profile.set_shape(tensor.name, (1, *rest), (1, *rest), (self.max_batch, *rest))
        config.add_optimization_profile(profile)

        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise EngineError(f"TensorRT failed to build {onnx_path} (see the log above)")
        plan = bytes(serialized)
        self.engine_path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.engine_path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(plan)
        partial.replace(self.engine_path)  # atomic: a concurrent reader sees all or nothing
        engine = self._runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise EngineError(f"TensorRT could not load the engine it built for {onnx_path}")
        return engine

    def _allocate(self) -> None:
        """Device buffers for the largest batch; smaller batches use their leading part."""
        torch = self._torch
        for name in self.input_names:
            shape = (self.max_batch, *tuple(self.engine.get_tensor_shape(name))[1:])
            self.context.set_input_shape(name, shape)
        self._numpy_dtypes: dict[str, type[np.generic]] = {}
        self._buffers: dict[str, Any] = {}
        for name in (*self.input_names, *self.output_names):
            dtype_name = self.engine.get_tensor_dtype(name).name
            if dtype_name not in _DTYPES:
                raise EngineError(f"{self.name}: tensor {name} has unsupported type {dtype_name}")
            numpy_dtype, torch_dtype = _DTYPES[dtype_name]
            shape = tuple(self.context.get_tensor_shape(name))
            buffer = torch.empty(shape, dtype=getattr(torch, torch_dtype), device="cuda")
            self.context.set_tensor_address(name, buffer.data_ptr())
            self._numpy_dtypes[name] = numpy_dtype
            self._buffers[name] = buffer

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise EngineError(f"{self.name}: missing inputs {missing}")
        arrays = {
            n: np.ascontiguousarray(inputs[n], dtype=self._numpy_dtypes[n])
            for n in self.input_names
        }
        batches = {a.shape[0] for a in arrays.values()}
        if len(batches) != 1 or min(batches) < 1:
            raise EngineError(f"{self.name}: inputs disagree on the batch size {sorted(batches)}")
        batch = batches.pop()
        with self._lock:
            chunks = [
                self._run_chunk({n: a[start : start + self.max_batch] for n, a in arrays.items()})
                for start in range(0, batch, self.max_batch)
            ]
        if len(chunks) == 1:
            return chunks[0]
        return {n: np.concatenate([c[n] for c in chunks]) for n in self.output_names}

    def _run_chunk(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        with torch.cuda.stream(self.stream):
            for name, array in arrays.items():
                buffer = self._buffers[name]
                if array.shape[1:] != tuple(buffer.shape[1:]):
                    raise EngineError(
                        f"{self.name}: input {name} has shape {array.shape}, "
                        f"the engine takes (batch, {', '.join(map(str, buffer.shape[1:]))})"
                    )
                if not self.context.set_input_shape(name, array.shape):
                    raise EngineError(f"{self.name}: TensorRT rejected {name} shape {array.shape}")
                buffer[: array.shape[0]].copy_(torch.from_numpy(array))
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise EngineError(f"{self.name}: TensorRT execution failed")
            outputs = {}
            for name in self.output_names:
                # TensorRT writes the output densely from the buffer's start.
                shape = tuple(self.context.get_tensor_shape(name))
                flat = self._buffers[name].view(-1)[: int(np.prod(shape))]
                # A fresh host copy (the buffer is reused); waits for the stream.
                outputs[name] = flat.view(shape).to("cpu", copy=True).numpy()
        return outputs
