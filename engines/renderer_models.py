"""Which renderer graph serves a frame size and an engine.

The renderer is exported per frame size (static shapes: TensorRT-friendly, and the windows are
static slices), twice: ``renderer.onnx`` renders whole frames (GPUs, the torch reference) and
``renderer_split.onnx`` leaves the full-frame sampling to OpenCV (CPU onnxruntime, ~2x
cheaper; see engines.compose). 512 is shipped in assets/models; other sizes are exported
into the cache by the command line (torch), never by the runtime.
"""

from __future__ import annotations

from pathlib import Path

from contracts import settings
from contracts.paths import MODELS_DIR
from engines.backends import create_engine
from engines.engine import MODELS, Engine, EngineError

SHIPPED_SIZE = 512
MIN_SIZE, MAX_SIZE = 128, 1024
RENDERERS = ("renderer", "renderer_split")


class RendererNotExported(EngineError):
    """No renderer graphs for this frame size yet: exporting them needs torch, which is the
    command line's job (``emote render --size`` exports on first use; ``emote export``)."""

    def __init__(self, size: int, folder: Path) -> None:
        super().__init__(
            f"size {size} needs a renderer export, which needs torch (pip install '.[train]'); "
            f"the shipped size is {SHIPPED_SIZE}"
        )
        self.size = size
        self.folder = folder


def renderer_export_dir(size: int, cache_root: Path | None = None) -> Path:
    """Where the renderer graphs of a size other than the shipped one are exported:
    ``<cache>/models/<size>`` (cache: ``cache_root`` or $EMOTE_CACHE_DIR)."""
    return (cache_root or settings.current().cache_dir) / "models" / str(size)


def renderer_model_for_size(size: int, cache_root: Path | None = None) -> Path:
    """Directory holding both renderer graphs for ``size`` x ``size`` frames: the shipped
    assets/models for 512, else the export under ``cache_root`` (RendererNotExported when
    there is none yet)."""
    if not MIN_SIZE <= size <= MAX_SIZE or size % 16:
        raise EngineError(f"--size must be a multiple of 16 in {MIN_SIZE}..{MAX_SIZE}, got {size}")
    if size == SHIPPED_SIZE:
        return MODELS_DIR
    folder = renderer_export_dir(size, cache_root)
    if all((folder / MODELS[name].onnx_file).is_file() for name in RENDERERS):
        return folder
    raise RendererNotExported(size, folder)


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
    """The renderer engine for ``backend`` and ``device`` (engines.frame_renderer.FrameRenderer
    takes either graph)."""
    return create_engine(renderer_name(backend, device), backend, device, threads, models_dir)
