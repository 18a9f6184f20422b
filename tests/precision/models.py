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
    inits = [
        _w("w0", (c, 3, 3, 3), rng),
        _w("b0", (c,), rng),
        _w("w1", (c, c, 3, 3), rng),
        _w("b1", (c,), rng),
        _w("w2", (c, c, 3, 3), rng),
        _w("b2", (c,), rng),
        _w("fc_w", (4, c), rng),
        _w("fc_b", (4,), rng),
    ]
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
    nodes = [
        helper.make_node("MatMul", ["a", "w"], ["m"], name="mm"),
        helper.make_node("Add", ["m", "b"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes, "two", [_f("a", [batch, 6]), _f("b", [batch, 6])], [_f("y", [batch, 6])], [_w("w", (6, 6), rng)]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def wide(batch: int | str = "N", features: int = 16384) -> onnx.ModelProto:
    """x[B,F] -> Mul -> Relu -> Add: three activations of F floats per sample (for the memory test)."""
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["m"], name="mul"),
        helper.make_node("Relu", ["m"], ["r"], name="relu"),
        helper.make_node("Add", ["r", "one"], ["y"], name="add"),
    ]
    inits = [
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
    ]
    graph = helper.make_graph(nodes, "wide", [_f("x", [batch, features])], [_f("y", [batch, features])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _model(nodes, name, inputs, outputs, inits, opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def softmax_classifier(batch: int | str = "N", classes: int = 1000) -> onnx.ModelProto:
    """x[B,16] -> MatMul + Add -> Softmax -> probs[B,classes]: most probabilities are below 1/255."""
    rng = np.random.default_rng(2)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"], name="dense/MatMul"),
        helper.make_node("Add", ["m", "b"], ["logits"], name="dense/BiasAdd"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    return _model(
        nodes,
        "softmax",
        [_f("x", [batch, 16])],
        [_f("probs", [batch, classes])],
        [_w("w", (16, classes), rng), _w("b", (classes,), rng)],
    )


def detector_head(batch: int | str = "N", score_gain: float | None = None) -> onnx.ModelProto:
    """x[B,3,8,8] -> boxes (ReLU x 80: 0..~300) and scores (Sigmoid: 0..1) -> Concat -> Reshape [B,6,64].

    YOLO's shape of trouble: one Concat joins tensors whose ranges differ by ~300x. ``score_gain``: the
    scores pass a Mul by it on their way (a computing reader, so the Sigmoid's output keeps its Q/DQ).
    """
    rng = np.random.default_rng(3)
    inits = [
        _w("wb", (4, 3, 3, 3), rng),
        _w("ws", (2, 3, 3, 3), rng, scale=1.0),
        numpy_helper.from_array(np.array(80.0, np.float32), "stride"),
        numpy_helper.from_array(np.array([0, 6, 64], np.int64), "shape"),
    ]
    pads = {"pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["x", "wb"], ["cb"], name="box_conv", **pads),
        helper.make_node("Relu", ["cb"], ["rb"], name="box_relu"),
        helper.make_node("Mul", ["rb", "stride"], ["boxes"], name="box_scale"),
        helper.make_node("Conv", ["x", "ws"], ["cs"], name="score_conv", **pads),
        helper.make_node("Sigmoid", ["cs"], ["scores"], name="score_sigmoid"),
        helper.make_node("Concat", ["boxes", "gained" if score_gain else "scores"], ["joined"], name="join", axis=1),
        helper.make_node("Reshape", ["joined", "shape"], ["preds"], name="flatten"),
    ]
    if score_gain:
        inits.append(numpy_helper.from_array(np.array(score_gain, np.float32), "gain"))
        nodes.insert(-2, helper.make_node("Mul", ["scores", "gain"], ["gained"], name="score_gain"))
    return _model(nodes, "head", [_f("x", [batch, 3, 8, 8])], [_f("preds", [batch, 6, 64])], inits)


def anchor_scores(batch: int | str = "N", background: float = -400.0) -> onnx.ModelProto:
    """x[B,4,8,8] -> 1x1 Conv -> Transpose -> Reshape -> scores[B,128]: per-anchor logits, BlazeFace's head.

    Channel 0's logits are ~N(0, 1) (the anchors that rank faces); channel 1's bias is ``background``
    (anchors that never fire). Their one tensor spans hundreds: an 8-bit scale over it is ~1.6 wide.
    """
    rng = np.random.default_rng(6)
    inits = [
        _w("w", (2, 4, 1, 1), rng, scale=0.5),
        numpy_helper.from_array(np.array([0.0, background], np.float32), "b"),
        numpy_helper.from_array(np.array([0, 128], np.int64), "shape"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["logits"], name="classificator"),
        helper.make_node("Transpose", ["logits"], ["nhwc"], name="to_nhwc", perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["nhwc", "shape"], ["scores"], name="per_anchor"),
    ]
    return _model(nodes, "anchors", [_f("x", [batch, 4, 8, 8])], [_f("scores", [batch, 128])], inits)


def outlier_input(batch: int | str = "N") -> onnx.ModelProto:
    """x[B,8] -> MatMul -> y[B,4], where the data's feature 0 is ~1000x the rest and W ignores it:
    a per-tensor scale on x rounds every feature the output depends on to zero."""
    rng = np.random.default_rng(4)
    w = (rng.standard_normal((8, 4)) * 0.5).astype(np.float32)
    w[0] = 0.0
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="proj")]
    return _model(nodes, "outlier", [_f("x", [batch, 8])], [_f("y", [batch, 4])], [numpy_helper.from_array(w, "w")])


def conv_bn_dense(batch: int | str = "N", opset: int = 17) -> onnx.ModelProto:
    """x[B,3,4,4] -> Conv -> BatchNormalization -> Relu -> Flatten -> MatMul -> Add -> y[B,5].

    prepare() fuses BN into the Conv and MatMul + Add into a Gemm named ``dense/MatMul/MatMulAddFusion``.
    """
    rng = np.random.default_rng(5)
    c = 4
    inits = [
        _w("wc", (c, 3, 3, 3), rng),
        _w("bc", (c,), rng),
        numpy_helper.from_array(np.abs(rng.standard_normal(c)).astype(np.float32) + 0.5, "gamma"),
        _w("beta", (c,), rng),
        _w("mean", (c,), rng),
        numpy_helper.from_array(np.abs(rng.standard_normal(c)).astype(np.float32) + 0.5, "var"),
        _w("wd", (c * 16, 5), rng),
        _w("bd", (5,), rng),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "wc", "bc"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["n"], name="bn"),
        helper.make_node("Relu", ["n"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "wd"], ["m"], name="dense/MatMul"),
        helper.make_node("Add", ["m", "bd"], ["y"], name="dense/BiasAdd"),
    ]
    return _model(nodes, "convbn", [_f("x", [batch, 3, 4, 4])], [_f("y", [batch, 5])], inits, opset)


def channel_pad_block(seed: int = 0) -> onnx.ModelProto:
    """x[1,4,8,8] -> Conv+ReLU (4) -> [Pad channels 4 -> 8 (the skip), Conv 4 -> 8] -> Add -> ReLU -> Conv [1,2,8,8].

    BlazeFace's block that widens: the skip branch is zero-padded along channels."""
    rng = np.random.default_rng(seed)
    inits = [
        _w("w0", (4, 4, 3, 3), rng),
        _w("b0", (4,), rng),
        _w("w1", (8, 4, 3, 3), rng),
        _w("b1", (8,), rng),
        _w("w2", (2, 8, 1, 1), rng),
        _w("b2", (2,), rng),
        numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 4, 0, 0], np.int64), "channel_pads"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], name="stem", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"], name="stem_relu"),
        helper.make_node("Pad", ["r0", "channel_pads"], ["skip"], name="channel_padding"),
        helper.make_node("Conv", ["r0", "w1", "b1"], ["c1"], name="widen", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["skip", "c1"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["r"], name="add_relu"),
        helper.make_node("Conv", ["r", "w2", "b2"], ["y"], name="head"),
    ]
    graph = helper.make_graph(nodes, "channel_pad_block", [_f("x", [1, 4, 8, 8])], [_f("y", [1, 2, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def separable_cnn(batch: int | str = "N", channels: int = 16, size: int = 8, positive: bool = False) -> onnx.ModelProto:
    """x[B,C,S,S] -> Conv 1x1 + ReLU -> depthwise Conv 3x3 (C groups) + ReLU -> Conv 1x1 [B,8,S,S]: a
    MobileNet block. ``positive``: every weight in 0.5..1, so on large inputs the products of u8
    activations and full 8-bit weights add up past what AVX2's ``vpmaddubsw`` holds (it saturates)."""
    rng = np.random.default_rng(3)
    c = channels

    def w(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
        values = rng.uniform(0.5, 1.0, shape) if positive else rng.standard_normal(shape) * 0.3
        return numpy_helper.from_array(values.astype(np.float32), name)

    inits = [w("pw1", (c, c, 1, 1)), w("dw", (c, 1, 3, 3)), w("pw2", (8, c, 1, 1))]
    nodes = [
        helper.make_node("Conv", ["x", "pw1"], ["e"], name="expand"),
        helper.make_node("Relu", ["e"], ["er"], name="expand_relu"),
        helper.make_node("Conv", ["er", "dw"], ["d"], name="depthwise", group=c, pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["d"], ["dr"], name="depthwise_relu"),
        helper.make_node("Conv", ["dr", "pw2"], ["y"], name="project"),
    ]
    return _model(nodes, "separable", [_f("x", [batch, c, size, size])], [_f("y", [batch, 8, size, size])], inits)


def weight_bits(model: onnx.ModelProto) -> dict[str, int]:
    """``{Conv node: largest |integer weight|}`` of a Q/DQ model (64: 7-bit weights, 127: 8-bit)."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    return {
        n.name: int(np.abs(inits[producers[n.input[1]].input[0]].astype(np.int32)).max())
        for n in model.graph.node
        if n.op_type == "Conv" and n.input[1] in producers and producers[n.input[1]].op_type == "DequantizeLinear"
    }
