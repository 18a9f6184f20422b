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
    float_model: onnx.ModelProto,
    quantized: onnx.ModelProto,
    means: dict[str, np.ndarray],
    known: dict[str, np.ndarray] | None = None,
) -> dict[str, object]:
    """Shift, in ``quantized``, the bias of each Conv/Gemm with quantized weights by minus the mean
    output change the weight rounding causes. ``means``: ``{input tensor: mean over samples}`` of
    ``float_model`` (the model ``quantized`` was made from), per channel and position
    (:func:`trtforge.precision.calibrate.calibrate` gathers them). ``known``: shifts by node from an
    earlier call on the same model and ranges, reused and added to (a node's shift depends only on its
    weights and mean input: the sensitivity search quantizes one model many times). Returns the facts
    for the manifest.
    """
    inits, producer, readers = _index(quantized.graph)
    float_inits = {i.name: i for i in float_model.graph.initializer}
    float_nodes = {n.name: n for n in float_model.graph.node}
    deltas: list[tuple[onnx.NodeProto, np.ndarray, np.ndarray]] = []
    for node in quantized.graph.node:
        source = float_nodes.get(node.name)
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 3 or source is None:
            continue
        weights = float_inits.get(source.input[1])
        quantized_weights = _dequantized(producer.get(node.input[1]), inits)
        mean = means.get(source.input[0])
        shared = readers.get(_bias_tensor(node.input[2], producer), 0) != 1  # a shared bias stays as it is
        if weights is not None and quantized_weights is not None and mean is not None and not shared:
            deltas.append((node, quantized_weights - numpy_helper.to_array(weights), mean))
    shifts = known if known is not None else {}
    todo = [d for d in deltas if d[0].name not in shifts]
    shifts.update(_conv_shifts([d for d in todo if d[0].op_type == "Conv"]))
    shifts.update({n.name: s for n, d, m in todo if n.op_type == "Gemm" and (s := _gemm_shift(n, d, m)) is not None})
    corrected = [
        n for n, _, _ in deltas if n.name in shifts and _shift_bias(n.input[2], -shifts[n.name], inits, producer)
    ]
    largest = max((float(np.abs(shifts[n.name]).max()) for n in corrected), default=0.0)
    return {"nodes": len(corrected), "largest_shift": round(largest, 6)}


def _conv_shifts(convs: list[tuple[onnx.NodeProto, np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """``{Conv: mean output change per channel}``: each Conv run with its weight error ``delta`` on its
    mean input (one ONNX Runtime run for all), averaged over output positions. Exact for a linear op,
    borders included (a 3x3 map padded to 5x5 sees the zeros a per-channel mean would miss)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    nodes, inits, outputs, names = [], [], [], []
    for i, (node, delta, mean) in enumerate(convs):
        groups = next((a.i for a in node.attribute if a.name == "group"), 1)
        if mean.ndim != delta.ndim - 1 or mean.shape[0] != delta.shape[1] * groups:
            continue
        inits += [numpy_helper.from_array(mean[None].astype(np.float32), f"x{i}")]
        inits += [numpy_helper.from_array(delta.astype(np.float32), f"w{i}")]
        conv = helper.make_node("Conv", [f"x{i}", f"w{i}"], [f"y{i}"])
        conv.attribute.extend(node.attribute)
        nodes.append(conv)
        outputs.append(helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, None))
        names.append(node.name)
    if not nodes:
        return {}
    graph = helper.make_graph(nodes, "weight_error", [], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    results = session.run(None, {})
    return {name: y.astype(np.float64).mean(axis=(0, *range(2, y.ndim))) for name, y in zip(names, results)}


def _gemm_shift(node: onnx.NodeProto, delta: np.ndarray, mean: np.ndarray) -> np.ndarray | None:
    """The mean change of each output of a Gemm whose B is off by ``delta``, on inputs of ``mean``."""
    attrs = {a.name: a for a in node.attribute}
    if "transA" in attrs and attrs["transA"].i or delta.ndim != 2 or mean.ndim != 1:
        return None
    matrix = delta.T if "transB" in attrs and attrs["transB"].i else delta  # K x N
    if mean.size != matrix.shape[0]:
        return None
    alpha = attrs["alpha"].f if "alpha" in attrs else 1.0
    beta = attrs["beta"].f if "beta" in attrs else 1.0
    return alpha * (mean @ matrix) / (beta or 1.0)


def _index(
    graph: onnx.GraphProto,
) -> tuple[dict[str, onnx.TensorProto], dict[str, onnx.NodeProto], dict[str, int]]:
    """``graph``'s initializers and the node writing each tensor, by name, and how many inputs read each tensor."""
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    return {i.name: i for i in graph.initializer}, {out: n for n in graph.node for out in n.output}, readers


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


def correct_biases_empirically(
    float_model: onnx.ModelProto, quantized: onnx.ModelProto, batches: list[dict[str, np.ndarray]]
) -> dict[str, object]:
    """Shift, in ``quantized``, each Conv/Gemm bias by minus the mean per-channel error the layer
    itself adds, measured on ``batches`` (calibration samples): each layer's FP32 input, put through
    the layer's input Q/DQ and run with its INT8 weights and (weight-corrected) bias, against its FP32
    output. So the activations' quantization (rounding, and clipping, which is biased) is counted too,
    not only the weights' error. Each layer is measured on FP32 inputs, as NNCF does: correcting on the
    INT8 model's own inputs moves every layer's input while its bias moves, and over-corrects. One
    ONNX Runtime run over the batches (the FP32 model with a quantized copy of each layer beside it).
    Returns the facts for the manifest.
    """
    inits, producer, readers = _index(quantized.graph)
    float_nodes = {n.name: n for n in float_model.graph.node}
    probe = onnx.ModelProto()
    probe.CopyFrom(float_model)
    pairs: list[tuple[onnx.NodeProto, str, str]] = []  # (quantized node, FP32 output, quantized copy's output)
    for node in quantized.graph.node:
        source = float_nodes.get(node.name)
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 3 or source is None:
            continue
        if readers.get(_bias_tensor(node.input[2], producer), 0) != 1:
            continue
        copied = _quantized_copy(node, source.input[0], producer, inits, f"biascorrect{len(pairs)}/")
        if copied is not None:
            probe.graph.node.extend(copied[0])
            probe.graph.initializer.extend(copied[1])
            pairs.append((node, source.output[0], copied[0][-1].output[0]))
    if not pairs or not batches:
        return {"nodes": 0}
    names = [n for _, f, q in pairs for n in (f, q)]
    means = _channel_means(probe, names, batches)
    if not means:
        return {"nodes": 0, "samples": 0}  # fewer samples than the model's static batch
    corrected, largest = 0, 0.0
    for node, f, q in pairs:
        drift = means[q] - means[f]
        if _shift_bias(node.input[2], -drift, inits, producer):
            corrected += 1
            largest = max(largest, float(np.abs(drift).max()))
    return {"nodes": corrected, "samples": sum(_count(b) for b in batches), "largest_shift": round(largest, 6)}


def _quantized_copy(
    node: onnx.NodeProto,
    float_input: str,
    producer: dict[str, onnx.NodeProto],
    inits: dict[str, onnx.TensorProto],
    prefix: str,
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]] | None:
    """Nodes and initializers computing ``node`` as the Q/DQ model does, on ``float_input``: its input
    quantized with the scale of the DequantizeLinear before it, its weights and bias as dequantized
    there. None when its input, weights or bias are not read through an initializer DequantizeLinear."""
    from onnx import helper

    x_dq, w_dq, b_dq = (producer.get(name) for name in node.input[:3])
    if not (_reads_initializers(x_dq, inits, 1) and _reads_initializers(w_dq, inits, 0)):
        return None
    float_bias = b_dq is None and node.input[2] in inits  # TensorRT's flavour keeps the bias float
    if not float_bias and not _reads_initializers(b_dq, inits, 0):
        return None
    assert x_dq is not None and w_dq is not None
    quantize_x = helper.make_node(
        "QuantizeLinear", [float_input, *(prefix + i for i in x_dq.input[1:])], [prefix + "q"]
    )
    quantize_x.attribute.extend(a for a in x_dq.attribute if a.name == "axis")
    nodes = [quantize_x, _dq_copy(x_dq, [prefix + "q", *(prefix + i for i in x_dq.input[1:])], prefix + "x")]
    nodes.append(_dq_copy(w_dq, [prefix + i for i in w_dq.input], prefix + "w"))
    if b_dq is not None:
        nodes.append(_dq_copy(b_dq, [prefix + i for i in b_dq.input], prefix + "b"))
    bias = prefix + ("b" if b_dq is not None else node.input[2])
    layer = helper.make_node(node.op_type, [prefix + "x", prefix + "w", bias], [prefix + "y"])
    layer.attribute.extend(node.attribute)
    nodes.append(layer)
    used = {name for dq in (x_dq, w_dq, b_dq) if dq is not None for name in dq.input if name in inits}
    copied = []
    for name in sorted(used | ({node.input[2]} if float_bias else set())):
        tensor = onnx.TensorProto()
        tensor.CopyFrom(inits[name])
        tensor.name = prefix + name
        copied.append(tensor)
    return nodes, copied


def _reads_initializers(dq: onnx.NodeProto | None, inits: dict[str, onnx.TensorProto], first: int) -> bool:
    """Whether ``dq`` is a DequantizeLinear whose inputs from ``first`` on are all initializers."""
    return dq is not None and dq.op_type == "DequantizeLinear" and all(i in inits for i in dq.input[first:])


def _dq_copy(dq: onnx.NodeProto, inputs: list[str], output: str) -> onnx.NodeProto:
    from onnx import helper

    copy = helper.make_node("DequantizeLinear", inputs, [output])
    copy.attribute.extend(dq.attribute)
    return copy


def _count(batch: dict[str, np.ndarray]) -> int:
    return int(next(iter(batch.values())).shape[0]) if batch else 0


def _channel_means(
    model: onnx.ModelProto, names: list[str], batches: list[dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """``{tensor: mean over samples and positions, per channel (axis 1)}`` of ``model``'s tensors ``names``
    (a model of static batch B is run on groups of B: up to B - 1 samples are left out; none: ``{}``)."""
    import onnxruntime as ort
    from onnx import helper

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    present = {o.name for o in probe.graph.output}
    probe.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in names if n not in present)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # constants folded; no fusion
    options.log_severity_level = 3
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feeds = {i.name for i in session.get_inputs()}
    fixed = next((i.shape[0] for i in session.get_inputs() if i.shape and isinstance(i.shape[0], int)), None)
    if fixed is not None:  # a static batch: regrouped to it, an incomplete last group left out
        whole = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
        total = _count(whole)
        batches = [{k: v[i : i + fixed] for k, v in whole.items()} for i in range(0, total - fixed + 1, fixed)]
    sums: dict[str, np.ndarray] = {}
    count = 0
    for batch in batches:
        values = session.run(names, {k: v for k, v in batch.items() if k in feeds})
        for name, value in zip(names, values):
            axes = (0, *range(2, value.ndim))
            part = value.astype(np.float64).sum(axis=axes) / (value.size / value.shape[1]) * value.shape[0]
            sums[name] = sums.get(name, 0) + part
        count += _count(batch)
    return {name: total / max(count, 1) for name, total in sums.items()}
