"""Export the torch models to ONNX (opset 17, TensorRT-compatible operators only)."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import torch

from contracts import motion_frame as mf
from contracts.paths import MODELS_DIR
from contracts.render_spec import (
    EYE_CHANNELS,
    GRID,
    IMAGE_CHANNELS,
    INPUT_NAMES,
    JAW_MOUTH_CHANNELS,
    NUM_CONTROLS,
    OUTPUT_NAMES,
    SKULL_MOUTH_CHANNELS,
    SPLIT_OUTPUT_NAMES,
)
from export.renderer import Renderer, split_renderer

OPSET = 17
DEFAULT_MODELS_DIR = MODELS_DIR


def renderer_example_inputs(
    size: int = 512, num_controls: int = NUM_CONTROLS, grid: int = GRID
) -> dict[str, torch.Tensor]:
    """Shape-correct dummy inputs (values are irrelevant for tracing)."""
    gen = torch.Generator().manual_seed(0)
    k = mf.NUM_BLENDSHAPES + len(mf.GAZE)
    controls = torch.rand(1, num_controls, 3, generator=gen) * 1.6 - 0.8
    return {
        "image_quads": torch.rand(1, size, size, 4 * len(IMAGE_CHANNELS), generator=gen) * 255,
        "eye_quads": torch.rand(1, size, size, 4 * len(EYE_CHANNELS), generator=gen).half(),
        "skull_mouth_quads": torch.rand(
            1, size, size, 4 * len(SKULL_MOUTH_CHANNELS), generator=gen
        ).half(),
        "jaw_mouth_quads": torch.rand(
            1, size, size, 4 * len(JAW_MOUTH_CHANNELS), generator=gen
        ).half(),
        "controls": controls,
        "rest": controls.clone(),
        "layer_weight": torch.ones(1, 2, num_controls),
        "basis": torch.zeros(1, k, num_controls, 3),
        "head_weight": torch.ones(1, num_controls),
        "pivot": torch.zeros(1, 3),
        "face_size": torch.full((1, 1), 0.5),
        "warp": torch.zeros(1, 2, grid * grid, num_controls),
        "colors": torch.rand(1, 4, 3, generator=gen) * 255,
        "motion": torch.zeros(1, mf.DIM),
    }


def export_renderer(path: Path, size: int = 512, split: bool = False) -> Path:
    """Export the renderer for ``size`` x ``size`` frames with a dynamic batch; ``split``:
    the graph without the full-frame sampling (engines.compose finishes its frames).

    The size is static (the windows are static slices): other sizes are other files."""
    model = (split_renderer() if split else Renderer()).eval()
    outputs = SPLIT_OUTPUT_NAMES if split else OUTPUT_NAMES
    with torch.no_grad():
        export_graph(model, renderer_example_inputs(size), path, INPUT_NAMES, outputs)
    return path


def export_graph(
    module: torch.nn.Module,
    inputs: dict[str, torch.Tensor],
    path: Path,
    input_names: tuple[str, ...],
    output_names: tuple[str, ...],
) -> None:
    """Trace ``module`` on ``inputs`` to ONNX at ``path``: opset ``OPSET``, every input and
    output with a dynamic batch axis (0), constants folded (the settings of every graph the
    project ships)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        module,
        tuple(inputs[name] for name in input_names),
        str(path),
        input_names=list(input_names),
        output_names=list(output_names),
        dynamic_axes={name: {0: "batch"} for name in (*input_names, *output_names)},
        opset_version=OPSET,
        dynamo=False,
        do_constant_folding=True,
    )


def export_renderers(out_dir: Path, size: int = 512) -> list[Path]:
    """Both renderer graphs for ``size``: renderer.onnx (whole frames) and
    renderer_split.onnx."""
    return [
        export_renderer(out_dir / "renderer.onnx", size),
        export_renderer(out_dir / "renderer_split.onnx", size, split=True),
    ]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export the models to ONNX")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODELS_DIR)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args(argv)
    for path in export_renderers(args.out, args.size):
        print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB, sha256 {file_digest(path)})")


if __name__ == "__main__":
    main()
