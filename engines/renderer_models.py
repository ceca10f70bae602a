"""Which renderer graph serves a frame size and an engine.

The renderer is exported per frame size (static shapes: TensorRT-friendly, and the windows are
static slices), twice: ``renderer.onnx`` renders whole frames (GPUs, the torch reference) and
``renderer_split.onnx`` leaves the full-frame sampling to OpenCV (CPU onnxruntime, ~2x
cheaper; see engines.compose). 512 is shipped in assets/models; other sizes are exported on
first use into the cache when torch is installed.
"""

from __future__ import annotations

import os
from pathlib import Path

from engines.engine import MODELS, MODELS_DIR, Engine, EngineError, create_engine

SHIPPED_SIZE = 512
MIN_SIZE, MAX_SIZE = 128, 1024
RENDERERS = ("renderer", "renderer_split")


def renderer_model_for_size(size: int, cache_root: Path | None = None) -> Path:
    """Directory holding both renderer graphs for ``size`` x ``size`` frames (exports of
    other sizes than the shipped one live under ``cache_root``/models/<size>)."""
    if not MIN_SIZE <= size <= MAX_SIZE or size % 16:
        raise EngineError(f"--size must be a multiple of 16 in {MIN_SIZE}..{MAX_SIZE}, got {size}")
    if size == SHIPPED_SIZE:
        return MODELS_DIR
    root = cache_root or Path(os.environ.get("EMOTE_CACHE_DIR", Path.home() / ".cache" / "emote"))
    cache = root / "models" / str(size)
    if all((cache / MODELS[name].onnx_file).is_file() for name in RENDERERS):
        return cache
    try:
        from export.onnx_export import export_renderers
    except ImportError as exc:
        raise EngineError(
            f"size {size} needs a renderer export, which needs torch (pip install '.[train]'); "
            f"the shipped size is {SHIPPED_SIZE}"
        ) from exc
    export_renderers(cache, size)
    return cache


def renderer_name(backend: str, device: str) -> str:
    """The split graph where OpenCV finishes frames cheaper than the graph (CPU
    onnxruntime); the whole-frame graph everywhere else."""
    return "renderer_split" if (backend, device) == ("onnxruntime", "cpu") else "renderer"


def create_renderer(
    backend: str = "onnxruntime",
    device: str = "cpu",
    threads: int | None = None,
    models_dir: Path | None = None,
) -> Engine:
    """The renderer engine for ``backend`` and ``device`` (engines.offline.FrameRenderer
    takes either graph)."""
    return create_engine(renderer_name(backend, device), backend, device, threads, models_dir)
