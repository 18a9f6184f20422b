"""Bias correction: INT8 weights must not move a layer's mean output.

Rounding a Conv's or Gemm's weights to INT8 changes each output channel by ``sum(dW * x)``; over
the calibration data that averages to ``sum(dW * mean(x))`` per channel, a systematic offset that
the next layers amplify (depthwise convolutions, with 9 weights per channel, suffer most). NNCF
removes it by default ("fast bias correction"); so does trtforge: each bias is shifted by minus
that mean change, using the weights exactly as the Q/DQ model dequantizes them and the
per-channel means of each layer's input gathered while calibrating (no extra pass).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def correct_biases(
    float_model: onnx.ModelProto, quantized: onnx.ModelProto, means: dict[str, np.ndarray]
) -> dict[str, object]:
    """Shift, in ``quantized``, the bias of each Conv/Gemm with quantized weights by minus the mean
    output change the weight rounding causes, from ``means`` (``{input tensor: per-channel mean}``
    of ``float_model``, the model ``quantized`` was made from). Returns the facts for the manifest.
    """
    inits = {i.name: i for i in quantized.graph.initializer}
    producer = {out: node for node in quantized.graph.node for out in node.output}
    readers: dict[str, int] = {}
    for node in quantized.graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    float_inits = {i.name: i for i in float_model.graph.initializer}
    float_nodes = {n.name: n for n in float_model.graph.node}
    corrected, shifts = [], []
    for node in quantized.graph.node:
        source = float_nodes.get(node.name)
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 3 or source is None:
            continue
        weights = float_inits.get(source.input[1])
        quantized_weights = _dequantized(producer.get(node.input[1]), inits)
        mean = means.get(source.input[0])
        if weights is None or quantized_weights is None or mean is None:
            continue
        shift = _output_shift(node, quantized_weights - numpy_helper.to_array(weights), mean)
        shared = readers.get(_bias_tensor(node.input[2], producer), 0) != 1
        if shift is not None and not shared and _shift_bias(node.input[2], -shift, inits, producer):
            corrected.append(node.name)
            shifts.append(float(np.abs(shift).max()))
    return {"nodes": len(corrected), "largest_shift": round(max(shifts, default=0.0), 6)}


def _dequantized(dq: onnx.NodeProto | None, inits: dict[str, onnx.TensorProto]) -> np.ndarray | None:
    """The float weights a DequantizeLinear of an initializer produces (None if it is not one)."""
    if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits or dq.input[1] not in inits:
        return None
    q = numpy_helper.to_array(inits[dq.input[0]]).astype(np.float64)
    scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)
    zero = (
        numpy_helper.to_array(inits[dq.input[2]]).astype(np.float64)
        if len(dq.input) > 2 and dq.input[2] in inits
        else np.zeros_like(scale)
    )
    if scale.ndim == 1 and q.ndim > 1:  # per channel along the axis attribute
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return (q - zero) * scale


def _output_shift(node: onnx.NodeProto, delta: np.ndarray, mean: np.ndarray) -> np.ndarray | None:
    """The mean change of each output channel of ``node`` for weights off by ``delta``."""
    attrs = {a.name: a for a in node.attribute}
    if node.op_type == "Conv":
        groups = attrs["group"].i if "group" in attrs else 1
        out, per_group = delta.shape[0], delta.shape[1]
        if mean.size != per_group * groups or out % groups:
            return None
        summed = delta.reshape(groups, out // groups, per_group, -1).sum(axis=3)
        return np.einsum("goi,gi->go", summed, mean.reshape(groups, per_group)).reshape(out)
    if attrs.get("transA") is not None and attrs["transA"].i:
        return None
    matrix = delta.T if "transB" in attrs and attrs["transB"].i else delta  # K x N
    if delta.ndim != 2 or mean.size != matrix.shape[0]:
        return None
    alpha = attrs["alpha"].f if "alpha" in attrs else 1.0
    beta = attrs["beta"].f if "beta" in attrs else 1.0
    return alpha * (mean @ matrix) / (beta or 1.0)


def _bias_tensor(name: str, producer: dict[str, onnx.NodeProto]) -> str:
    """The initializer behind a bias input: itself, or what its DequantizeLinear reads."""
    dq = producer.get(name)
    return dq.input[0] if dq is not None and dq.op_type == "DequantizeLinear" else name


def _shift_bias(
    name: str, shift: np.ndarray, inits: dict[str, onnx.TensorProto], producer: dict[str, onnx.NodeProto]
) -> bool:
    """Add ``shift`` to a float bias initializer, or to an INT32 one in its DequantizeLinear's steps."""
    dq = producer.get(name)
    if dq is None and name in inits:
        bias = numpy_helper.to_array(inits[name])
        if bias.size != shift.size:
            return False
        inits[name].CopyFrom(numpy_helper.from_array((bias + shift.reshape(bias.shape)).astype(bias.dtype), name))
        return True
    if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits or dq.input[1] not in inits:
        return False
    steps = numpy_helper.to_array(inits[dq.input[0]])
    scale = numpy_helper.to_array(inits[dq.input[1]]).astype(np.float64)
    if steps.size != shift.size:
        return False
    moved = np.rint(steps.astype(np.float64) + shift.reshape(steps.shape) / scale.reshape(-1)[: steps.size])
    info = np.iinfo(steps.dtype)
    inits[dq.input[0]].CopyFrom(
        numpy_helper.from_array(np.clip(moved, info.min, info.max).astype(steps.dtype), dq.input[0])
    )
    return True
