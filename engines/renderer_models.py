"""Which renderer graph serves a frame size.

The renderer is exported per frame size (static shapes: TensorRT-friendly, and the mouth
window is a static slice). 512 is shipped in assets/models; other sizes are exported on first
use into the cache when torch is installed.
"""

from __future__ import annotations

import os
from pathlib import Path

from engines.engine import MODELS_DIR, EngineError

SHIPPED_SIZE = 512
MIN_SIZE, MAX_SIZE = 128, 1024


def renderer_model_for_size(size: int, cache_root: Path | None = None) -> Path:
    """Directory holding ``renderer.onnx`` for ``size`` x ``size`` frames (exports of other
    sizes than the shipped one live under ``cache_root``/models/<size>)."""
    if not MIN_SIZE <= size <= MAX_SIZE or size % 16:
        raise EngineError(f"--size must be a multiple of 16 in {MIN_SIZE}..{MAX_SIZE}, got {size}")
    if size == SHIPPED_SIZE:
        return MODELS_DIR
    root = cache_root or Path(os.environ.get("EMOTE_CACHE_DIR", Path.home() / ".cache" / "emote"))
    cache = root / "models" / str(size)
    if (cache / "renderer.onnx").is_file():
        return cache
    try:
        from export.onnx_export import export_renderer
    except ImportError as exc:
        raise EngineError(
            f"size {size} needs a renderer export, which needs torch (pip install '.[train]'); "
            f"the shipped size is {SHIPPED_SIZE}"
        ) from exc
    export_renderer(cache / "renderer.onnx", size)
    return cache
