"""INT8 Q/DQ placement from calibrated ranges.

The target decides the flavour: which integer types, symmetric or not, per-channel or
not.  :func:`cpu_flavour` picks what is accurate and fast on the running CPU; the
TensorRT family wants symmetric INT8 everywhere.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

if TYPE_CHECKING:
    from trtforge.precision.quantmemo import QuantMemo


@dataclass(frozen=True)
class QuantFlavour:
    """How Q/DQ nodes are written for one family of targets."""

    name: str
    activation_type: str  # "uint8" | "int8"
    weight_type: str  # "int8"
    activation_symmetric: bool
    per_channel: bool
    reduce_range: bool
    reason: str
    placement: str = "onnxruntime"
    """``onnxruntime``: every op ONNX Runtime has a QDQ kernel for, inputs and outputs.
    ``tensorrt``: inputs of the ops TensorRT fuses (see :data:`TENSORRT_OPS`), no outputs,
    and on a residual Add only the skip branch (the other input fuses into its Conv/Gemm)."""
    quantize_bias: bool = True
    """False for TensorRT, whose parser takes FP32 biases and rejects int32 DequantizeLinear on them."""
    skip_only_adds: bool = True
    """``tensorrt`` placement, on an Add fed by a Conv/Gemm: Q/DQ on the skip input only (TensorRT fuses
    Conv + Add there). False: on both inputs, which OpenVINO's CPU plugin needs to fuse the Add into the
    convolution as a sum (NNCF's placement)."""
    extra_op_types: tuple[str, ...] = ()
    """Op types whose inputs also get Q/DQ under the ``tensorrt`` placement (OpenVINO: ``Pad``, so a
    stem's Conv -> Pad -> MaxPool writes and pads u8, as in NNCF's models)."""
    output_op_types: tuple[str, ...] = ()
    """Op types whose outputs also get Q/DQ under the ``tensorrt`` placement (OpenVINO:
    ``GlobalAveragePool``, so a classifier's pool writes u8 and its Squeeze/Flatten and Gemm stay u8, as
    NNCF places it)."""
    full_range_depthwise: bool = False
    """With ``reduce_range``: depthwise convolutions (one input and one output channel per group) keep full
    8-bit weights. ONNX Runtime's AVX2 and AVX-512 depthwise kernels widen both operands before they
    multiply, so they cannot saturate where its ``vpmaddubsw`` GEMM kernels do (measured: the same
    speed, a closer match to FP32; benchmarks/int8_avx2.py)."""

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


# /proc/cpuinfo flag -> NumPy's name for the same CPUID feature.
_CPUID_FEATURES = {
    "avx": "AVX",
    "avx2": "AVX2",
    "fma": "FMA3",
    "f16c": "F16C",
    "avx512f": "AVX512F",
    "avx512bw": "AVX512BW",
    "avx512dq": "AVX512DQ",
    "avx512vl": "AVX512VL",
    "avx512cd": "AVX512CD",
    "avx512_vnni": "AVX512VNNI",
}


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's flags as this process can use them.

    ``/proc/cpuinfo`` lists what the kernel found; the kernels ONNX Runtime and OpenVINO pick come from
    CPUID as this process sees it, which a hypervisor or a CPUID mask (tools/cpuid_mask.py) can narrow.
    Flags NumPy's own CPUID probe finds missing are dropped (with AVX-512F, every AVX-512 flag).
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    flags = next((set(line.split(":", 1)[1].split()) for line in text.splitlines() if line.startswith("flags")), set())
    seen = _cpuid_features()
    hidden = {flag for flag, feature in _CPUID_FEATURES.items() if seen.get(feature) is False}
    if "avx512f" in hidden:
        hidden |= {flag for flag in flags if flag.startswith("avx512")}
    return frozenset(flags - hidden)


def _cpuid_features() -> dict[str, bool]:
    """NumPy's runtime CPU features (CPUID and XGETBV), or {} where this NumPy does not expose them."""
    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):
        try:
            features = importlib.import_module(module).__cpu_features__
        except (ImportError, AttributeError):
            continue
        return {str(k): bool(v) for k, v in features.items()}
    return {}


# CPU flags whose u8 x s8 dot-product instructions sum in 32 bits (no saturation on 8-bit weights).
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def has_vnni(flags: frozenset[str] | None = None) -> bool:
    flags = cpu_flags() if flags is None else flags
    return bool(flags & set(VNNI_FLAGS))


def cpu_flavour(flags: frozenset[str] | None = None, reduce_range: bool = False) -> QuantFlavour:
    """ONNX Runtime CPU: U8 activations, S8 per-channel weights.

    Without VNNI, ONNX Runtime's U8S8 convolution and GEMM kernels use ``vpmaddubsw``, whose 16-bit
    intermediate sums saturate; 7-bit weights (``reduce_range``) keep them exact. Its depthwise kernels
    widen both operands before they multiply and keep full 8-bit weights (:attr:`QuantFlavour.full_range_depthwise`).
    ``reduce_range`` asks for that flavour on a CPU with VNNI too, for an engine that runs on both kinds.
    """
    vnni = has_vnni(flags)
    if vnni and not reduce_range:
        return QuantFlavour(
            "onnxruntime-cpu",
            "uint8",
            "int8",
            False,
            True,
            False,
            "CPU has VNNI: U8S8 without saturation, full 8-bit weights",
        )
    why = (
        "7-bit weights asked for (reduce_range), so the engine also runs on CPUs without VNNI"
        if vnni
        else "CPU lacks VNNI: U8S8 with 7-bit weights (reduce_range) to avoid vpmaddubsw saturation"
    )
    reason = why + (
        "; depthwise convolutions keep 8-bit weights (their kernels widen before multiplying and cannot saturate)"
    )
    return QuantFlavour("onnxruntime-cpu", "uint8", "int8", False, True, True, reason, full_range_depthwise=True)


def openvino_flavour(flags: frozenset[str] | None = None) -> QuantFlavour:
    """OpenVINO CPU: U8 asymmetric activations, S8 per-channel weights, FP32 biases, Q/DQ on the
    inputs of the weighted ops, pooling, Pad and residual Adds (the TensorRT placement), on both inputs
    of an Add. Both as NNCF places them: OpenVINO then fuses a residual Add into the convolution before
    it as a u8 sum (with the skip input alone it ran 12 of ResNet-50's 16 Adds as separate layers after
    convolutions writing FP32), and runs a stem's Conv -> Pad -> MaxPool in u8: ResNet-50 4-13% faster.
    A GlobalAveragePool's output gets Q/DQ too (NNCF's FakeQuantize after the pool): a classifier's pool
    then writes u8 and its Squeeze/Flatten runs u8 into the FullyConnected, instead of FP32 Reorder,
    Reshape and FakeQuantize layers.

    Measured on YOLOv8n 320 (benchmarks/RESULTS.md, issue 17): 1.7-2.2x faster in OpenVINO than
    ONNX Runtime's placement (Q/DQ around every op splits OpenVINO's fusions) and closer to FP32
    than symmetric S8 activations (SiLU outputs are negative). Without VNNI, 7-bit weights as for
    ONNX Runtime: OpenVINO's U8S8 kernels use the same saturating ``vpmaddubsw``; its depthwise kernels
    do not saturate (an AVX2 build computes exactly what a VNNI one does with 8-bit depthwise weights,
    while 8-bit weights everywhere drift 21% of the output's range on MediaPipe hand), so those keep 8 bits.
    """
    vnni = has_vnni(flags)
    return QuantFlavour(
        "openvino-cpu",
        "uint8",
        "int8",
        False,
        True,
        not vnni,
        "OpenVINO CPU: U8 asymmetric activations, S8 per-channel weights, FP32 biases, Q/DQ on "
        "weighted-op and Pad inputs, both inputs of residual Adds, GlobalAveragePool outputs"
        + ("" if vnni else "; no VNNI: 7-bit weights (reduce_range), 8-bit on depthwise convolutions"),
        placement="tensorrt",
        quantize_bias=False,
        skip_only_adds=False,
        extra_op_types=("Pad",),
        output_op_types=("GlobalAveragePool",),
        full_range_depthwise=not vnni,
    )


TENSORRT_FLAVOUR = QuantFlavour(
    "tensorrt",
    "int8",
    "int8",
    True,
    True,
    False,
    "TensorRT: symmetric INT8 activations (zero point 0), per-channel symmetric weights, FP32 biases, "
    "Q/DQ on the inputs of weighted ops, pooling and residual Adds",
    placement="tensorrt",
    quantize_bias=False,
)

# Ops whose inputs get Q/DQ for TensorRT: weighted ops (TensorRT fuses DQ into them and a
# following Q into their output), pooling, and Add for the residual branch.
TENSORRT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "AveragePool", "GlobalAveragePool", "MaxPool", "Add")
# Ops kept in float by default in every flavour: their output range is fixed and fine-grained
# (a 1000-class Softmax quantized to steps of 1/255 returns all-zero probability vectors).
FLOAT_OPS = ("Softmax", "LogSoftmax")
# Known output ranges; Clip's comes from its bounds.
_UNIT_RANGES = {"Sigmoid": (0.0, 1.0), "HardSigmoid": (0.0, 1.0), "Softmax": (0.0, 1.0), "Tanh": (-1.0, 1.0)}
# Activations ONNX Runtime's CPU placement folds into the Q/DQ range of their producer's output.
_FOLDABLE = frozenset({"Relu", "Clip"})
# A Concat whose inputs' ranges differ by more than this stays float rather than share one scale.
JOIN_RANGE_RATIO = 16.0
# Ops that only move, select or join values: a tensor they carry to a graph output unchanged is that output.
# ``{op: indices of the data inputs}`` (None: every input).
LAYOUT_OPS: dict[str, tuple[int, ...] | None] = {
    **dict.fromkeys(("Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Split", "Slice"), (0,)),
    **dict.fromkeys(("Identity", "Gather", "Expand", "Tile", "DepthToSpace", "SpaceToDepth"), (0,)),
    "Concat": None,
}
# Producers an Add input fuses into (Conv + BN + Add + ReLU run as one INT8 kernel).
_BACKBONE = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "BatchNormalization"})


def quantize(
    model: onnx.ModelProto,
    ranges: dict[str, tuple[float, float]],
    flavour: QuantFlavour,
    exclude_nodes: tuple[str, ...] = (),
    exclude_op_types: tuple[str, ...] = (),
    quantized_inputs: tuple[str, ...] = (),
    memo: QuantMemo | None = None,
) -> onnx.ModelProto:
    """Insert QuantizeLinear/DequantizeLinear pairs using ``ranges``; returns a new model.

    ``exclude_nodes`` (node names) and ``exclude_op_types`` stay in floating point. An excluded node
    in ``quantized_inputs`` still reads the DequantizeLinear output its quantized producer writes (ONNX
    Runtime CPU: the producer keeps the Q after it, so it still fuses into an integer kernel); other
    excluded nodes read the float tensor. ``memo`` (made for this ``model``) keeps shape inference and
    the weights' scales and rounding for the next call on it: the same result, faster.
    """
    import numpy as np
    from onnxruntime.quantization import QDQQuantizer, QuantType
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    check_exclusions(model, exclude_nodes, exclude_op_types)
    qtype = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    tensorrt = flavour.placement == "tensorrt"
    candidates = {*TENSORRT_OPS, *flavour.extra_op_types} if tensorrt else set(QLinearOpsRegistry) | set(QDQRegistry)
    op_types = sorted(candidates - set(exclude_op_types) - set(FLOAT_OPS))
    ranges = {**ranges, **bounded_ranges(model)}  # a known output range beats any histogram
    exclude_nodes = (*exclude_nodes, *[n for n in split_joins(model, ranges) if n not in exclude_nodes])
    extra: dict[str, object] = {"ActivationSymmetric": flavour.activation_symmetric, "WeightSymmetric": True}
    if tensorrt:
        extra.update(
            {
                # TensorRT: Q/DQ on inputs only
                "OpTypesToExcludeOutputQuantization": [t for t in op_types if t not in flavour.output_op_types],
                "QDQKeepRemovableActivations": True,  # keep ReLU: TensorRT fuses it
                "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
            }
        )
    if flavour.reduce_range and flavour.full_range_depthwise:
        axis = {"axis": 0} if flavour.per_channel else {}
        extra["TensorQuantOverrides"] = {w: [{**axis, "reduce_range": False}] for w in depthwise_weights(model)}
    from trtforge.precision.calibrate import folded_activations

    # ONNX Runtime looks up a range for an op output it then replaces by its ReLU's: give it that one.
    ranges = {**{op: ranges[act] for op, act in folded_activations(model).items() if act in ranges}, **ranges}
    if memo is not None:
        assert memo.model is model, "a QuantMemo serves the one model it was made for"
    inferred = memo.inferred(_shape_inferred) if memo is not None else _shape_inferred(model)
    if not tensorrt and "GlobalAveragePool" in op_types:
        ranges = pool_output_ranges(inferred, ranges, set(exclude_nodes))
    tensors = TensorsData(
        CalibrationMethod.MinMax,
        {name: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for name, (lo, hi) in ranges.items()},
    )
    unranged = _unranged_nodes(inferred, ranges, set(op_types), set(exclude_nodes))
    if unranged:
        import warnings

        warnings.warn(
            f"{len(unranged)} node(s) stay in floating point because the ranges have no entry for "
            f"some of their tensors (e.g. {', '.join(unranged[:3])})",
            stacklevel=2,
        )
    quantizer = (memo.quantizer if memo is not None else QDQQuantizer)(
        inferred,
        flavour.per_channel,
        flavour.reduce_range,
        qtype[flavour.weight_type],
        qtype[flavour.activation_type],
        tensors,
        [],
        [*exclude_nodes, *unranged],
        op_types,
        {**extra, "QuantizeBias": flavour.quantize_bias},
    )
    with _quiet_axis_warnings():
        quantizer.quantize_model()
    out = quantizer.model.model
    if tensorrt and flavour.skip_only_adds:
        _fuse_residual_adds(out)
    _keep_float_inputs(out, set(exclude_nodes) - set(quantized_inputs), {*exclude_op_types, *FLOAT_OPS})
    _keep_float_outputs(out, model)
    _keep_float_output_paths(out, model)
    restore_activations(model, out)  # a float reader must not see pre-ReLU values
    return out


def pool_output_ranges(
    model: onnx.ModelProto,
    ranges: dict[str, tuple[float, float]],
    excluded: Collection[str] = (),
) -> dict[str, tuple[float, float]]:
    """``ranges`` where ONNX Runtime's QLinearGlobalAveragePool would refuse a pool's scales, widened so it
    does not: it needs the input's scale under 256 x the output's x H x W (a pool whose inputs are all near
    0, as in a random-weight network, breaks that). Such a pool's output range (and the layout ops' outputs
    it reaches) becomes the input's over 128 x H x W: no precision is lost, as the mean of H x W integers
    of the input's step has steps of that step over H x W. Pools in ``excluded`` (node names) and pools
    ONNX Runtime accepts keep their ranges. ``model`` needs inferred shapes."""
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.value_info}
    shapes.update({v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.input})
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for tensor in node.input:
            readers.setdefault(tensor, []).append(node)

    def span(tensor: str) -> float:
        lo, hi = out.get(tensor, (0.0, 0.0))
        return max(hi, 0.0) - min(lo, 0.0)

    out = dict(ranges)
    for node in model.graph.node:
        spatial = shapes.get(node.input[0], [])[2:] if node.op_type == "GlobalAveragePool" else []
        if not spatial or 0 in spatial or node.name in excluded or node.input[0] not in ranges:
            continue
        size = math.prod(spatial)
        if span(node.output[0]) * size * 256.0 > span(node.input[0]) * (1.0 + 1e-3):
            continue  # ONNX Runtime takes it as it is
        least, tensors = span(node.input[0]) / (128.0 * size), [node.output[0]]
        while tensors:
            tensor = tensors.pop()
            if span(tensor) < least:
                lo = min(out.get(tensor, (0.0, 0.0))[0], 0.0)
                out[tensor] = (lo, lo + least)
            tensors += [
                r.output[0] for r in readers.get(tensor, []) if r.op_type in LAYOUT_OPS and r.input[0] == tensor
            ]
    return out


def depthwise_weights(model: onnx.ModelProto) -> list[str]:
    """The weight initializers of the depthwise Convs in ``model``: one input and one output channel per group
    (the Convs ONNX Runtime runs with its depthwise kernels; a channel multiplier above 1 is a grouped GEMM)."""
    dims = {i.name: tuple(i.dims) for i in model.graph.initializer}
    depthwise, other = set(), set()
    for node in model.graph.node:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        shape = dims.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        if group > 1 and shape is not None and len(shape) >= 3 and shape[:2] == (group, 1):
            depthwise.add(node.input[1])
            other.update(node.input[:1] + node.input[2:])
        else:
            other.update(node.input)
    return sorted(depthwise - other)  # a weight another op also reads keeps that op's range


def _shape_inferred(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with ONNX shape inference applied, as ONNX Runtime's quantizer loads it."""
    import tempfile

    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer

    with tempfile.TemporaryDirectory(prefix="trtforge-quant-") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(model, str(path))
        return load_model_with_shape_infer(path)


class _AxisWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "is out-of-range for weight" not in record.getMessage()


@contextlib.contextmanager
def _quiet_axis_warnings() -> Iterator[None]:
    """ONNX Runtime logs "Axis 1 is out-of-range for weight" on the root logger for a per-channel
    weight of rank 1 (a Gemm/MatMul bias-like weight), then quantizes it per tensor: expected, not
    the user's concern, so it does not reach their terminal."""
    root = logging.getLogger()
    quiet = _AxisWarning()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def kept_float(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]]) -> dict[str, str]:
    """``{node: reason}`` for the nodes :func:`quantize` keeps in float on its own, whatever the flavour
    (a node whose output alone stays float says so)."""
    kept = {
        n.name: f"{n.op_type}: a fixed, fine-grained output range" for n in model.graph.node if n.op_type in FLOAT_OPS
    }
    for name in split_joins(model, {**ranges, **bounded_ranges(model)}):
        kept[name] = f"joins inputs whose ranges differ more than {JOIN_RANGE_RATIO:g}x"
    carried = output_carriers(model)
    for node in model.graph.node:
        outputs = sorted({carried[t] for t in node.output if t in carried})
        if outputs and node.op_type not in LAYOUT_OPS and node.name not in kept:
            kept[node.name] = (
                f"output only: it reaches graph output {', '.join(map(repr, outputs))} through layout ops "
                "alone (a quantized graph output in disguise)"
            )
    return kept


def output_carriers(model: onnx.ModelProto) -> dict[str, str]:
    """``{tensor: graph output}`` for every tensor whose values reach a graph output through
    :data:`LAYOUT_OPS` alone (Transpose, Reshape, Concat...), the outputs included.

    Such a tensor holds the output's values: a Q/DQ pair on it rounds the output as surely as one on
    the output itself. A detector's score head (Conv -> Transpose -> Reshape -> Concat) is the case:
    its logits' calibrated range spans hundreds (the background anchors), so one 8-bit scale turns
    the few logits that rank faces into two or three levels.
    """
    carried = {o.name: o.name for o in model.graph.output}
    for node in reversed(model.graph.node):  # topological order: a reader comes after its inputs' writers
        data = LAYOUT_OPS.get(node.op_type, ())
        output = next((carried[t] for t in node.output if t in carried), None)
        if output is None or node.op_type not in LAYOUT_OPS:
            continue
        for i, tensor in enumerate(node.input):
            if tensor and (data is None or i in data):
                carried.setdefault(tensor, output)
    return carried


def bounded_ranges(model: onnx.ModelProto) -> dict[str, tuple[float, float]]:
    """``{tensor: (lo, hi)}`` for outputs of ops with a known range (Sigmoid, Softmax, Tanh, HardSigmoid,
    a Clip with constant bounds): calibration must not clip a probability map to its histogram's bulk."""
    import numpy as np
    from onnx import numpy_helper

    constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    known: dict[str, tuple[float, float]] = {}
    for node in model.graph.node:
        if node.op_type in _UNIT_RANGES:
            known[node.output[0]] = _UNIT_RANGES[node.op_type]
        elif node.op_type == "Clip":
            attrs = {a.name: a.f for a in node.attribute}
            bounds = [attrs.get("min"), attrs.get("max")]
            for i in (1, 2):
                if len(node.input) > i and node.input[i] in constants:
                    bounds[i - 1] = float(np.asarray(constants[node.input[i]]).reshape(-1)[0])
            if bounds[0] is not None and bounds[1] is not None:
                known[node.output[0]] = (float(bounds[0]), float(bounds[1]))
    return known


def split_joins(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]]) -> list[str]:
    """Concat nodes whose inputs' ranges differ more than :data:`JOIN_RANGE_RATIO`: one scale for
    boxes in 0..320 next to scores in 0..1 rounds every score to 0, so these joins stay float."""
    joins = []
    for node in model.graph.node:
        if node.op_type != "Concat":
            continue
        spans = [ranges[t][1] - ranges[t][0] for t in node.input if t in ranges]
        if len(spans) >= 2 and max(spans) > JOIN_RANGE_RATIO * max(min(spans), 1e-12):
            joins.append(node.name)
    return joins


def _keep_float_outputs(model: onnx.ModelProto, original: onnx.ModelProto) -> None:
    """A graph output never passes through Q/DQ: the producer writes the output itself again.

    ONNX Runtime's placement drops a ReLU/Clip whose range the Q/DQ pair clamps; on an output
    that pair goes, so the activation (from ``original``) comes back.
    """
    graph = model.graph
    folded = {n.output[0]: n for n in original.graph.node if n.op_type in _FOLDABLE}
    producer = {out: node for node in graph.node for out in node.output}
    for output in graph.output:
        dq = producer.get(output.name)
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if q is None or q.op_type != "QuantizeLinear" or q.input[0] not in producer:
            continue
        source, tensor = producer[q.input[0]], q.input[0]
        graph.node.remove(dq)
        source.output[list(source.output).index(tensor)] = output.name
        for node in graph.node:  # other readers of the float tensor read the output
            for i, name in enumerate(node.input):
                if name == tensor:
                    node.input[i] = output.name
        activation = folded.get(output.name)
        if activation is not None and not any(n.name == activation.name for n in graph.node):
            _restore_activation(model, original, activation, source)
    _drop_unused_qdq(graph)


def _keep_float_output_paths(model: onnx.ModelProto, original: onnx.ModelProto) -> None:
    """The layout ops that carry a tensor to a graph output read it float (see :func:`output_carriers`):
    their Q/DQ pairs go, and the tensor's other readers keep theirs. In place."""
    graph = model.graph
    carried = output_carriers(original)
    producer = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        data = LAYOUT_OPS.get(node.op_type, ())
        if node.op_type not in LAYOUT_OPS or not any(t in carried for t in node.output):
            continue
        for i, tensor in enumerate(node.input):
            dq = producer.get(tensor)
            q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if (data is None or i in data) and q is not None and q.op_type == "QuantizeLinear":
                node.input[i] = q.input[0]
    _drop_unused_qdq(graph)


# Ops ONNX Runtime CPU has no integer kernel with a float output for: with DQ inputs and no Q after, they
# run in float (a Gemm becomes QGemm writing float, a MatMul MatMulIntegerToFloat: those keep their DQ).
_FLOAT_RUN_OPS = frozenset({"Conv", "ConvTranspose"})


def bake_float_weights(model: onnx.ModelProto, flavour: QuantFlavour) -> list[str]:
    """Convolutions whose output no QuantizeLinear reads (a graph output's writer or carrier) run in float
    on ONNX Runtime CPU: their DequantizeLinear of constant weights and bias becomes the constant it
    computes (the same values), so the engine does not dequantize them at every run. After the bias
    corrections, which read the DequantizeLinear. ONNX Runtime placement only (TensorRT fuses DQ weights
    into every INT8 layer). In place; returns the names of the nodes baked."""
    if flavour.placement != "onnxruntime":
        return []
    import numpy as np
    from onnx import numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    quantized = {n.input[0] for n in graph.node if n.op_type == "QuantizeLinear"}
    baked: dict[str, str] = {}
    nodes: set[str] = set()
    for node in graph.node:
        if node.op_type not in _FLOAT_RUN_OPS or any(t in quantized for t in node.output):
            continue
        for i, tensor in enumerate(node.input[1:], start=1):
            dq = producer.get(tensor)
            if dq is None or dq.op_type != "DequantizeLinear" or any(t not in inits for t in dq.input):
                continue
            if tensor not in baked:
                q, scale, *zero = (numpy_helper.to_array(inits[t]).astype(np.float64) for t in dq.input)
                offset = zero[0] if zero else np.zeros_like(scale)
                if scale.ndim == 1 and q.ndim > 1:  # per channel along the axis attribute
                    shape = [1] * q.ndim
                    shape[next((a.i for a in dq.attribute if a.name == "axis"), 1)] = -1
                    scale, offset = scale.reshape(shape), offset.reshape(shape)
                baked[tensor] = f"{tensor}_baked"
                values = ((q - offset) * scale).astype(np.float32)
                graph.initializer.append(numpy_helper.from_array(values, baked[tensor]))
            node.input[i] = baked[tensor]
            nodes.add(node.name)
    _drop_unused_qdq(graph)
    return sorted(nodes)


def integer_pads(model: onnx.ModelProto) -> list[str]:
    """Pads that ONNX Runtime's CPU provider would run in float between a DequantizeLinear and a
    QuantizeLinear of the same scale and zero point (it has no rule to drop Q/DQ around a Pad) pad the
    integer tensor instead, padding with the zero point where the float Pad padded with 0: the same
    values, without a dequantize-pad-quantize round trip per Pad (BlazeFace-style channel padding).
    For the CPU provider only (ONNX Runtime's CUDA Pad has no integer kernel). In place; returns the
    names of the Pads rewritten."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for tensor in node.input:
            readers.setdefault(tensor, []).append(node)
    outputs = {o.name for o in graph.output}

    def scalar(name: str) -> Any:
        return numpy_helper.to_array(inits[name]) if name in inits and len(inits[name].dims) == 0 else None

    rewritten: list[str] = []
    for pad in [n for n in graph.node if n.op_type == "Pad"]:
        dq, after = producer.get(pad.input[0]), readers.get(pad.output[0], [])
        if dq is None or dq.op_type != "DequantizeLinear" or len(after) != 1 or pad.output[0] in outputs:
            continue
        q = after[0]
        if q.op_type != "QuantizeLinear" or len(dq.input) < 3 or len(q.input) < 3:
            continue
        params = [scalar(t) for t in (*dq.input[1:3], *q.input[1:3])]
        if any(v is None for v in params) or params[0] != params[2] or params[1] != params[3]:
            continue
        if params[1].dtype != params[3].dtype or params[1].dtype.kind not in "ui":
            continue
        mode = next((a.s.decode() for a in pad.attribute if a.name == "mode"), "constant")
        value = scalar(pad.input[2]) if len(pad.input) > 2 and pad.input[2] else 0.0
        if mode == "constant" and (value is None or float(value) != 0.0):
            continue
        zero = f"{pad.name or pad.output[0]}_zero_point"
        graph.initializer.append(numpy_helper.from_array(params[1].copy(), zero))
        pads, rest = pad.input[1], list(pad.input[3:])
        del pad.input[:]
        pad.input.extend([dq.input[0], pads, zero, *rest])
        pad.output[0] = q.output[0]
        graph.node.remove(q)
        rewritten.append(pad.name)
    _drop_unused_qdq(graph)
    return rewritten


def _restore_activation(
    model: onnx.ModelProto, original: onnx.ModelProto, activation: onnx.NodeProto, source: onnx.NodeProto
) -> None:
    output = activation.output[0]
    before = f"{output}_before_{activation.op_type.lower()}"
    source.output[list(source.output).index(output)] = before
    restored = onnx.NodeProto()
    restored.CopyFrom(activation)
    restored.input[0] = before
    at = next(i for i, n in enumerate(model.graph.node) if before in n.output)
    model.graph.node.insert(at + 1, restored)  # right after its producer: the graph stays sorted
    have = {i.name for i in model.graph.initializer}
    model.graph.initializer.extend(
        i for i in original.graph.initializer if i.name in restored.input[1:] and i.name not in have
    )


def _unranged_nodes(
    model: onnx.ModelProto, ranges: dict[str, tuple[float, float]], op_types: set[str], excluded: set[str]
) -> list[str]:
    """Nodes that would be quantized but have a float activation without a range (a partial cache)."""
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
    graph = model.graph
    is_float = {
        v.name: v.type.tensor_type.elem_type in floats for v in [*graph.value_info, *graph.input, *graph.output]
    }
    constants = {i.name for i in graph.initializer}
    return [
        node.name
        for node in graph.node
        if node.op_type in op_types
        and node.name not in excluded
        and any(
            t and t not in constants and is_float.get(t, False) and t not in ranges for t in [*node.input, *node.output]
        )
    ]


def check_exclusions(model: onnx.ModelProto, nodes: tuple[str, ...], op_types: tuple[str, ...]) -> None:
    from trtforge.errors import TrtforgeError

    names = {n.name for n in model.graph.node}
    types = {n.op_type for n in model.graph.node}
    unknown = [n for n in nodes if n not in names]
    if unknown:
        raise TrtforgeError(
            f"--exclude-nodes: no node named {', '.join(map(repr, unknown))} in the model; "
            "`trtforge inspect MODEL` lists node names"
        )
    absent = [t for t in op_types if t not in types]
    if absent:
        raise TrtforgeError(
            f"--exclude-op-types: the model has no {', '.join(map(repr, absent))} node; "
            f"its op types are {', '.join(sorted(types))}"
        )


@dataclass(frozen=True)
class Exclusions:
    """The user's exclusions, followed from the source model to the prepared one."""

    nodes: tuple[str, ...]
    """Prepared-model node names to keep float."""
    op_types: tuple[str, ...]
    """Op types present in the prepared model."""
    became: dict[str, list[str]]
    """``{source node: [prepared nodes it became]}`` for every source node kept float; ``[]`` when
    prepare() folded it into constants (nothing left to keep float)."""

    def to_json(self) -> dict[str, object]:
        return {"float_nodes": self.became}


def lineage(source: onnx.ModelProto, prepared: onnx.ModelProto) -> dict[str, list[str]]:
    """``{source node: [prepared nodes it became]}`` through :func:`prepare`'s rewrites.

    A node keeps its name, or was fused into one named after it (MatMul + Add -> Gemm
    ``<MatMul>/MatMulAddFusion``), or into the node that now writes its output (a BatchNormalization
    into its Conv); ``[]`` when constants were folded.
    """
    names = {n.name for n in prepared.graph.node}
    writer = {out: n.name for n in prepared.graph.node for out in n.output}
    became: dict[str, list[str]] = {}
    for node in source.graph.node:
        if node.name in names:
            became[node.name] = [node.name]
            continue
        found = [n for n in names if node.name and n.startswith(node.name + "/")]
        found += [writer[t] for t in node.output if t in writer and writer[t] not in found]
        became[node.name] = sorted(found)
    return became


def follow_exclusions(
    source: onnx.ModelProto, prepared: onnx.ModelProto, nodes: tuple[str, ...], op_types: tuple[str, ...]
) -> Exclusions:
    """Map ``--exclude-nodes``/``--exclude-op-types`` (source or prepared names) onto ``prepared``."""
    check_exclusions(_union(source, prepared), nodes, op_types)
    became = lineage(source, prepared)
    prepared_names = {n.name for n in prepared.graph.node}
    wanted = [*nodes, *(n.name for n in source.graph.node if n.op_type in op_types)]
    kept: dict[str, list[str]] = {}
    for name in wanted:
        kept[name] = became.get(name, [name] if name in prepared_names else [])
    for node in prepared.graph.node:  # a node of that type that only exists after prepare()
        if node.op_type in op_types and not any(node.name in v for v in kept.values()):
            kept[node.name] = [node.name]
    targets = tuple(dict.fromkeys(t for v in kept.values() for t in v))
    types = tuple(t for t in op_types if t in {n.op_type for n in prepared.graph.node})
    return Exclusions(targets, types, kept)


def _union(*models: onnx.ModelProto) -> onnx.ModelProto:
    """A model whose nodes are all of ``models``' nodes (for name checks only)."""
    union = onnx.ModelProto()
    for model in models:
        union.graph.node.extend(model.graph.node)
    return union


def _fuse_residual_adds(model: onnx.ModelProto) -> None:
    """On an Add fed by a Conv/Gemm (possibly via BN), drop the Q/DQ on that input.

    TensorRT fuses Conv + Add(skip) + ReLU into one INT8 kernel when the skip input is
    quantized and the Conv's own output is not; a Q/DQ on both inputs would split the fusion.
    """
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    for add in (n for n in graph.node if n.op_type == "Add"):
        for i, tensor in enumerate(add.input):
            dq = producer.get(tensor)
            q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            source = producer.get(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" else None
            if q is not None and source is not None and source.op_type in _BACKBONE and len(add.input) == 2:
                other = producer.get(add.input[1 - i])
                if other is not None and other.op_type == "DequantizeLinear":  # the skip stays quantized
                    add.input[i] = q.input[0]
                    break
    _drop_unused_qdq(graph)


def _keep_float_inputs(model: onnx.ModelProto, nodes: set[str], op_types: set[str]) -> None:
    """Excluded nodes read the float tensor, even where a Q/DQ pair is shared with a quantized consumer."""
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        if node.name not in nodes and node.op_type not in op_types:
            continue
        for i, tensor in enumerate(node.input):
            dq = producer.get(tensor)
            q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is not None and q.op_type == "QuantizeLinear":
                node.input[i] = q.input[0]
    _drop_unused_qdq(graph)


def _drop_unused_qdq(graph: onnx.GraphProto) -> None:
    while True:
        used = {t for n in graph.node for t in n.input} | {o.name for o in graph.output}
        dead = [
            n
            for n in graph.node
            if n.op_type in ("QuantizeLinear", "DequantizeLinear") and not any(o in used for o in n.output)
        ]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {t for n in graph.node for t in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


INT8_MIN_OPSET = 13  # per-channel DequantizeLinear (an axis attribute) needs opset 13


def ensure_opset(model: onnx.ModelProto, wanted: int = INT8_MIN_OPSET) -> tuple[onnx.ModelProto, int | None]:
    """``model`` at opset ``wanted`` or above, and the opset it was upgraded from (None if not).

    Upgrades with onnx's version converter and keeps the result only if it passes the checker and
    gives the same outputs as the original on seeded random inputs; otherwise refuses, before any
    calibration is spent on a model that cannot take per-channel Q/DQ.
    """
    from trtforge.errors import TrtforgeError

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), wanted)
    if opset >= wanted:
        return model, None
    fix = (
        f"export it again at opset {wanted} or later (tf2onnx --opset {wanted}, "
        f"torch.onnx.export(..., opset_version={wanted}))"
    )
    try:
        from onnx import version_converter

        upgraded = version_converter.convert_version(model, wanted)
        onnx.checker.check_model(upgraded)
        _same_outputs(model, upgraded)
    except Exception as exc:  # the converter raises many kinds; any means: not upgradable here
        raise TrtforgeError(
            f"INT8 needs opset {wanted} or later, the model is opset {opset} and onnx's version "
            f"converter could not upgrade it faithfully ({str(exc).splitlines()[0][:160]}); "
            f"{fix}"
        ) from None
    return upgraded, opset


def _same_outputs(before: onnx.ModelProto, after: onnx.ModelProto) -> None:
    import numpy as np

    from trtforge.data.arrays import random_inputs
    from trtforge.graph.model import graph_inputs
    from trtforge.precision.check import run

    feeds = dict(random_inputs(graph_inputs(before), seed=0, batch=1))
    old, new = run(before, feeds), run(after, feeds)
    for name, value in old.items():
        if not np.allclose(value, new[name], rtol=1e-4, atol=1e-5):
            raise ValueError(f"output {name} changed by up to {float(np.max(np.abs(value - new[name]))):.3g}")


def prepare(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with ONNX Runtime's basic graph optimizations applied, before calibration.

    Basic level rewrites stay within standard ONNX: constants folded, Conv + BatchNormalization /
    Mul / Add(constant) fused into the Conv.  Without it, a Q/DQ pair between a Conv and its
    folded-BN Mul blocks that fusion in every backend (MobileNetV2 from tf2onnx has 17 such Muls),
    and calibration would measure tensors that never exist at run time.
    """
    import tempfile

    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="trtforge-prep-") as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(Path(tmp) / "prepared.onnx")
        options.log_severity_level = 3
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        prepared = onnx.load(options.optimized_model_filepath)
    # the optimizer may reorder graph inputs' initializers but keeps names, IO and opset
    return prepared


def restore_activations(source: onnx.ModelProto, quantized: onnx.ModelProto) -> onnx.ModelProto:
    """Put back each ReLU/Clip that ONNX Runtime's Q/DQ placement removed where a float node reads it.

    The placement drops an activation before its QuantizeLinear (the Q's clamp does the same work) and
    gives the op before it the activation's output name; a node kept float that read that tensor would
    then read the values before the activation (found by ``tests/test_sensitivity.py``). In place.
    """
    graph = quantized.graph
    present = {n.name for n in graph.node}
    inits = {i.name for i in graph.initializer}
    source_inits = {i.name: i for i in source.graph.initializer}
    outputs = {o.name for o in graph.output}
    for act in (n for n in source.graph.node if n.op_type in ("Relu", "Clip") and n.name not in present):
        tensor = act.output[0]
        readers = [n for n in graph.node if tensor in n.input]
        if tensor not in outputs and all(r.op_type == "QuantizeLinear" for r in readers):
            continue
        at = next((i for i, n in enumerate(graph.node) if tensor in n.output), None)
        if at is None:
            continue
        producer = graph.node[at]
        producer.output[list(producer.output).index(tensor)] = f"{tensor}_before_{act.op_type}"
        restored = onnx.NodeProto()
        restored.CopyFrom(act)
        restored.input[0] = f"{tensor}_before_{act.op_type}"
        graph.node.insert(at + 1, restored)
        graph.initializer.extend(
            source_inits[t] for t in restored.input[1:] if t and t in source_inits and t not in inits
        )
    return quantized
