"""FP16 and BF16 as casts of the graph, checked against FP32 before any backend sees them.

The cast is one pass of our own (:class:`_HalfGraph`): onnxconverter-common 1.16's
``convert_float_to_float16`` produced invalid graphs as soon as a node was kept in FP32 (a weight
shared with a cast node keeps one type; a kept last node gets its output cast to FP16), and the
check below keeps nodes in FP32 all the time.  The check: the FP32 model runs on check data with
every activation exposed, and

* nodes whose FP32 outputs exceed what FP16 can hold are kept in FP32 before casting;
* the cast is then simulated in FP32 (every half-precision tensor rounded through an explicit
  Cast pair, which ONNX Runtime keeps, where its CPU provider would otherwise compute "FP16" ops
  in FP32 and fold the casts away); nodes whose outputs turn non-finite or drift past a
  tolerance while their inputs did not are kept in FP32 too (a few rounds at most).

Every node kept, and why, goes into :class:`CastReport`, which the manifest records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx

from trtforge.config import Precision
from trtforge.errors import TrtforgeError

FP16_MAX = 65504.0
# Ops whose reduced-precision versions overflow or lose too much in practice; kept in FP32.
OVERFLOW_PRONE = (
    "Exp",
    "Pow",
    "ReduceSumSquare",
    "ReduceL2",
    "ReduceLogSumExp",
    "RandomNormal",
    "RandomUniform",
    "RandomNormalLike",
)
# Ops that stay FP32 whatever the data: FP32-only inputs (Resize scales, Range), index and
# sorting ops whose ties change in half precision, and the quantization ops.
KEPT_OPS = (
    "Resize",
    "Upsample",
    "Range",
    "TopK",
    "NonMaxSuppression",
    "RoiAlign",
    "CumSum",
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
)
# Relative error (max abs error / max abs FP32 value) past which a node's output counts as drifted.
TOLERANCE = {Precision.FP16: 1e-2, Precision.BF16: 4e-2}
_ROUNDS = 3


@dataclass
class CastReport:
    precision: str
    blocked_op_types: list[str]
    kept: dict[str, str] = field(default_factory=dict)
    """Node name -> why it stays FP32 (user exclusion, FP32 range, drift after casting)."""
    checked_on: str = ""
    output_error: dict[str, float] = field(default_factory=dict)
    """Per output: max abs error / max abs FP32 value on the check data, after the last round."""

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


def cast(
    model: onnx.ModelProto,
    precision: Precision,
    check_feeds: Mapping[str, np.ndarray] | None = None,
    checked_on: str = "",
    exclude_nodes: Iterable[str] = (),
    exclude_op_types: Iterable[str] = (),
) -> tuple[onnx.ModelProto, CastReport]:
    """Cast ``model`` to ``precision`` (FP16 or BF16), IO types kept; returns the model and a report.

    ``check_feeds`` (one batch of real or random inputs) drives the range and drift checks;
    without it the cast is static (op block list and exclusions only).
    """
    if precision not in (Precision.FP16, Precision.BF16):
        raise ValueError(f"cast() makes FP16 or BF16 graphs, not {precision}")
    blocked_ops = sorted(set(KEPT_OPS) | set(OVERFLOW_PRONE) | set(exclude_op_types))
    report = CastReport(str(precision), blocked_ops, checked_on=checked_on)
    for name in exclude_nodes:
        report.kept[name] = "excluded by the user"
    model = _named(model)
    report.kept.update(_with_subgraphs(model))
    reference = _activations(model, check_feeds) if check_feeds is not None else None
    if reference is not None and precision is Precision.FP16:
        for node in model.graph.node:
            peak = max((_absmax(reference.get(o)) for o in node.output), default=0.0)
            if peak > FP16_MAX / 2 and node.name not in report.kept:
                report.kept[node.name] = f"FP32 outputs reach {peak:.4g}, past half the FP16 range"
    half = onnx.TensorProto.FLOAT16 if precision is Precision.FP16 else onnx.TensorProto.BFLOAT16
    for _ in range(_ROUNDS if reference is not None else 0):
        assert reference is not None
        low = _Placement(set(blocked_ops), set(report.kept))
        drifted = _drifted(model, _simulated(model, half, low), reference, check_feeds, TOLERANCE[precision], report)
        if not drifted:
            break
        report.kept.update(drifted)
    return _convert(model, precision, blocked_ops, list(report.kept)), report


class HalfPlan:
    """Casts of one model to half precision that differ only in which nodes stay FP32: what the
    accuracy-budget search tries (the model's tensor types are inferred once, not per variant).

    ``only`` limits the half-precision nodes to a set (the kept units of a mixed INT8 model)."""

    def __init__(self, model: onnx.ModelProto, precision: Precision = Precision.FP16) -> None:
        if precision not in (Precision.FP16, Precision.BF16):
            raise ValueError(f"HalfPlan makes FP16 or BF16 graphs, not {precision}")
        self.model, self.precision = _topological(_named(model)), precision
        self.half = onnx.TensorProto.FLOAT16 if precision is Precision.FP16 else onnx.TensorProto.BFLOAT16
        self.blocked_ops = set(KEPT_OPS) | set(OVERFLOW_PRONE)
        self.types = _float_types(self.model)

    def lowered(self, node: onnx.NodeProto) -> bool:
        """Whether a plain cast would run ``node`` in half precision and round what it writes (a float
        output: a Shape of a float tensor writes integers, nothing to round)."""
        writes_float = any(self.types.get(t) == _FLOAT for t in node.output if t)
        return writes_float and _Placement(self.blocked_ops, set())(node)

    def simulated(self, kept: Iterable[str] = (), only: Iterable[str] | None = None) -> onnx.ModelProto:
        """FP32 arithmetic with the half-precision tensors rounded: what ONNX Runtime CPU can measure."""
        low = _Placement(self.blocked_ops, set(kept), None if only is None else set(only))
        return _simulated(self.model, self.half, low, self.types)

    def cast(self, kept: Iterable[str] = (), only: Iterable[str] | None = None) -> onnx.ModelProto:
        """The real cast: every node but ``kept`` (and, with ``only``, only those) in half precision."""
        low = _Placement(self.blocked_ops, set(kept), None if only is None else set(only))
        return _checked(_HalfGraph(self.model, self.half, low).build(), self.precision)


def _topological(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` (in place) with its nodes in an order where each follows what it reads: ONNX Runtime's
    quantizer appends the Q/DQ nodes at the end, and the cast is one pass in node order."""
    made = {o: i for i, n in enumerate(model.graph.node) for o in n.output if o}
    order: list[int] = []
    state: dict[int, bool] = {}  # False while visiting, True when placed
    for start in range(len(model.graph.node)):
        stack = [(start, False)]
        while stack:
            index, expanded = stack.pop()
            if expanded:
                state[index] = True
                order.append(index)
                continue
            if index in state:
                continue
            state[index] = False
            stack.append((index, True))
            inputs = [t for t in model.graph.node[index].input if t in made and made[t] not in state]
            stack.extend((made[t], False) for t in reversed(inputs))
    nodes = [model.graph.node[i] for i in order]
    copies = [onnx.NodeProto() for _ in nodes]
    for copy, node in zip(copies, nodes):
        copy.CopyFrom(node)
    del model.graph.node[:]
    model.graph.node.extend(copies)
    return model


def _with_subgraphs(model: onnx.ModelProto) -> dict[str, str]:
    """If/Loop/Scan nodes: they and everything inside their subgraphs stay FP32 (not cast), said plainly."""
    kept = {}
    for node in model.graph.node:
        graphs = [a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]
        graphs += [g for a in node.attribute if a.type == onnx.AttributeProto.GRAPHS for g in a.graphs]
        if graphs:
            nodes = sum(len(g.node) for g in graphs)
            weights = sum(1 for g in graphs for t in g.initializer if t.data_type == _FLOAT)
            weights += sum(1 for g in graphs for n in g.node if n.op_type == "Constant")
            kept[node.name] = (
                f"{node.op_type} with subgraphs: it and the {nodes} node(s) and {weights} "
                "weight(s) inside stay FP32 (subgraphs are not cast)"
            )
    return kept


def _named(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose nodes all have names (block lists and reports go by node name)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)
    return model


def _convert(
    model: onnx.ModelProto, precision: Precision, blocked_ops: list[str], blocked_nodes: list[str]
) -> onnx.ModelProto:
    """Cast every float tensor of the nodes not blocked to ``precision``; IO types stay as they are."""
    half = onnx.TensorProto.FLOAT16 if precision is Precision.FP16 else onnx.TensorProto.BFLOAT16
    return _checked(_HalfGraph(model, half, _Placement(set(blocked_ops), set(blocked_nodes))).build(), precision)


def _checked(out: onnx.ModelProto, precision: Precision) -> onnx.ModelProto:
    try:
        onnx.checker.check_model(out)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrtforgeError(
            f"the {precision} cast of this model is not valid ONNX ({first}); keep the failing "
            "nodes in FP32 with --exclude-nodes / --exclude-op-types, or build fp32"
        ) from None
    return out


def _half_tensor(tensor: onnx.TensorProto, half: int, name: str) -> onnx.TensorProto:
    values = onnx.numpy_helper.to_array(tensor).astype(np.float32)
    if half == onnx.TensorProto.FLOAT16:
        return onnx.numpy_helper.from_array(np.clip(values, -FP16_MAX, FP16_MAX).astype(np.float16), name)
    import ml_dtypes

    return onnx.helper.make_tensor(name, half, values.shape, values.astype(ml_dtypes.bfloat16).tobytes(), raw=True)


_FLOAT = onnx.TensorProto.FLOAT
_WORD: dict[int, str] = {
    onnx.TensorProto.FLOAT: "fp32",
    onnx.TensorProto.FLOAT16: "fp16",
    onnx.TensorProto.BFLOAT16: "bf16",
}


class _Placement:
    """Which nodes run in half precision: all but blocked op types, blocked nodes, custom domains
    and nodes with subgraphs (and, with ``only``, none outside it)."""

    def __init__(self, blocked_ops: set[str], blocked_nodes: set[str], only: set[str] | None = None) -> None:
        self.blocked_ops, self.blocked_nodes, self.only = blocked_ops, blocked_nodes, only

    def __call__(self, node: onnx.NodeProto) -> bool:
        return (
            (self.only is None or node.name in self.only)
            and node.op_type not in self.blocked_ops
            and node.name not in self.blocked_nodes
            and node.domain in ("", "ai.onnx")
            and not any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)
        )


def _float_types(model: onnx.ModelProto) -> dict[str, int]:
    from trtforge.graph.model import symbolic_infer

    graph = (symbolic_infer(model) or onnx.shape_inference.infer_shapes(model)).graph
    types = {
        v.name: v.type.tensor_type.elem_type for v in list(graph.input) + list(graph.value_info) + list(graph.output)
    }
    types.update({t.name: t.data_type for t in model.graph.initializer})
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].type == onnx.AttributeProto.TENSOR:
            types[node.output[0]] = node.attribute[0].t.data_type
    return types


def _simulated(
    model: onnx.ModelProto, half: int, low: _Placement, types: dict[str, int] | None = None
) -> onnx.ModelProto:
    """The FP32 model with every tensor the cast would hold in ``half`` rounded through a Cast pair:
    half-precision storage, FP32 arithmetic (what TensorRT's FP16 kernels accumulate in)."""
    types = types if types is not None else _float_types(model)
    sim = onnx.ModelProto()
    sim.CopyFrom(model)
    nodes: list[onnx.NodeProto] = []
    rounded: dict[str, str] = {}

    def round_trip(name: str, target: str) -> None:
        mid = f"{target}__sim_half"
        nodes.append(onnx.helper.make_node("Cast", [name], [mid], to=half))
        nodes.append(onnx.helper.make_node("Cast", [mid], [target], to=_FLOAT))

    held_half: set[str] = set()  # outputs of half-precision nodes, already rounded
    for node in model.graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        if low(node):
            held_half.update(node.output)
            for i, name in enumerate(copy.input):
                if name and name not in held_half and types.get(name) == _FLOAT:
                    if name not in rounded:
                        rounded[name] = f"{name}__sim_in"
                        round_trip(name, rounded[name])
                    copy.input[i] = rounded[name]
            outputs = [o for o in copy.output if types.get(o) == _FLOAT]
            copy.output[:] = [f"{o}__sim_out" if o in outputs else o for o in copy.output]
            nodes.append(copy)
            for o in outputs:
                round_trip(f"{o}__sim_out", o)
        else:
            nodes.append(copy)
    del sim.graph.node[:]
    sim.graph.node.extend(nodes)
    del sim.graph.value_info[:]
    return sim


class _HalfGraph:
    """One pass over the nodes in order: each runs in half precision unless blocked, and a Cast
    is inserted (once per tensor and type) wherever a tensor's type differs from its consumer's.
    Weights get a half copy (clamped to the FP16 range); graph inputs and outputs keep FP32."""

    def __init__(self, model: onnx.ModelProto, half: int, low: _Placement) -> None:
        self.model, self.half, self._low = model, half, low
        self.types = _float_types(model)
        self.initializers = {t.name: t for t in model.graph.initializer}
        self.outputs = {o.name for o in model.graph.output}
        # (tensor, type) -> the name under which that version of the tensor exists
        self.versions: dict[tuple[str, int], str] = {
            (v.name, v.type.tensor_type.elem_type): v.name for v in model.graph.input
        }
        self.versions.update({(name, t.data_type): name for name, t in self.initializers.items()})
        self.nodes: list[onnx.NodeProto] = []
        self.new_initializers: list[onnx.TensorProto] = []

    def _version(self, name: str, kind: int) -> str:
        """The name of ``name`` as type ``kind``, making a half weight or a Cast the first time."""
        if (name, kind) in self.versions:
            return self.versions[(name, kind)]
        made = f"{name}__{_WORD[kind]}"
        if name in self.initializers:
            self.new_initializers.append(_half_tensor(self.initializers[name], kind, made))
        else:
            have = next(v for (t, _), v in self.versions.items() if t == name)
            self.nodes.append(onnx.helper.make_node("Cast", [have], [made], name=made, to=kind))
        self.versions[(name, kind)] = made
        return made

    def _lower_attributes(self, node: onnx.NodeProto) -> None:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.INT and attr.name in ("to", "dtype") and attr.i == _FLOAT:
                attr.i = self.half
            elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == _FLOAT:
                attr.t.CopyFrom(_half_tensor(attr.t, self.half, attr.t.name))

    def build(self) -> onnx.ModelProto:
        for original in self.model.graph.node:
            node = onnx.NodeProto()
            node.CopyFrom(original)
            kind = self.half if self._low(node) else _FLOAT
            node.input[:] = [self._version(i, kind) if i and self.types.get(i) == _FLOAT else i for i in node.input]
            if kind == self.half:
                self._lower_attributes(node)
            for i, name in enumerate(node.output):
                produced = self.types.get(name)
                if produced == _FLOAT and kind == self.half:
                    produced = self.half
                    if name in self.outputs:  # the graph output keeps its name and FP32 type, via a Cast
                        node.output[i] = f"{name}__{_WORD[self.half]}"
                self.versions[(name, produced or 0)] = node.output[i]
            self.nodes.append(node)
        for name in self.outputs:
            if self.types.get(name) == _FLOAT and (name, _FLOAT) not in self.versions:
                self._version(name, _FLOAT)
                self.nodes[-1].output[0] = name
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        graph = model.graph
        del graph.node[:]
        graph.node.extend(self.nodes)
        used = {i for n in self.nodes for i in n.input}
        weights = [t for t in list(graph.initializer) + self.new_initializers if t.name in used]
        del graph.initializer[:]
        graph.initializer.extend(weights)
        del graph.value_info[:]
        return model


def _session(model: onnx.ModelProto):  # -> onnxruntime.InferenceSession
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _exposed(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with every FP32 activation added to the graph outputs."""
    from trtforge.graph.model import symbolic_infer

    inferred = symbolic_infer(model) or onnx.shape_inference.infer_shapes(model)
    present = {o.name for o in inferred.graph.output}
    for value in inferred.graph.value_info:
        if value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT and value.name not in present:
            inferred.graph.output.append(
                onnx.helper.make_tensor_value_info(value.name, value.type.tensor_type.elem_type, None)
            )
            present.add(value.name)
    return inferred


def _activations(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    exposed = _exposed(model)
    session = _session(exposed)
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, dict(feeds))
    return {
        n: np.asarray(v, dtype=np.float32)
        for n, v in zip(names, values)
        if np.asarray(v).dtype.kind == "f" or str(np.asarray(v).dtype) == "bfloat16"
    }


def _absmax(value: np.ndarray | None) -> float:
    if value is None or value.size == 0:
        return 0.0
    return float(np.max(np.abs(value)))


def _relative_error(ref: np.ndarray, got: np.ndarray) -> float:
    if ref.shape != got.shape:
        return 0.0  # a tensor the cast split or renamed; not comparable
    if not np.all(np.isfinite(got)):
        return float("inf")
    scale = max(_absmax(ref), 1e-6)
    return float(np.max(np.abs(ref - got))) / scale if ref.size else 0.0


def _drifted(
    model: onnx.ModelProto,
    casted: onnx.ModelProto,
    reference: dict[str, np.ndarray],
    feeds: Mapping[str, np.ndarray] | None,
    tolerance: float,
    report: CastReport,
) -> dict[str, str]:
    """Nodes (by name) whose outputs drift past ``tolerance`` although their inputs did not."""
    assert feeds is not None
    got = _activations(casted, feeds)
    errors = {name: _relative_error(ref, got[name]) for name, ref in reference.items() if name in got}
    report.output_error = {o.name: round(errors.get(o.name, 0.0), 6) for o in model.graph.output}
    if all(e <= tolerance for e in report.output_error.values()):
        return {}
    drifted = {}
    for node in model.graph.node:
        if node.name in report.kept:
            continue
        out_error = max((errors.get(o, 0.0) for o in node.output), default=0.0)
        in_error = max((errors.get(i, 0.0) for i in node.input if i), default=0.0)
        if out_error > tolerance and out_error > 4 * in_error:
            what = "non-finite" if out_error == float("inf") else f"relative error {out_error:.3g}"
            drifted[node.name] = f"{what} after casting (inputs {in_error:.3g})"
    return drifted
