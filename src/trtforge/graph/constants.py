"""Shape constants that bake the exported batch, found and (where provably exact) patched.

Exporters write the batch they traced with into shape tensors: ``Flatten`` becomes
``Reshape(x, [1, -1])``, broadcasts become ``Expand(x, [2, 16])``, an initial state becomes
``ConstantOfShape([2, 64])``.  To know which tensors carry the batch, the model is
shape-inferred with its batch as one symbol; a constant whose leading value equals the
old batch is then:

* patched when the rewrite is exact for every batch: ``Reshape`` target ``[B, ...]`` ->
  ``[0, ...]`` (copy the input's batch; ``-1`` when ``allowzero`` is set and the rest is
  static), ``Expand`` ``[B, ...]`` of a batch-leading input -> ``[1, ...]``, ``Slice`` of
  the whole batch axis ``0:B`` -> ``0:INT64_MAX``;
* refused, with the node names, when the batch is larger than one and no exact rewrite
  exists (``ConstantOfShape``, ``Tile``, ``Expand``/``Reshape`` of tensors whose leading dim
  is not the batch, ``Resize`` sizes, and constant operands of shape ``[B, ...]`` that an
  elementwise op or ``Concat`` combines with a batch tensor);
* for an exported batch of one, a leading 1 is too common to refuse outright, so such
  nodes are *suspects*: named if the run check afterwards finds the model changed.

Shape tensors are followed through ``Constant`` nodes, initializers and
``Concat``/``Identity``/``Cast``/``Unsqueeze``/``Squeeze`` chains.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

BATCH_SYMBOL = "__trtforge_batch__"
INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Finding:
    """A node whose shape input bakes the exported batch."""

    node: str
    op: str
    kind: str  # "patch", "refuse" or "suspect"
    key: str = ""  # the node's first output, which identifies it
    input_index: int = -1
    value: tuple[int, ...] = ()

    def describe(self) -> str:
        return f"{self.op} {self.node!r}"


@dataclass
class _Graph:
    """What the rules need to know about one graph."""

    consts: dict[str, np.ndarray]
    shapes: dict[str, tuple[int | str | None, ...]]
    live: set[str]  # tensors that depend on a graph input

    def const(self, name: str) -> list[int] | None:
        value = self.consts.get(name)
        if value is None or value.ndim != 1 or value.dtype.kind not in "iu":
            return None
        return [int(v) for v in value]

    def is_batch(self, name: str, axis: int) -> bool:
        dims = self.shapes.get(name)
        return dims is not None and -len(dims) <= axis < len(dims) and dims[axis] == BATCH_SYMBOL

    def rank(self, name: str) -> int | None:
        dims = self.shapes.get(name)
        return None if dims is None else len(dims)


def _attr(node: onnx.NodeProto, name: str, default: object = None) -> object:
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _fold(node: onnx.NodeProto, consts: dict[str, np.ndarray]) -> np.ndarray | None:
    """Evaluate the few ops that build shape tensors from constants; None if not constant."""
    if node.op_type == "Constant":
        value: Any = _attr(node, "value")
        if value is not None:
            return numpy_helper.to_array(value)
        ints = _attr(node, "value_ints", _attr(node, "value_int"))
        return None if ints is None else np.array(ints, np.int64)
    maybe = [consts.get(i) for i in node.input if i]
    ins = [v for v in maybe if v is not None]
    if not ins or len(ins) != len(maybe):
        return None
    if node.op_type == "Identity":
        return ins[0]
    if node.op_type == "Cast":
        to: Any = _attr(node, "to")
        return ins[0].astype(onnx.helper.tensor_dtype_to_np_dtype(int(to)))
    if node.op_type == "Concat":
        axis: Any = _attr(node, "axis", 0)
        return np.concatenate([np.atleast_1d(v) for v in ins], axis=int(axis))
    if node.op_type in ("Unsqueeze", "Squeeze"):
        attr: Any = _attr(node, "axes")
        axes = tuple(attr) if attr is not None else (tuple(int(a) for a in ins[1]) if len(ins) > 1 else None)
        if node.op_type == "Unsqueeze":
            return np.expand_dims(ins[0], axes) if axes is not None else None
        return np.squeeze(ins[0], axes)
    return None


def constant_values(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        try:
            value = _fold(node, consts)
        except (ValueError, TypeError, IndexError):
            value = None
        if value is not None and node.output:
            consts[node.output[0]] = value
    return consts


def live_tensors(graph: onnx.GraphProto) -> set[str]:
    initializers = {t.name for t in graph.initializer}
    live = {v.name for v in graph.input if v.name not in initializers}
    for node in graph.node:
        if any(i in live for i in node.input):
            live.update(node.output)
    return live


def symbolic_shapes(model: onnx.ModelProto, batch_inputs: Iterable[str]) -> dict[str, tuple[int | str | None, ...]]:
    """Shapes of every tensor with dim 0 of ``batch_inputs`` replaced by one symbol."""
    scratch = onnx.ModelProto()
    scratch.CopyFrom(model)
    wanted = set(batch_inputs)
    for value in scratch.graph.input:
        if value.name in wanted and value.type.tensor_type.shape.dim:
            dim = value.type.tensor_type.shape.dim[0]
            dim.Clear()
            dim.dim_param = BATCH_SYMBOL
    del scratch.graph.value_info[:]
    for value in scratch.graph.output:
        value.type.tensor_type.ClearField("shape")
    try:
        scratch = onnx.shape_inference.infer_shapes(scratch, data_prop=True)
    except Exception:  # inference is a hint here; the run check decides
        pass
    shapes: dict[str, tuple[int | str | None, ...]] = {}
    for v in list(scratch.graph.input) + list(scratch.graph.value_info) + list(scratch.graph.output):
        t = v.type.tensor_type
        if t.HasField("shape"):
            shapes[v.name] = tuple(
                d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim
            )
    return shapes


Rule = Callable[[onnx.NodeProto, _Graph, int], "Finding | None"]


def _name(node: onnx.NodeProto) -> str:
    return node.name or (node.output[0] if node.output else node.op_type)


def _uncertain(node: onnx.NodeProto, batch: int) -> Finding:
    return Finding(_name(node), node.op_type, "refuse" if batch > 1 else "suspect", node.output[0])


def _patch(node: onnx.NodeProto, index: int, value: list[int]) -> Finding:
    return Finding(_name(node), node.op_type, "patch", node.output[0], index, tuple(value))


def _reshape(node: onnx.NodeProto, g: _Graph, batch: int) -> Finding | None:
    target = g.const(node.input[1]) if len(node.input) > 1 else None
    if not target or target[0] != batch or node.input[0] not in g.live:
        return None
    if not g.is_batch(node.input[0], 0):
        return _uncertain(node, batch)
    if not _attr(node, "allowzero", 0):
        return _patch(node, 1, [0] + target[1:])
    if -1 not in target[1:]:
        return _patch(node, 1, [-1] + target[1:])
    return _uncertain(node, batch)


def _expand(node: onnx.NodeProto, g: _Graph, batch: int) -> Finding | None:
    shape = g.const(node.input[1]) if len(node.input) > 1 else None
    rank = g.rank(node.input[0])
    if not shape or shape[0] != batch or (rank is not None and len(shape) < rank):
        return None
    if g.is_batch(node.input[0], 0) and rank == len(shape):
        return None if batch == 1 else _patch(node, 1, [1] + shape[1:])
    return _uncertain(node, batch)


def _tile(node: onnx.NodeProto, g: _Graph, batch: int) -> Finding | None:
    repeats = g.const(node.input[1]) if len(node.input) > 1 else None
    if not repeats or repeats[0] != batch or batch == 1 or g.is_batch(node.input[0], 0):
        return None
    return _uncertain(node, batch)


def _constant_of_shape(node: onnx.NodeProto, g: _Graph, batch: int) -> Finding | None:
    shape = g.const(node.input[0])
    if not shape or shape[0] != batch:
        return None
    return _uncertain(node, batch)


def _resize(node: onnx.NodeProto, g: _Graph, batch: int) -> Finding | None:
    sizes = g.const(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    if not sizes or sizes[0] != batch or node.input[0] not in g.live:
        return None
    return _uncertain(node, batch)


def _slice(node: onnx.NodeProto, g: _Graph, batch: int) -> Finding | None:
    if len(node.input) < 3:
        return None  # opset < 10 keeps starts/ends in attributes; left to the run check
    starts, ends = g.const(node.input[1]), g.const(node.input[2])
    axes = g.const(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    steps = g.const(node.input[4]) if len(node.input) > 4 and node.input[4] else None
    if starts is None or ends is None:
        return None
    axes = axes if axes is not None else list(range(len(ends)))
    steps = steps if steps is not None else [1] * len(ends)
    new_ends = list(ends)
    for i, axis in enumerate(axes):
        if ends[i] != batch or not g.is_batch(node.input[0], axis):
            continue
        if starts[i] != 0 or steps[i] != 1:
            return _uncertain(node, batch)
        new_ends[i] = int(INT64_MAX)
    return _patch(node, 2, new_ends) if new_ends != ends else None


def _batch_sized_constant(node: onnx.NodeProto, g: _Graph, batch: int) -> Finding | None:
    """A constant operand whose first dim is the exported batch, broadcast against a batch tensor."""
    if batch == 1 or (node.op_type == "Concat" and int(_attr(node, "axis", 0)) in (0,)):  # type: ignore[call-overload]
        return None
    ranks = [g.rank(i) for i in node.input if g.is_batch(i, 0)]
    if not ranks:
        return None
    for name in node.input:
        value = g.consts.get(name)
        if value is not None and name not in g.live and value.ndim in ranks and value.shape[0] == batch:
            return _uncertain(node, batch)
    return None


_BROADCASTING = (
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Max",
    "Min",
    "Sum",
    "Mean",
    "Where",
    "Equal",
    "Less",
    "Greater",
    "LessOrEqual",
    "GreaterOrEqual",
    "And",
    "Or",
    "Xor",
    "Concat",
)

RULES: dict[str, Rule] = {
    **{op: _batch_sized_constant for op in _BROADCASTING},
    "Reshape": _reshape,
    "Expand": _expand,
    "Tile": _tile,
    "ConstantOfShape": _constant_of_shape,
    "Slice": _slice,
    "Resize": _resize,
}


def find_batch_constants(model: onnx.ModelProto, batch: int, batch_inputs: Iterable[str]) -> list[Finding]:
    g = _Graph(constant_values(model.graph), symbolic_shapes(model, batch_inputs), live_tensors(model.graph))
    findings = []
    for node in model.graph.node:
        rule = RULES.get(node.op_type) if node.domain in ("", "ai.onnx") else None
        found = rule(node, g, batch) if rule else None
        if found is not None:
            findings.append(found)
    return findings


def _apply(model: onnx.ModelProto, finding: Finding) -> None:
    taken = {t.name for t in model.graph.initializer} | {o for n in model.graph.node for o in n.output}
    base = f"{finding.node}_batchfix"
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    model.graph.initializer.append(numpy_helper.from_array(np.array(finding.value, np.int64), name))
    for node in model.graph.node:
        if node.output and node.output[0] == finding.key:
            node.input[finding.input_index] = name
            return


def prune(model: onnx.ModelProto) -> None:
    """Drop nodes and initializers nothing uses any more (the replaced shape constants)."""
    graph = model.graph
    used = {o.name for o in graph.output}
    keep = []
    for node in reversed(graph.node):
        if any(o in used for o in node.output) or node.op_type in ("If", "Loop", "Scan"):
            keep.append(node)
            used.update(node.input)
            for a in node.attribute:  # subgraphs may read outer tensors
                if a.type == onnx.AttributeProto.GRAPH:
                    used.update(i for n in a.g.node for i in n.input)
    del graph.node[:]
    graph.node.extend(reversed(keep))
    declared = {v.name for v in graph.input}
    unused = [t for t in graph.initializer if t.name not in used and t.name not in declared]
    for t in unused:
        graph.initializer.remove(t)


def patch_batch_constants(
    model: onnx.ModelProto,
    batch: int,
    batch_inputs: Iterable[str],
    max_rounds: int = 16,
) -> tuple[list[Finding], list[Finding]]:
    """Patch, in place, every exact rewrite; return (patched, not patched: refused and suspects).

    Patching one Reshape can reveal the batch further down, so this repeats until no
    patch applies.
    """
    inputs = list(batch_inputs)
    patched: list[Finding] = []
    for _ in range(max_rounds):
        findings = find_batch_constants(model, batch, inputs)
        todo = [f for f in findings if f.kind == "patch"]
        if not todo:
            if patched:
                prune(model)
            return patched, findings
        for f in todo:
            _apply(model, f)
        patched.extend(todo)
    prune(model)
    return patched, [f for f in find_batch_constants(model, batch, inputs) if f.kind != "patch"]
