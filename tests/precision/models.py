"""Tiny ONNX models for the precision tests, built with onnx.helper."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _f(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _w(name: str, shape, rng: np.random.Generator, scale: float = 0.3) -> onnx.TensorProto:
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def residual_cnn(batch: int | str = "N", channels: int = 8, size: int = 8) -> onnx.ModelProto:
    """x[B,3,S,S] -> Conv+ReLU -> Conv -> Add(skip) -> ReLU -> GlobalAveragePool -> Flatten -> Gemm [B,4].

    One residual block, the pattern TensorRT fuses as Conv + Add + ReLU.
    """
    rng = np.random.default_rng(0)
    c = channels
    inits = [_w("w0", (c, 3, 3, 3), rng), _w("b0", (c,), rng), _w("w1", (c, c, 3, 3), rng), _w("b1", (c,), rng),
             _w("w2", (c, c, 3, 3), rng), _w("b2", (c,), rng), _w("fc_w", (4, c), rng), _w("fc_b", (4,), rng)]
    pads = {"pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], name="stem", **pads),
        helper.make_node("Relu", ["c0"], ["r0"], name="stem_relu"),
        helper.make_node("Conv", ["r0", "w1", "b1"], ["c1"], name="block_conv1", **pads),
        helper.make_node("Relu", ["c1"], ["r1"], name="block_relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="block_conv2", **pads),
        helper.make_node("Add", ["c2", "r0"], ["sum"], name="residual_add"),
        helper.make_node("Relu", ["sum"], ["r2"], name="block_relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["pool"], name="pool"),
        helper.make_node("Flatten", ["pool"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(nodes, "residual", [_f("x", [batch, 3, size, size])], [_f("y", [batch, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def two_inputs(batch: int | str = "N") -> onnx.ModelProto:
    """a[B,6], b[B,6] -> MatMul(a, W) + b -> ReLU: a model no image folder can feed."""
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("MatMul", ["a", "w"], ["m"], name="mm"),
             helper.make_node("Add", ["m", "b"], ["s"], name="add"),
             helper.make_node("Relu", ["s"], ["y"], name="relu")]
    graph = helper.make_graph(nodes, "two", [_f("a", [batch, 6]), _f("b", [batch, 6])], [_f("y", [batch, 6])],
                              [_w("w", (6, 6), rng)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def wide(batch: int | str = "N", features: int = 16384) -> onnx.ModelProto:
    """x[B,F] -> Mul -> Relu -> Add: three activations of F floats per sample (for the memory test)."""
    nodes = [helper.make_node("Mul", ["x", "two"], ["m"], name="mul"),
             helper.make_node("Relu", ["m"], ["r"], name="relu"),
             helper.make_node("Add", ["r", "one"], ["y"], name="add")]
    inits = [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
             numpy_helper.from_array(np.array(1.0, np.float32), "one")]
    graph = helper.make_graph(nodes, "wide", [_f("x", [batch, features])], [_f("y", [batch, features])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
