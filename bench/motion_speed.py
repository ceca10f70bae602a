"""Learned motion speed: milliseconds per hop on one core with onnxruntime.

    python -m bench.motion_speed [--models assets/models] [--random] [--json OUT.json]

Times ``LearnedMotionGenerator.generate`` for one hop as the stream calls it (log-mel of the
window, the encoder, every sampler step, clipping): the student with 1, 2 and 4 steps and
the teacher with its default Heun schedule, for a full hop (2 frames) and a live hop
(1 frame, the window's end read as zeros). onnxruntime runs one thread (one core of
compute; run it on an otherwise idle machine). ``--random`` exports untrained graphs of the shipped
architecture to a temporary directory (speed does not depend on the weights), so the
numbers can be measured before any training.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from contracts import motion_spec as spec
from contracts.clock import SAMPLES_PER_FRAME
from contracts.paths import MODELS_DIR
from engines.learned_motion import LearnedMotionGenerator

CASES = (("student", 1), ("student", 2), ("student", 4), ("teacher", 24))


def random_models(directory: Path) -> Path:
    """Export untrained teacher and student graphs (needs torch)."""
    from dataclasses import replace

    from export.motion_model import Checkpoint, MotionModel, MotionModelConfig
    from training.export_motion import export_graphs

    for which in ("teacher", "student"):
        config = replace(MotionModelConfig(), flow_map=which == "student")
        export_graphs(Checkpoint(MotionModel(config).eval(), which), which, directory)
    return directory


def time_hop(generator: LearnedMotionGenerator, frames: int, repeats: int) -> float:
    """Median milliseconds of one ``generate`` call for ``frames`` frames, over a stream of
    consecutive hops through one long signal (as a session calls it: each window moves by
    ``frames`` frames, so features of the overlap are reused where the samples are unchanged)."""
    rng = np.random.default_rng(0)
    samples = generator.past_samples + frames * SAMPLES_PER_FRAME + generator.lookahead_samples
    signal = 0.1 * rng.standard_normal(samples + (repeats + 5) * frames * SAMPLES_PER_FRAME)
    signal = signal.astype(np.float32)
    history = np.zeros((generator.history_frames, spec.DIM), np.float32)
    times = []
    for k in range(repeats + 5):  # the first 5: warm-up
        offset = k * frames * SAMPLES_PER_FRAME
        start = time.perf_counter()
        generator.generate(signal[offset : offset + samples], history, k * frames, frames)
        if k >= 5:
            times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def model_sizes(models_dir: Path) -> dict[str, dict[str, float]]:
    import onnx
    from onnx import numpy_helper

    sizes = {}
    for which in spec.WHICH:
        for name in spec.graph_files(which):
            path = models_dir / name
            graph = onnx.load(str(path)).graph
            params = sum(numpy_helper.to_array(t).size for t in graph.initializer)
            sizes[name] = {"kB": round(path.stat().st_size / 1e3), "parameters": int(params)}
    return sizes


def measure(models_dir: Path, repeats: int) -> dict:
    results: dict = {"per_hop_ms": {}, "hop_frames": spec.HOP_FRAMES}
    for which, steps in CASES:
        generator = LearnedMotionGenerator(which, steps, models_dir=models_dir, threads=1)
        name = f"{which} {generator.sampler_name} {steps} steps"
        results["per_hop_ms"][name] = {
            "full_hop_2_frames": round(time_hop(generator, spec.HOP_FRAMES, repeats), 3),
            "live_hop_1_frame": round(time_hop(generator, 1, repeats), 3),
        }
    results["models"] = model_sizes(models_dir)
    results["total_kB"] = sum(m["kB"] for m in results["models"].values())
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=MODELS_DIR)
    parser.add_argument("--random", action="store_true", help="time untrained graphs")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        models = random_models(Path(tmp)) if args.random else args.models
        results = measure(models, args.repeats)
    results["weights"] = "random (untrained)" if args.random else str(args.models)
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
