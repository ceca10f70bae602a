"""Check that an ONNX graph only uses what TensorRT 10's ONNX parser can build, without TensorRT.

The design's Models contract ("only operators that TensorRT supports ... No custom plugins") is
enforced here: tests/test_trt_compat.py runs this over every shipped graph, so a graph that
needs a plugin, a too-new opset or an unsupported operator mode fails CI on machines without a
GPU. Building the engine on a GPU (engines.tensorrt_engine) remains the final word.

    python -m export.trt_compat [model.onnx ...]    # default: assets/models/*.onnx
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper

from contracts.paths import MODELS_DIR

DEFAULT_MODELS_DIR = MODELS_DIR

# What the "tensorrt>=10" requirement (pyproject's gpu extra) guarantees: the oldest release,
# 10.0, parses opsets 9 to 20 (onnx-tensorrt docs/operators.md for 10.0; 10.15 reads 9 to 24).
TENSORRT_BASELINE = "10.0"
OPSET_RANGE = (9, 20)
ONNX_DOMAINS = frozenset({"", "ai.onnx"})

_FLOATS = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16})
_NUMERIC = _FLOATS | {TensorProto.INT32, TensorProto.INT64}
_ANY = _NUMERIC | {TensorProto.BOOL}
_BOOL = frozenset({TensorProto.BOOL})
_CAST = _ANY | {TensorProto.UINT8}
# TensorRT's DataType docs: UINT8 is for network inputs and outputs; it converts only to and
# from FLOAT and FLOAT16, and no other layer takes it (hence its absence from the sets above).
_UINT8_PEERS = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16})


def _types(types: frozenset[int], *ops: str) -> dict[str, frozenset[int] | None]:
    return dict.fromkeys(ops, types)


# The "Y" rows of onnx-tensorrt's docs/operators.md (Operator Support Matrix, TensorRT 10.15,
# https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md), each with its "Supported
# Types" column, which this checker applies to the node's first input. Left out, because
# onnx-tensorrt's docs/Changelog.md adds them after TENSORRT_BASELINE: DeformConv (10.1),
# BlackmanWindow, HammingWindow, HannWindow (10.4), STFT (10.5), Attention (10.14),
# RotaryEmbedding, RMSNormalization, TensorScatter (10.15). Pow is narrowed to floats (integer
# Pow came in 10.8 and 10.12). None: types not checked (quantized inputs).
OPERATOR_TYPES: dict[str, frozenset[int] | None] = {
    **_types(
        _FLOATS,
        *("Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "AveragePool"),
        *("BatchNormalization", "Ceil", "Celu", "Clip", "Conv", "ConvTranspose", "Cos"),
        *("Cosh", "CumSum", "Dropout", "Einsum", "Elu", "Erf", "Exp", "Floor", "Gemm"),
        *("GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool", "GroupNormalization", "GRU"),
        *("HardSigmoid", "HardSwish", "Hardmax", "ImageScaler", "InstanceNormalization"),
        *("IsInf", "LayerNormalization", "LeakyRelu", "Log", "LogSoftmax", "LRN", "LSTM"),
        *("LpNormalization", "LpPool", "MatMul", "MaxPool", "MeanVarianceNormalization"),
        *("ParametricSoftplus", "Pow", "PRelu", "QuantizeLinear", "RandomNormal"),
        *("RandomNormalLike", "RandomUniform", "RandomUniformLike", "Reciprocal", "Resize"),
        *("RNN", "Round", "ScaledTanh", "Scan", "Selu", "Sigmoid", "Sin", "Sinh", "Softmax"),
        *("Softplus", "Softsign", "Sqrt", "Tan", "Tanh", "ThresholdedRelu", "Upsample"),
    ),
    **_types(
        _NUMERIC,
        *("Abs", "Add", "ArgMax", "ArgMin", "DepthToSpace", "Div", "Equal", "Gelu"),
        *("Greater", "GreaterOrEqual", "IsNaN", "Less", "LessOrEqual", "Max", "Mean", "Min"),
        *("Mod", "Mul", "Neg", "Pad", "Range", "ReduceL1", "ReduceL2", "ReduceLogSum"),
        *("ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd"),
        *("ReduceSum", "ReduceSumSquare", "Relu", "Scatter", "ScatterElements", "ScatterND"),
        *("Shrink", "Sign", "SpaceToDepth", "Sub", "Sum", "TopK"),
    ),
    **_types(
        _ANY,
        *("Concat", "ConstantOfShape", "Expand", "EyeLike", "Flatten", "Gather"),
        *("GatherElements", "GatherND", "Identity", "If", "Loop", "OneHot", "Reshape"),
        *("ReverseSequence", "Shape", "Size", "Slice", "Split", "Squeeze", "Tile"),
        *("Transpose", "Trilu", "Unsqueeze", "Where"),
    ),
    **_types(
        frozenset({TensorProto.FLOAT, TensorProto.FLOAT16}),
        *("GridSample", "Mish", "NonMaxSuppression", "NonZero", "RoiAlign"),
    ),
    **_types(_BOOL, "And", "Not", "Or", "Xor"),
    **_types(_CAST, "Cast", "CastLike"),
    "Constant": None,
    "DequantizeLinear": None,
}
SUPPORTED_OPS: frozenset[str] = frozenset(OPERATOR_TYPES)

# Inputs TensorRT 10.0 needs at build time (operators.md "must be an initializer / build-time
# constant"; the Changelog lifts some later: Slice axes 10.3, Pad axes 10.4, Squeeze and
# Unsqueeze axes 10.7, CumSum axis 10.8).
_REDUCE_OPS = tuple(o for o in OPERATOR_TYPES if o.startswith("Reduce"))
CONSTANT_INPUTS: dict[str, tuple[int, str]] = {
    "Slice": (3, "axes"),
    "Pad": (3, "axes"),
    "Squeeze": (1, "axes"),
    "Unsqueeze": (1, "axes"),
    "CumSum": (1, "axis"),
    "OneHot": (1, "depth"),
    "Dropout": (2, "training_mode"),
    **dict.fromkeys(_REDUCE_OPS, (1, "axes")),
}

# operators.md's Resize restrictions.
RESIZE_COORDINATE_MODES = frozenset(
    {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
)
RESIZE_MODES = frozenset({"nearest", "linear"})
RESIZE_NEAREST_MODES = frozenset({"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"})


@dataclass(frozen=True)
class GraphReport:
    path: Path
    opset: int | None
    ops: Counter[str]
    problems: tuple[str, ...]  # would stop TensorRT from building the graph
    notes: tuple[str, ...]  # worth knowing, builds anyway


def check_graph(path: Path | str) -> list[str]:
    """Problems that would stop TensorRT (>= TENSORRT_BASELINE) from building ``path``."""
    return list(inspect_graph(path).problems)


def inspect_graph(path: Path | str) -> GraphReport:
    path = Path(path)
    model = onnx.load(str(path))
    problems: list[str] = []
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        problems.append(f"onnx.checker: {_first_line(exc)}")
    try:
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except Exception as exc:  # onnx raises InferenceError and a few others; all mean "broken"
        problems.append(f"shape inference: {_first_line(exc)}")

    opset = next((o.version for o in model.opset_import if o.domain in ONNX_DOMAINS), None)
    low, high = OPSET_RANGE
    if opset is None:
        problems.append("no ai.onnx opset import")
    elif not low <= opset <= high:
        problems.append(f"opset {opset} outside TensorRT {TENSORRT_BASELINE}'s {low}-{high}")

    types, ranks, constants = _tensor_facts(model.graph)
    nodes = list(_nodes(model.graph))
    for node in nodes:
        problems.extend(_node_problems(node, types, ranks, constants))

    notes: list[str] = []
    int64 = sum(1 for t in types.values() if t == TensorProto.INT64)
    if int64:
        notes.append(
            f"{int64} INT64 tensors: native since TensorRT 9 (older parsers narrowed them to "
            "INT32, clamping); keep indices and shapes within INT32 anyway"
        )
    doubles = sum(1 for t in types.values() if t == TensorProto.DOUBLE)
    if doubles:
        notes.append(f"{doubles} DOUBLE tensors: TensorRT casts them down to FLOAT")
    ops = Counter(node.op_type for node in nodes)
    return GraphReport(path, opset, ops, tuple(problems), tuple(notes))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node, including those in If/Loop/Scan bodies."""
    for node in graph.node:
        yield node
        for sub in _subgraphs(node):
            yield from _nodes(sub)


def _subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


def _tensor_facts(
    graph: onnx.GraphProto,
) -> tuple[dict[str, int], dict[str, int], set[str]]:
    """Element types and ranks of named values, and the names that are build-time constants."""
    types: dict[str, int] = {}
    ranks: dict[str, int] = {}
    constants: set[str] = set()

    def visit(g: onnx.GraphProto) -> None:
        for value in (*g.input, *g.output, *g.value_info):
            tensor = value.type.tensor_type
            if tensor.elem_type:
                types[value.name] = tensor.elem_type
            if tensor.HasField("shape"):
                ranks[value.name] = len(tensor.shape.dim)
        for init in g.initializer:
            types[init.name] = init.data_type
            ranks[init.name] = len(init.dims)
            constants.add(init.name)
        for node in g.node:
            if node.op_type == "Constant" and node.domain in ONNX_DOMAINS:
                constants.update(node.output)
            for sub in _subgraphs(node):
                visit(sub)

    visit(graph)
    return types, ranks, constants


def _node_problems(
    node: onnx.NodeProto, types: dict[str, int], ranks: dict[str, int], constants: set[str]
) -> Iterator[str]:
    where = f"{node.op_type} {node.name or node.output[0]!r}"
    if node.domain not in ONNX_DOMAINS:
        yield f"{where}: custom domain {node.domain!r} (TensorRT would need a plugin)"
        return
    if node.op_type not in SUPPORTED_OPS:
        yield f"{where}: operator not supported by TensorRT {TENSORRT_BASELINE}"
        return
    attrs: dict[str, Any] = {a.name: helper.get_attribute_value(a) for a in node.attribute}

    allowed = OPERATOR_TYPES[node.op_type]
    first = node.input[0] if node.input else ""
    if (
        allowed is not None
        and first in types
        and types[first] not in allowed | {TensorProto.DOUBLE}
    ):
        yield f"{where}: input type {_type_name(types[first])} not supported"

    if node.op_type in CONSTANT_INPUTS:
        index, name = CONSTANT_INPUTS[node.op_type]
        if len(node.input) > index and node.input[index] and node.input[index] not in constants:
            yield f"{where}: input {name!r} must be an initializer or Constant"

    if node.op_type in ("Cast", "CastLike") and "to" in attrs:
        target = attrs["to"]
        if target not in _CAST | {TensorProto.DOUBLE}:
            yield f"{where}: cast to {_type_name(target)} not supported"
        source = types.get(first)
        if TensorProto.UINT8 in (source, target) and not {source, target} & _UINT8_PEERS:
            yield f"{where}: UINT8 converts only to or from FLOAT/FLOAT16"
    elif node.op_type == "If" and first not in constants:
        then_branch, else_branch = attrs["then_branch"], attrs["else_branch"]
        for a, b in zip(then_branch.output, else_branch.output, strict=False):
            rank_a, rank_b = _rank(a), _rank(b)
            if rank_a is not None and rank_b is not None and rank_a != rank_b:
                yield f"{where}: branch outputs differ in rank ({rank_a} vs {rank_b})"
            if a.name == b.name:
                yield f"{where}: branch outputs share the name {a.name!r}"
    elif node.op_type == "Constant":
        for unsupported in ("sparse_value", "value_string", "value_strings"):
            if unsupported in attrs:
                yield f"{where}: attribute {unsupported!r} not supported"
    elif node.op_type == "GridSample":
        if first in ranks and ranks[first] != 4:
            yield f"{where}: input must be 4D, got rank {ranks[first]}"
    elif node.op_type == "Resize":
        yield from _resize_problems(where, attrs, ranks.get(first))


def _resize_problems(where: str, attrs: dict[str, Any], rank: int | None) -> Iterator[str]:
    def text(name: str, default: str) -> str:
        value = attrs.get(name, default)
        return value.decode() if isinstance(value, bytes) else str(value)

    coordinate = text("coordinate_transformation_mode", "half_pixel")
    if coordinate not in RESIZE_COORDINATE_MODES:
        yield f"{where}: coordinate_transformation_mode {coordinate!r} not supported"
    mode = text("mode", "nearest")
    if mode not in RESIZE_MODES:
        yield f"{where}: mode {mode!r} not supported"
    nearest = text("nearest_mode", "round_prefer_floor")
    if mode == "nearest" and nearest not in RESIZE_NEAREST_MODES:
        yield f"{where}: nearest_mode {nearest!r} not supported"
    if text("keep_aspect_ratio_policy", "stretch") != "stretch":
        yield f"{where}: keep_aspect_ratio_policy must be 'stretch'"
    if attrs.get("antialias", 0):
        yield f"{where}: antialias not supported"
    axes = attrs.get("axes")
    if axes is not None and (
        list(axes) != list(range(len(axes))) or (rank is not None and len(axes) != rank)
    ):
        yield f"{where}: axes must be 0..rank-1 in order, got {list(axes)}"


def _rank(value: onnx.ValueInfoProto) -> int | None:
    tensor = value.type.tensor_type
    return len(tensor.shape.dim) if tensor.HasField("shape") else None


def _type_name(elem_type: int) -> str:
    return TensorProto.DataType.Name(elem_type)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = args.paths or sorted(DEFAULT_MODELS_DIR.glob("*.onnx"))
    if not paths:
        print(f"no ONNX files in {DEFAULT_MODELS_DIR}", file=sys.stderr)
        return 1
    failed = False
    for path in paths:
        report = inspect_graph(path)
        print(f"{path}: opset {report.opset}, {sum(report.ops.values())} nodes")
        print("  ops: " + ", ".join(f"{op} x{n}" for op, n in sorted(report.ops.items())))
        for note in report.notes:
            print(f"  note: {note}")
        if report.problems:
            failed = True
            print(f"  PROBLEMS for TensorRT {TENSORRT_BASELINE}:")
            for problem in report.problems:
                print(f"    - {problem}")
        else:
            print(f"  OK for TensorRT >= {TENSORRT_BASELINE}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
