"""Small models where plain INT8 measurably fails, each with a known culprit unit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUTLIER_UNIT = "model/conv_b/Conv2D"
"""The Conv that reads the tensor one channel of which was scaled by 1000 (per-tensor INT8 crushes the rest)."""


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    """The graph as a checked opset-17 model at ``path``."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _conv_chain(middle: str, middle_relu: str) -> list[onnx.NodeProto]:
    """x -> conv_a+relu -> ``middle``+relu -> conv_c+relu -> pool -> dense (weights wa..wd, biases ba..bd)."""
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    return [
        helper.make_node("Conv", ["x", "wa", "ba"], ["a"], "model/conv_a/Conv2D", **conv),
        helper.make_node("Relu", ["a"], ["ra"], "model/conv_a/Relu"),
        helper.make_node("Conv", ["ra", "wb", "bb"], ["b"], middle, **conv),
        helper.make_node("Relu", ["b"], ["rb"], middle_relu),
        helper.make_node("Conv", ["rb", "wc", "bc"], ["c"], "model/conv_c/Conv2D", **conv),
        helper.make_node("Relu", ["c"], ["rc"], "model/conv_c/Relu"),
        helper.make_node("GlobalAveragePool", ["rc"], ["p"], "model/pool/Mean"),
        helper.make_node("Flatten", ["p"], ["f"], "model/flatten/Reshape"),
        helper.make_node("Gemm", ["f", "wd", "bd"], ["logits"], "model/dense/MatMul", transB=1),
    ]


def outlier_channel_model(path: Path, seed: int = 0, scale: float = 1000.0, batch: int | str = "N") -> Path:
    """x -> conv_a+relu -> conv_b+relu -> conv_c+relu -> pool -> dense: conv_a's channel 0 is scaled
    by ``scale`` and conv_b's input channel 0 by 1/``scale`` (same function, one huge channel)."""
    rng = np.random.default_rng(seed)
    wa = rng.normal(0, 0.5, (8, 4, 3, 3)).astype(np.float32)
    ba = rng.normal(0, 0.1, 8).astype(np.float32)
    wb = rng.normal(0, 0.3, (8, 8, 3, 3)).astype(np.float32)
    wc = rng.normal(0, 0.3, (8, 8, 3, 3)).astype(np.float32)
    wd = rng.normal(0, 0.5, (10, 8)).astype(np.float32)
    wa[0] *= scale
    ba[0] *= scale
    wb[:, 0] /= scale
    inits = [
        numpy_helper.from_array(a, n)
        for a, n in [
            (wa, "wa"),
            (ba, "ba"),
            (wb, "wb"),
            (np.zeros(8, np.float32), "bb"),
            (wc, "wc"),
            (np.zeros(8, np.float32), "bc"),
            (wd, "wd"),
            (np.zeros(10, np.float32), "bd"),
        ]
    ]
    nodes = _conv_chain(OUTLIER_UNIT, "model/conv_b/Relu")
    return _save(
        helper.make_graph(
            nodes,
            "outlier",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4, 8, 8])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])],
            inits,
        ),
        path,
    )


def inputs(path: Path, n: int, seed: int) -> Path:
    """``n`` seeded normal samples of x in an .npz."""
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.normal(0, 1, (n, 4, 8, 8)).astype(np.float32))
    return path


OUTLIER_INPUT_UNIT = "mlp/dense_1/MatMul"
"""The first dense layer: it reads the input whose feature 0 spans +-1000 (the rest +-1)."""


def outlier_input_model(path: Path, seed: int = 0) -> Path:
    """x (16 features, feature 0 in thousands) -> dense_1+relu -> dense_2+relu -> dense_3 logits;
    dense_1 scales feature 0 back down, so every feature matters to the answer."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.5, (32, 16)).astype(np.float32)
    w1[:, 0] /= 1000.0
    weights = [
        (w1, "w1"),
        (np.zeros(32, np.float32), "b1"),
        (rng.normal(0, 0.3, (32, 32)).astype(np.float32), "w2"),
        (np.zeros(32, np.float32), "b2"),
        (rng.normal(0, 0.3, (10, 32)).astype(np.float32), "w3"),
        (np.zeros(10, np.float32), "b3"),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], OUTLIER_INPUT_UNIT, transB=1),
        helper.make_node("Relu", ["h1"], ["r1"], "mlp/dense_1/Relu"),
        helper.make_node("Gemm", ["r1", "w2", "b2"], ["h2"], "mlp/dense_2/MatMul", transB=1),
        helper.make_node("Relu", ["h2"], ["r2"], "mlp/dense_2/Relu"),
        helper.make_node("Gemm", ["r2", "w3", "b3"], ["logits"], "mlp/dense_3/MatMul", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "outlier_input",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(a, n) for a, n in weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def outlier_inputs(path: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, 16)).astype(np.float32)
    x[:, 0] *= 1000.0
    np.savez(path, x=x)
    return path


FP16_UNIT = "model/conv_offset/Conv2D"
"""The Conv whose output rides on an offset of 4096 that the Add after it removes: FP16 keeps steps of 4 there."""


def fp16_cancellation_model(path: Path, seed: int = 0, batch: int | str = "N") -> Path:
    """The outlier-channel layout, but conv_b adds 4096 to every output and an Add takes it away again
    (same function): in FP16 the Conv's output keeps steps of 4, so what survives the Add is noise."""
    rng = np.random.default_rng(seed)
    weights = [
        (rng.normal(0, 0.5, (8, 4, 3, 3)).astype(np.float32), "wa"),
        (np.zeros(8, np.float32), "ba"),
        (rng.normal(0, 0.3, (8, 8, 3, 3)).astype(np.float32), "wb"),
        (np.full(8, 4096.0, np.float32), "bb"),
        (np.full((1, 8, 1, 1), -4096.0, np.float32), "offset"),
        (rng.normal(0, 0.3, (8, 8, 3, 3)).astype(np.float32), "wc"),
        (np.zeros(8, np.float32), "bc"),
        (rng.normal(0, 0.5, (10, 8)).astype(np.float32), "wd"),
        (np.zeros(10, np.float32), "bd"),
    ]
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["x", "wa", "ba"], ["a"], "model/conv_a/Conv2D", **conv),
        helper.make_node("Relu", ["a"], ["ra"], "model/conv_a/Relu"),
        helper.make_node("Conv", ["ra", "wb", "bb"], ["b"], FP16_UNIT, **conv),
        helper.make_node("Add", ["b", "offset"], ["rb"], "model/conv_offset/Sub"),
        helper.make_node("Conv", ["rb", "wc", "bc"], ["c"], "model/conv_c/Conv2D", **conv),
        helper.make_node("Relu", ["c"], ["rc"], "model/conv_c/Relu"),
        helper.make_node("GlobalAveragePool", ["rc"], ["p"], "model/pool/Mean"),
        helper.make_node("Flatten", ["p"], ["f"], "model/flatten/Reshape"),
        helper.make_node("Gemm", ["f", "wd", "bd"], ["logits"], "model/dense/MatMul", transB=1),
    ]
    return _save(
        helper.make_graph(
            nodes,
            "fp16_cancellation",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4, 8, 8])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])],
            [numpy_helper.from_array(a, n) for a, n in weights],
        ),
        path,
    )


THIN_UNIT = "model/thin/Conv"
"""A 1x1 Conv from one channel to one channel: in INT8 on ONNX Runtime CPU, the Q/DQ around it costs more
than the convolution (measured about 2x slower than float on a 128 x 128 map)."""


def thin_conv_model(path: Path, size: int = 128, seed: int = 0) -> Path:
    """x [1, 1, size, size] -> thin 1x1 Conv (1 -> 1 channel) + ReLU -> 3x3 Conv (1 -> 16) + ReLU."""
    rng = np.random.default_rng(seed)
    weights = [
        (rng.normal(0, 1, (1, 1, 1, 1)).astype(np.float32), "w1"),
        (np.zeros(1, np.float32), "b1"),
        (rng.normal(0, 0.3, (16, 1, 3, 3)).astype(np.float32), "w2"),
        (np.zeros(16, np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["a"], THIN_UNIT, kernel_shape=[1, 1]),
        helper.make_node("Relu", ["a"], ["ra"], "model/thin/Relu"),
        helper.make_node("Conv", ["ra", "w2", "b2"], ["c"], "model/wide/Conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["y"], "model/wide/Relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "thin",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, size, size])],
        [numpy_helper.from_array(a, n) for a, n in weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def thin_inputs(path: Path, n: int, seed: int, size: int = 128) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.normal(0, 1, (n, 1, size, size)).astype(np.float32))
    return path


WEIGHT_UNIT = "model/conv_w/Conv2D"
"""The Conv with one huge weight per output channel on an input channel that is always 0: per-channel
INT8 weights then round every other weight of the channel to 0 (its input quantizes fine)."""


def dead_weight_model(path: Path, seed: int = 0) -> Path:
    """x -> conv_a+relu (channel 0 always 0: zero weights, bias -1) -> conv_w+relu (weights reading
    channel 0 are 1000: no effect in FP32) -> conv_c+relu -> pool -> dense. The culprit is conv_w's own
    weights, so it can stay float while reading conv_a's output through a Q/DQ pair."""
    rng = np.random.default_rng(seed)
    wa = rng.normal(0, 0.5, (8, 4, 3, 3)).astype(np.float32)
    ba = rng.normal(0, 0.1, 8).astype(np.float32)
    wa[0], ba[0] = 0.0, -1.0
    wb = rng.normal(0, 0.3, (8, 8, 3, 3)).astype(np.float32)
    wb[:, 0] = 1000.0
    weights = [
        (wa, "wa"),
        (ba, "ba"),
        (wb, "wb"),
        (np.zeros(8, np.float32), "bb"),
        (rng.normal(0, 0.3, (8, 8, 3, 3)).astype(np.float32), "wc"),
        (np.zeros(8, np.float32), "bc"),
        (rng.normal(0, 0.5, (10, 8)).astype(np.float32), "wd"),
        (np.zeros(10, np.float32), "bd"),
    ]
    nodes = _conv_chain(WEIGHT_UNIT, "model/conv_w/Relu")
    return _save(
        helper.make_graph(
            nodes,
            "dead_weight",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 8, 8])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
            [numpy_helper.from_array(a, n) for a, n in weights],
        ),
        path,
    )


SPREAD_UNITS = ("model/branch_1/Conv2D", "model/branch_2/Conv2D")
"""Two identical Convs, each writing its own output, each riding on a +4096 offset an Add removes."""


def spread_fp16_model(path: Path, seed: int = 0) -> Path:
    """x -> stem Conv+ReLU -> two identical branches (Conv + 4096, Add - 4096), one output each: in FP16
    each branch keeps steps of 4, so the worst output's error falls only when both branches stay FP32."""
    rng = np.random.default_rng(seed)
    weights = [
        (rng.normal(0, 0.5, (8, 4, 3, 3)).astype(np.float32), "ws"),
        (np.zeros(8, np.float32), "bs"),
        (rng.normal(0, 0.3, (8, 8, 3, 3)).astype(np.float32), "wb"),
        (np.full(8, 4096.0, np.float32), "bb"),
        (np.full((1, 8, 1, 1), -4096.0, np.float32), "offset"),
    ]
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["x", "ws", "bs"], ["s"], "model/stem/Conv2D", **conv),
        helper.make_node("Relu", ["s"], ["rs"], "model/stem/Relu"),
    ]
    for i, name in enumerate(SPREAD_UNITS, 1):
        nodes.append(helper.make_node("Conv", ["rs", "wb", "bb"], [f"b{i}"], name, **conv))
        nodes.append(helper.make_node("Add", [f"b{i}", "offset"], [f"y{i}"], f"model/branch_{i}/Sub"))
    return _save(
        helper.make_graph(
            nodes,
            "spread_fp16",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 8, 8])],
            [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, ["N", 8, 8, 8]) for i in (1, 2)],
            [numpy_helper.from_array(a, n) for a, n in weights],
        ),
        path,
    )
