"""Which shape constants bake the batch, and which rewrites are exact."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_models as M
from onnx import TensorProto, helper, numpy_helper

from trtforge.graph.constants import find_batch_constants, patch_batch_constants
from trtforge.graph.shapes import change_shapes, target_shapes
from trtforge.graph.verify import session


def _i64(name: str, values: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _model(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], x: list[int], y: list[int]) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_expand_of_a_batch_tensor_is_patched_to_broadcast() -> None:
    model = _model([helper.make_node("Expand", ["x", "s"], ["y"], name="widen")], [_i64("s", [2, 5])], [2, 1], [2, 5])
    result = change_shapes(model, target_shapes(model, 4))
    assert result.patched == ("Expand 'widen'",)
    x = np.arange(4, dtype=np.float32).reshape(4, 1)
    np.testing.assert_array_equal(session(result.model).run(None, {"x": x})[0], np.repeat(x, 5, axis=1))


def test_tile_of_a_constant_by_the_batch_is_refused() -> None:
    row = numpy_helper.from_array(np.ones((1, 5), np.float32), "row")
    model = _model(
        [
            helper.make_node("Tile", ["row", "r"], ["rows"], name="tile"),
            helper.make_node("Add", ["x", "rows"], ["y"], name="add"),
        ],
        [row, _i64("r", [2, 1])],
        [2, 5],
        [2, 5],
    )
    assert [(f.describe(), f.kind) for f in find_batch_constants(model, 2, ["x"])] == [("Tile 'tile'", "refuse")]


def test_weight_reshapes_are_left_alone() -> None:
    bias = numpy_helper.from_array(np.ones(3, np.float32), "bias")
    model = _model(
        [
            helper.make_node("Reshape", ["bias", "s"], ["b4"], name="bias_4d"),
            helper.make_node("Add", ["x", "b4"], ["y"], name="add"),
        ],
        [bias, _i64("s", [1, 3, 1, 1])],
        [1, 3, 2, 2],
        [1, 3, 2, 2],
    )
    assert find_batch_constants(model, 1, ["x"]) == []


def test_patched_constants_leave_no_dead_nodes() -> None:
    model = M.flatten(1, through_concat=True)
    patched, left = patch_batch_constants(model, 1, ["x"])
    assert [f.describe() for f in patched] == ["Reshape 'flatten'"] and left == []
    assert [n.op_type for n in model.graph.node] == ["Mul", "Reshape", "MatMul"]
