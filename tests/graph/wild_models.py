"""Small ONNX models built in code, each standing for a class of real model from the wild (issue 15)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper


def _model(
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    initializers: list[onnx.TensorProto] = (),
    opset: int = 13,
) -> onnx.ModelProto:  # type: ignore[assignment]
    graph = h.make_graph(nodes, "wild", inputs, outputs, list(initializers))
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _branch(name: str, scale: float) -> onnx.GraphProto:
    weight = numpy_helper.from_array(np.full((4,), scale, np.float32), f"{name}_w")
    node = h.make_node("Mul", ["x", f"{name}_w"], [f"{name}_y"])
    return h.make_graph([node], name, [], [h.make_tensor_value_info(f"{name}_y", T.FLOAT, None)], [weight])


def stateful() -> onnx.ModelProto:
    """Like silero-vad: x [N, 4], state [2, N, 3] (batch on axis 1), sr a scalar picking an If branch.

    The ``sr == 16000`` branch scales x by 2; the other by 3 (a real model's other branch may not run at all).
    """
    nodes = [
        h.make_node("Equal", ["sr", "rate"], ["is16k"]),
        h.make_node("If", ["is16k"], ["scaled"], then_branch=_branch("then", 2.0), else_branch=_branch("else", 3.0)),
        h.make_node("ReduceSum", ["scaled", "axes"], ["summed"], keepdims=1),
        h.make_node("Add", ["state", "one"], ["stateN"]),
        h.make_node("Identity", ["summed"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(16000, np.int64), "rate"),
        numpy_helper.from_array(np.array([1], np.int64), "axes"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
    ]
    inputs = [
        h.make_tensor_value_info("x", T.FLOAT, ["N", 4]),
        h.make_tensor_value_info("state", T.FLOAT, [2, "N", 3]),
        h.make_tensor_value_info("sr", T.INT64, []),
    ]
    outputs = [
        h.make_tensor_value_info("y", T.FLOAT, ["N", 1]),
        h.make_tensor_value_info("stateN", T.FLOAT, [2, "N", 3]),
    ]
    return _model(nodes, inputs, outputs, inits)


def valid_convs(fixed_size: int | None = None) -> onnx.ModelProto:
    """A detector-like net with dynamic batch, height and width: two unpadded 3x3 convs need H, W >= 5.

    With ``fixed_size`` a Reshape bakes H = W = fixed_size in, so only that size runs.
    """
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(0, 0.3, (2, 4, 3, 3)).astype(np.float32), "w2"),
    ]
    nodes = [
        h.make_node("Conv", ["images", "w1"], ["c1"]),
        h.make_node("Relu", ["c1"], ["r1"]),
        h.make_node("Conv", ["r1", "w2"], ["out"]),
    ]
    source = "images"
    if fixed_size is not None:
        inits.append(numpy_helper.from_array(np.array([-1, 3, fixed_size, fixed_size], np.int64), "hw"))
        nodes.insert(0, h.make_node("Reshape", ["raw", "hw"], ["images"]))
        source = "raw"
    inputs = [h.make_tensor_value_info(source, T.FLOAT, ["batch", 3, "height", "width"])]
    outputs = [h.make_tensor_value_info("out", T.FLOAT, ["batch", 2, "out_h", "out_w"])]
    return _model(nodes, inputs, outputs, inits)


def uninferable_output() -> onnx.ModelProto:
    """x [N, 4] reshaped to a runtime shape input: no shape inference can say the output's dims."""
    nodes = [h.make_node("Reshape", ["x", "target"], ["y"])]
    inputs = [h.make_tensor_value_info("x", T.FLOAT, ["N", 4]), h.make_tensor_value_info("target", T.INT64, ["k"])]
    outputs = [h.make_tensor_value_info("y", T.FLOAT, ["N", 4])]
    return _model(nodes, inputs, outputs)
