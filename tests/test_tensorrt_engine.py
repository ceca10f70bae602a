"""The native TensorRT backend: what runs anywhere, and GPU parity where TensorRT is installed."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contracts.paths import MODELS_DIR
from engines.backends import create_engine
from engines.engine import BACKENDS, EngineError
from engines.onnxruntime_engine import OnnxRuntimeEngine
from engines.tensorrt_engine import engine_cache_key


def _tensorrt_gpu() -> bool:
    try:
        importlib.import_module("tensorrt")
        torch = importlib.import_module("torch")
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def test_tensorrt_is_a_backend() -> None:
    assert "tensorrt" in BACKENDS


def test_missing_tensorrt_is_a_clear_engine_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    with pytest.raises(EngineError, match=r"needs the 'gpu' extra \(tensorrt\) and an NVIDIA GPU"):
        create_engine("renderer", backend="tensorrt")


def _key(
    onnx_bytes: bytes = b"graph",
    precision: str = "fp32",
    trt_version: str = "10.0.1",
    gpu: str = "NVIDIA H200 sm_90",
    max_batch: int = 8,
) -> str:
    return engine_cache_key(onnx_bytes, precision, trt_version, gpu, max_batch)


def test_cache_key_is_stable() -> None:
    assert _key() == _key()
    assert len(_key()) == 32 and int(_key(), 16) >= 0


@pytest.mark.parametrize(
    "change",
    [
        {"onnx_bytes": b"graph2"},
        {"precision": "fp16"},
        {"trt_version": "10.8.0"},
        {"gpu": "NVIDIA L4 sm_89"},
        {"gpu": "NVIDIA H200 sm_100"},
        {"max_batch": 16},
    ],
)
def test_cache_key_changes_with_what_the_plan_depends_on(change: dict[str, Any]) -> None:
    assert _key(**change) != _key()


def _renderer_inputs(batch: int) -> dict[str, np.ndarray]:
    """The exporter's example inputs, made to move: smooth images (so that a nearest-sample
    index off by one changes a pixel by well under 1), a local warp and a turned head."""
    from contracts import motion_frame as mf
    from export.onnx_export import renderer_example_inputs

    inputs = {}
    for name, tensor in renderer_example_inputs().items():
        array = np.repeat(tensor.numpy(), batch, axis=0)
        if array.dtype == np.float16:  # images, batch-first (B, 2H, 2W, C)
            low, high = float(array.min()), float(array.max())
            _, height, width, channels = array.shape
            y = np.arange(height, dtype=np.float32)[:, None, None]
            x = np.arange(width, dtype=np.float32)[None, :, None]
            c = np.arange(channels, dtype=np.float32)
            wave = 0.5 + 0.4 * np.sin(x / 150.0 + c) * np.cos(y / 190.0 - c)
            array = np.broadcast_to(low + (high - low) * wave, array.shape).astype(np.float16)
        inputs[name] = array
    warp = inputs["warp"]
    grid = round(warp.shape[2] ** 0.5)
    lin = np.linspace(-1.0, 1.0, grid, dtype=np.float32)
    points = np.stack(np.meshgrid(lin, lin), -1).reshape(-1, 1, 2)
    dist2 = ((points - inputs["controls"][0, None, :, :2]) ** 2).sum(-1)
    weights = np.exp(-dist2 / (2 * 0.15**2))
    inputs["warp"] = np.broadcast_to(weights / weights.sum(-1, keepdims=True), warp.shape).copy()
    motion = inputs["motion"].copy()
    motion[:, mf.HEAD_SLICE.start] = np.linspace(-0.2, 0.2, batch)  # yaw
    motion[:, mf.HEAD_SLICE.start + 1] = 0.1  # pitch
    inputs["motion"] = motion
    return inputs


@pytest.mark.skipif(not _tensorrt_gpu(), reason="needs tensorrt and a CUDA GPU")
def test_tensorrt_matches_onnxruntime(tmp_path: Path) -> None:
    from engines.tensorrt_engine import TensorRTEngine

    path = MODELS_DIR / "renderer.onnx"
    # max_batch 2 with 3 frames: runs the dynamic profile at both ends and splits the batch.
    engine = TensorRTEngine("renderer", path, precision="fp32", max_batch=2, cache_dir=tmp_path)
    reference = OnnxRuntimeEngine("renderer", path, threads=4)
    assert engine.input_names == reference.input_names
    assert engine.output_names == reference.output_names

    inputs = _renderer_inputs(3)
    feed = {n: inputs[n] for n in reference.input_names}
    got, want = engine.run(feed), reference.run(feed)
    for name in reference.output_names:
        assert got[name].shape == want[name].shape and got[name].dtype == want[name].dtype
        diff = np.abs(got[name].astype(np.float32) - want[name].astype(np.float32))
        assert diff.max() <= 2.0, f"{name}: max abs diff {diff.max()}"

    # A second engine for the same graph, precision, TensorRT and GPU loads the cached plan.
    built_at = engine.engine_path.stat().st_mtime_ns
    again = TensorRTEngine("renderer", path, precision="fp32", max_batch=2, cache_dir=tmp_path)
    assert again.engine_path == engine.engine_path
    assert again.engine_path.stat().st_mtime_ns == built_at
    single = again.run({n: a[:1] for n, a in feed.items()})
    diff = np.abs(single["frame"].astype(np.float32) - want["frame"][:1].astype(np.float32))
    assert diff.max() <= 2.0
