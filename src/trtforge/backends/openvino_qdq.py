"""Q/DQ pairs of an ONNX model, read by OpenVINO, folded into the FakeQuantize nodes OpenVINO uses.

OpenVINO's ONNX reader turns ``QuantizeLinear -> DequantizeLinear`` into ``FakeQuantize ->
Convert(u8) -> Convert(f32) -> Subtract(zero point) -> Multiply(scale)``; its CPU plugin folds that
chain back into one FakeQuantize, but only after other passes ran. One of them (strides
optimisation) puts a MaxPool inside the chain in front of a strided 1x1 Convolution, which then
runs in FP32 with its weights dequantized at every call: 6 of ResNet-50's 53 convolutions
(benchmarks/RESULTS.md, issue 17). A FakeQuantize with the dequantized output range computes the
same values, and is what NNCF's models carry, so :func:`fold_qdq` writes it before compiling.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _constant(output: Any) -> np.ndarray | None:
    """The value behind ``output`` when it is a constant (possibly through Convert), else None."""
    node = output.get_node()
    if node.get_type_name() == "Constant":
        return np.asarray(node.get_data())
    if node.get_type_name() == "Convert":
        inner = _constant(node.input_value(0))
        return None if inner is None else inner.astype(np.float32)
    return None


def _dequantize_chain(convert: Any) -> tuple[Any, np.ndarray, np.ndarray] | None:
    """``Convert(f32) [-> Subtract(zero point)] -> Multiply(scale)`` from ``convert``: the Multiply,
    zero point and scale, or None when the chain is anything else."""
    if convert.get_type_name() != "Convert":
        return None
    nxt = [t.get_node() for t in convert.output(0).get_target_inputs()]
    zero_point: np.ndarray | None = np.zeros((), np.float32)
    if len(nxt) == 1 and nxt[0].get_type_name() == "Subtract":
        zero_point = _constant(nxt[0].input_value(1))
        nxt = [t.get_node() for t in nxt[0].output(0).get_target_inputs()]
    if zero_point is None or len(nxt) != 1 or nxt[0].get_type_name() != "Multiply":
        return None
    scale = _constant(nxt[0].input_value(1))
    return None if scale is None else (nxt[0], zero_point.astype(np.float32), scale.astype(np.float32))


def fold_qdq(model: Any) -> int:
    """Replace every activation Q/DQ chain of ``model`` (an ``openvino.Model``) by one FakeQuantize
    with the dequantized output range; returns how many. Weights (constant Q/DQ) are left as read."""
    import openvino.opset13 as ops

    folded = 0
    for fq in model.get_ordered_ops():
        if fq.get_type_name() != "FakeQuantize":
            continue
        targets = list(fq.output(0).get_target_inputs())
        if len(targets) != 1 or targets[0].get_node().get_type_name() != "Convert":
            continue
        chains = [_dequantize_chain(t.get_node()) for t in targets[0].get_node().output(0).get_target_inputs()]
        low, high = _constant(fq.input_value(3)), _constant(fq.input_value(4))
        if not chains or None in chains or low is None or high is None:
            continue
        for multiply, zero_point, scale in chains:  # type: ignore[misc]
            new = ops.fake_quantize(
                fq.input_value(0),
                fq.input_value(1),
                fq.input_value(2),
                ops.constant(((low - zero_point) * scale).astype(np.float32)),
                ops.constant(((high - zero_point) * scale).astype(np.float32)),
                int(fq.get_attributes()["levels"]),
            )
            new.set_friendly_name(multiply.get_friendly_name())
            multiply.output(0).replace(new.output(0))
            folded += 1
    model.validate_nodes_and_infer_types()
    return folded
