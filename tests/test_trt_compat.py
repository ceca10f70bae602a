"""The TensorRT gate: every shipped graph builds on TensorRT 10, checked without TensorRT."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from export import trt_compat
from export.trt_compat import DEFAULT_MODELS_DIR, check_graph

SHIPPED = sorted(DEFAULT_MODELS_DIR.glob("*.onnx"))


def test_models_are_shipped() -> None:
    assert SHIPPED, f"no ONNX graphs in {DEFAULT_MODELS_DIR}"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_graph_builds_on_tensorrt(path: Path) -> None:
    problems = check_graph(path)
    assert problems == [], "\n".join(problems)


def _tensor(name: str, elem_type: int = TensorProto.FLOAT, shape: tuple[int, ...] = (2, 3)):
    return helper.make_tensor_value_info(name, elem_type, list(shape))


def _save(
    tmp_path: Path,
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto] | None = None,
    outputs: list[onnx.ValueInfoProto] | None = None,
    opset: int = 17,
    initializers: list[onnx.TensorProto] | None = None,
    extra_domains: tuple[str, ...] = (),
) -> Path:
    graph = helper.make_graph(
        nodes,
        "g",
        inputs if inputs is not None else [_tensor("x")],
        outputs if outputs is not None else [_tensor("y")],
        initializer=initializers or [],
    )
    imports = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, 1) for d in extra_domains)]
    model = helper.make_model(graph, opset_imports=imports)
    path = tmp_path / "g.onnx"
    onnx.save(model, str(path))
    return path


def test_plain_graph_passes(tmp_path: Path) -> None:
    path = _save(tmp_path, [helper.make_node("Add", ["x", "x"], ["y"])])
    assert check_graph(path) == []


def test_custom_domain_op_is_a_problem(tmp_path: Path) -> None:
    node = helper.make_node("FusedWarp", ["x"], ["y"], domain="com.example")
    path = _save(tmp_path, [node], extra_domains=("com.example",))
    assert any("custom domain 'com.example'" in p for p in check_graph(path))


def test_op_absent_from_tensorrt_list_is_a_problem(tmp_path: Path) -> None:
    # Det is a valid ONNX op that onnx-tensorrt's operators.md marks unsupported.
    node = helper.make_node("Det", ["x"], ["y"])
    path = _save(tmp_path, [node], [_tensor("x", shape=(3, 3))], [_tensor("y", shape=())])
    problems = check_graph(path)
    assert any(p.startswith("Det ") and "not supported" in p for p in problems), problems


def test_op_newer_than_tensorrt_baseline_is_a_problem(tmp_path: Path) -> None:
    # HannWindow is in operators.md for 10.15, but the Changelog adds it in 10.4.
    size = helper.make_tensor("size", TensorProto.INT64, [], [8])
    node = helper.make_node("HannWindow", ["size"], ["y"])
    path = _save(tmp_path, [node], [], [_tensor("y", shape=(8,))], initializers=[size])
    assert any(p.startswith("HannWindow ") for p in check_graph(path))


@pytest.mark.parametrize("opset", [8, 21])
def test_opset_outside_tensorrt_range_is_a_problem(tmp_path: Path, opset: int) -> None:
    path = _save(tmp_path, [helper.make_node("Add", ["x", "x"], ["y"])], opset=opset)
    assert any(p.startswith(f"opset {opset} outside") for p in check_graph(path))


def test_unsupported_input_type_is_a_problem(tmp_path: Path) -> None:
    node = helper.make_node("Abs", ["x"], ["y"])
    int8 = [_tensor("x", TensorProto.INT8)], [_tensor("y", TensorProto.INT8)]
    path = _save(tmp_path, [node], *int8)
    assert any("input type INT8 not supported" in p for p in check_graph(path))


def test_cast_to_unsupported_type_is_a_problem(tmp_path: Path) -> None:
    node = helper.make_node("Cast", ["x"], ["y"], to=TensorProto.INT16)
    path = _save(tmp_path, [node], outputs=[_tensor("y", TensorProto.INT16)])
    assert any("cast to INT16" in p for p in check_graph(path))


def test_uint8_inside_the_network_is_a_problem(tmp_path: Path) -> None:
    # TensorRT takes UINT8 only at the network's edges, cast to or from FLOAT/FLOAT16.
    nodes = [
        helper.make_node("Cast", ["x"], ["u"], to=TensorProto.UINT8),
        helper.make_node("Transpose", ["u"], ["y"]),
    ]
    path = _save(tmp_path, nodes, outputs=[_tensor("y", TensorProto.UINT8, (3, 2))])
    problems = check_graph(path)
    assert any(p.startswith("Transpose ") and "UINT8 not supported" in p for p in problems)
    assert not any(p.startswith("Cast ") for p in problems), problems


def test_uint8_cast_from_integer_is_a_problem(tmp_path: Path) -> None:
    node = helper.make_node("Cast", ["x"], ["y"], to=TensorProto.UINT8)
    inputs = [_tensor("x", TensorProto.INT64)]
    path = _save(tmp_path, [node], inputs, [_tensor("y", TensorProto.UINT8)])
    assert any("UINT8 converts only to or from FLOAT" in p for p in check_graph(path))


def test_if_branches_of_different_rank_are_a_problem(tmp_path: Path) -> None:
    # What torch exports for x.squeeze(-1) when the exporter cannot tell the size is 1.
    def branch(name: str, node: onnx.NodeProto, shape: tuple[int, ...]) -> onnx.GraphProto:
        return helper.make_graph([node], name, [], [_tensor(node.output[0], shape=shape)])

    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [-1])
    squeeze = helper.make_node("Squeeze", ["x", "axes"], ["squeezed"])
    identity = helper.make_node("Identity", ["x"], ["same"])
    node = helper.make_node(
        "If",
        ["cond"],
        ["y"],
        then_branch=branch("then", squeeze, (2,)),
        else_branch=branch("else", identity, (2, 1)),
    )
    inputs = [_tensor("x", shape=(2, 1)), _tensor("cond", TensorProto.BOOL, ())]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    path = _save(tmp_path, [node], inputs, outputs, initializers=[axes])
    assert any("branch outputs differ in rank (1 vs 2)" in p for p in check_graph(path))


def test_resize_cubic_is_a_problem(tmp_path: Path) -> None:
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, 2.0, 2.0])
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="cubic")
    path = _save(
        tmp_path,
        [node],
        [_tensor("x", shape=(1, 1, 4, 4))],
        [_tensor("y", shape=(1, 1, 8, 8))],
        initializers=[scales],
    )
    assert any("mode 'cubic' not supported" in p for p in check_graph(path))


def test_runtime_axes_are_a_problem(tmp_path: Path) -> None:
    node = helper.make_node("Unsqueeze", ["x", "axes"], ["y"])
    inputs = [_tensor("x"), _tensor("axes", TensorProto.INT64, (1,))]
    path = _save(tmp_path, [node], inputs, [_tensor("y", shape=(1, 2, 3))])
    assert any("input 'axes' must be an initializer or Constant" in p for p in check_graph(path))


def test_invalid_model_is_a_problem(tmp_path: Path) -> None:
    path = _save(tmp_path, [helper.make_node("Add", ["x", "missing"], ["y"])])
    assert any(p.startswith("onnx.checker:") for p in check_graph(path))


def test_cli_reports_ops_and_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    good = _save(tmp_path, [helper.make_node("Add", ["x", "x"], ["y"])])
    assert trt_compat.main([str(good)]) == 0
    assert "ops: Add x1" in capsys.readouterr().out
    bad = _save(tmp_path, [helper.make_node("Add", ["x", "x"], ["y"])], opset=21)
    assert trt_compat.main([str(bad)]) == 1
    assert "PROBLEMS" in capsys.readouterr().out
