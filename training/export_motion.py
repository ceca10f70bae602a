"""Export the motion teacher and student to ONNX, check them for TensorRT, test parity.

    python -m training.export_motion [--teacher runs/motion/teacher.pt]
                                     [--student runs/motion/student.pt] [--out assets/models]
    python -m training.export_motion --pipeline --corpus CORPUS [--tiny]   # all three stages

Each model becomes two graphs (contracts/motion_spec.py): the encoder, run once per hop, and
the denoiser step, run once per sampler step by engines/sampler.py. Keeping the loop outside
the graphs means the step count and the sampler are data at run time (the same student file
serves 1-4 steps, the teacher any schedule, Euler or Heun), the audio encoder is not
repeated per step, and an onnxruntime call costs ~20 us, small beside the step itself.
Opset 17, batch dimension dynamic, every other dimension static.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from contracts import motion_spec as spec
from export import trt_compat
from export.motion_model import Checkpoint, DenoiserGraph, EncoderGraph, parameter_count
from export.onnx_export import DEFAULT_MODELS_DIR, export_graph, file_digest
from training.distill import DistillConfig, distill
from training.train_teacher import RUNS_DIR, TeacherConfig, train_teacher

PARITY_TOLERANCE = 1e-5  # of each output's largest magnitude (at least 1)


@dataclass
class ExportConfig:
    teacher: Path = RUNS_DIR / "teacher.pt"
    student: Path = RUNS_DIR / "student.pt"
    out: Path = DEFAULT_MODELS_DIR
    parity_batch: int = 3
    seed: int = 0


def example_inputs(batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Inputs of both graphs with plausible ranges (also the parity test's inputs)."""
    gen = torch.Generator().manual_seed(seed)
    return {
        "mel": torch.randn(batch, spec.MEL_FRAMES, spec.N_MELS, generator=gen),
        "history": 0.1 * torch.rand(batch, spec.HISTORY_FRAMES, spec.DIM, generator=gen),
        "noise": torch.randn(batch, spec.HOP_FRAMES, spec.DIM, generator=gen),
        "style": torch.rand(batch, spec.STYLE_DIM, generator=gen),
        "x": 0.1 * torch.randn(batch, spec.HOP_FRAMES, spec.DIM, generator=gen),
        "t": torch.rand(batch, 1, generator=gen),
        "s": torch.rand(batch, 1, generator=gen) * 0.5,
    }


def export_graphs(checkpoint: Checkpoint, which: str, out_dir: Path) -> tuple[Path, Path]:
    """Write ``motion_<which>_encoder.onnx`` and ``motion_<which>_denoiser.onnx``."""
    model = checkpoint.model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = tuple(out_dir / name for name in spec.graph_files(which))
    inputs = example_inputs(1)
    with torch.no_grad():
        cond, _ = model.encode(inputs["mel"], inputs["history"], inputs["noise"], inputs["style"])
        inputs["cond"] = cond
        graphs = (
            (EncoderGraph(model), spec.ENCODER_INPUTS, spec.ENCODER_OUTPUTS, paths[0]),
            (DenoiserGraph(model), spec.DENOISER_INPUTS, spec.DENOISER_OUTPUTS, paths[1]),
        )
        for module, input_names, output_names, path in graphs:
            export_graph(module, inputs, path, input_names, output_names)
    return paths  # type: ignore[return-value]


def parity(checkpoint: Checkpoint, paths: tuple[Path, Path], batch: int, seed: int) -> float:
    """Largest |torch - onnxruntime| over both graphs' outputs on shared inputs, relative to
    each output's largest magnitude (or to 1 where that is smaller)."""
    import onnxruntime as ort

    model = checkpoint.model.eval()
    inputs = example_inputs(batch, seed)
    with torch.no_grad():
        cond, x_init = model.encode(
            inputs["mel"], inputs["history"], inputs["noise"], inputs["style"]
        )
        inputs["cond"] = cond
        velocity = model.velocity(cond, inputs["x"], inputs["t"], inputs["s"])
    expected = ({"cond": cond, "x_init": x_init}, {"velocity": velocity})
    worst = 0.0
    for path, want in zip(paths, expected, strict=True):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        got = session.run(list(want), {n: inputs[n].numpy() for n in names})
        for value, reference in zip(got, want.values(), strict=True):
            scale = max(1.0, float(reference.abs().max()))
            worst = max(worst, float(np.abs(value - reference.numpy()).max()) / scale)
    return worst


def export_motion(config: ExportConfig) -> dict:
    """Export both models; raise if a graph fails the TensorRT check or the parity test."""
    report: dict = {}
    for which, checkpoint_path in (("teacher", config.teacher), ("student", config.student)):
        checkpoint = Checkpoint.load(checkpoint_path)
        if checkpoint.kind != which:
            raise ValueError(f"{checkpoint_path} holds a {checkpoint.kind}, not a {which}")
        paths = export_graphs(checkpoint, which, config.out)
        problems = [p for path in paths for p in trt_compat.check_graph(path)]
        if problems:
            raise RuntimeError(f"{which} graphs would not build on TensorRT: {problems}")
        error = parity(checkpoint, paths, config.parity_batch, config.seed)
        if error > PARITY_TOLERANCE:
            raise RuntimeError(f"{which}: onnxruntime differs from torch by {error:.2e} (relative)")
        report[which] = {
            "files": {
                p.name: {"kB": round(p.stat().st_size / 1e3), "sha256": file_digest(p)}
                for p in paths
            },
            "parameters": parameter_count(checkpoint.model),
            "parity_max_rel": error,
        }
    return report


def teacher_config(
    corpus: Path, work: Path, tiny: bool = False, seed: int = 0, steps: int | None = None
) -> TeacherConfig:
    """The teacher run of ``emote train`` (the shipped one, or the CI-sized ``tiny`` one)."""
    out = work / "teacher.pt"
    config = (
        TeacherConfig.tiny(corpus, out, seed) if tiny else TeacherConfig(corpus, out, seed=seed)
    )
    if steps is not None:
        config.steps = steps
    return config


def distill_config(
    corpus: Path, work: Path, tiny: bool = False, seed: int = 0, steps: int | None = None
) -> DistillConfig:
    """The distillation run of ``emote train``, reading the teacher in ``work``."""
    teacher, out = work / "teacher.pt", work / "student.pt"
    config = (
        DistillConfig.tiny(corpus, teacher, out, seed)
        if tiny
        else DistillConfig(corpus, teacher, out, seed=seed)
    )
    if steps is not None:
        config.steps = steps
    return config


def pipeline(corpus: Path, work: Path, out: Path, tiny: bool = False, seed: int = 0) -> dict:
    """Teacher training, distillation and export in one call (checkpoints under ``work``)."""
    train_teacher(teacher_config(corpus, work, tiny, seed))
    distill(distill_config(corpus, work, tiny, seed))
    return export_motion(ExportConfig(work / "teacher.pt", work / "student.pt", out, seed=seed))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export the motion models to ONNX")
    parser.add_argument("--teacher", type=Path, default=RUNS_DIR / "teacher.pt")
    parser.add_argument("--student", type=Path, default=RUNS_DIR / "student.pt")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODELS_DIR)
    parser.add_argument("--pipeline", action="store_true", help="train, distil, then export")
    parser.add_argument("--corpus", type=Path, help="with --pipeline")
    parser.add_argument("--work", type=Path, default=RUNS_DIR, help="with --pipeline")
    parser.add_argument("--tiny", action="store_true", help="with --pipeline: CI preset")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.pipeline:
        if args.corpus is None:
            parser.error("--pipeline needs --corpus")
        report = pipeline(args.corpus, args.work, args.out, args.tiny, args.seed)
    else:
        report = export_motion(ExportConfig(args.teacher, args.student, args.out, seed=args.seed))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
