"""Tiny ONNX models built with onnx.helper, each baking (or not) its batch in a known way."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
_RNG = np.random.default_rng(0)


def _model(nodes, inputs, outputs, initializers=(), value_info=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers), value_info=list(value_info))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _f(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _i64(name: str, values) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def _const(out: str, values) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [out], name=f"const_{out}", value=_i64(out, values))


def flatten(batch: int, through_concat: bool = False) -> onnx.ModelProto:
    """x[B,3,4,4] * 2 -> Reshape [B, -1] -> MatMul [48, 5]: Flatten as exporters write it."""
    w = numpy_helper.from_array(_RNG.standard_normal((48, 5)).astype(np.float32), "w")
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    if through_concat:  # target built from Constant nodes through a Concat
        shape_nodes = [
            _const("lead", [batch]),
            _const("rest", [-1]),
            helper.make_node("Concat", ["lead", "rest"], ["target"], name="concat", axis=0),
        ]
        inits = [w, two]
    else:
        shape_nodes, inits = [], [w, two, _i64("target", [batch, -1])]
    nodes = shape_nodes + [
        helper.make_node("Mul", ["x", "two"], ["scaled"], name="mul"),
        helper.make_node("Reshape", ["scaled", "target"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "w"], ["y"], name="dense"),
    ]
    return _model(
        nodes, [_f("x", [batch, 3, 4, 4])], [_f("y", [batch, 5])], inits, value_info=[_f("flat", [batch, 48])]
    )  # value_info as an exporter leaves it


def baked_zeros(batch: int) -> onnx.ModelProto:
    """x[B,5] + ConstantOfShape([B, 5]): the batch baked where no exact rewrite exists."""
    nodes = [
        helper.make_node(
            "ConstantOfShape",
            ["zshape"],
            ["zeros"],
            name="zeros",
            value=numpy_helper.from_array(np.array([1.0], np.float32)),
        ),
        helper.make_node("Concat", ["x", "zeros"], ["y"], name="join", axis=1),
    ]
    return _model(nodes, [_f("x", [batch, 5])], [_f("y", [batch, 10])], [_i64("zshape", [batch, 5])])


def dynamic(dim: str = "N") -> onnx.ModelProto:
    """x[N,4] -> Relu -> Reshape [0, 2, 2]: already dynamic."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "t"], ["y"], name="split"),
    ]
    return _model(nodes, [_f("x", [dim, 4])], [_f("y", [dim, 2, 2])], [_i64("t", [0, 2, 2])])


def two_inputs(batch: int) -> onnx.ModelProto:
    """a[B,4] + b[B,4] -> Reshape [B, 2, 2]; and a[0:B] sliced on the batch axis."""
    nodes = [
        helper.make_node("Add", ["a", "b"], ["s"], name="add"),
        helper.make_node("Reshape", ["s", "t"], ["y"], name="split"),
        helper.make_node("Slice", ["a", "starts", "ends", "axes"], ["z"], name="take_all"),
    ]
    inits = [_i64("t", [batch, 2, 2]), _i64("starts", [0]), _i64("ends", [batch]), _i64("axes", [0])]
    return _model(
        nodes, [_f("a", [batch, 4]), _f("b", [batch, 4])], [_f("y", [batch, 2, 2]), _f("z", [batch, 4])], inits
    )


def foldable(batch: int = 1) -> onnx.ModelProto:
    """x + (c1 * c2): a constant subexpression for onnxslim to fold."""
    c1 = numpy_helper.from_array(np.full((4,), 3.0, np.float32), "c1")
    c2 = numpy_helper.from_array(np.full((4,), 0.5, np.float32), "c2")
    nodes = [
        helper.make_node("Mul", ["c1", "c2"], ["c"], name="fold_me"),
        helper.make_node("Identity", ["c"], ["ci"], name="ident"),
        helper.make_node("Add", ["x", "ci"], ["y"], name="add"),
    ]
    return _model(nodes, [_f("x", [batch, 4])], [_f("y", [batch, 4])], [c1, c2])


def custom_op() -> onnx.ModelProto:
    """A node in a custom domain (TensorRT would need a plugin) after a dynamic input."""
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("MyPlugin", ["r"], ["y"], name="plugin", domain="com.example"),
        ],
        "g",
        [_f("x", ["batch", 4])],
        [_f("y", ["batch", 4])],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("com.example", 1)]
    )


def baked_operand(batch: int) -> onnx.ModelProto:
    """x[B,5] + a constant [B,5] (torch.zeros(B, 5) folded by the exporter)."""
    state = numpy_helper.from_array(np.zeros((batch, 5), np.float32), "state")
    return _model(
        [helper.make_node("Add", ["x", "state"], ["y"], name="add_state")],
        [_f("x", [batch, 5])],
        [_f("y", [batch, 5])],
        [state],
    )
