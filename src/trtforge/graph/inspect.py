"""What a model holds: IO, opset and domains, op counts, parameters, dynamic dims, custom ops."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import onnx

from trtforge.config import TensorSpec
from trtforge.graph.model import graph_inputs, graph_outputs, symbolic_infer

STANDARD_DOMAINS = ("", "ai.onnx")
"""Domains TensorRT's ONNX parser implements; ops from any other domain need a plugin."""


@dataclass(frozen=True)
class ModelSummary:
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    opsets: dict[str, int]
    op_counts: dict[str, int]
    parameters: int
    parameter_bytes: int
    producer: str = ""
    domains: list[str] = field(default_factory=list)
    """Domains the nodes use ("ai.onnx" for the default)."""
    dynamic_dims: dict[str, list[str]] = field(default_factory=dict)
    """Symbolic dim name -> where the inputs use it, as ``input[axis]``."""
    dim_users: dict[str, list[str]] = field(default_factory=dict)
    """Symbolic dim name -> nodes that read or write a tensor whose (inferred) shape holds it."""
    custom_ops: dict[str, int] = field(default_factory=dict)
    """``domain.Op`` -> count, for ops outside the standard domain (TensorRT needs plugins for them)."""
    extra: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "opsets": self.opsets,
            "domains": self.domains,
            "op_counts": self.op_counts,
            "parameters": self.parameters,
            "parameter_bytes": self.parameter_bytes,
            "dynamic_dims": self.dynamic_dims,
            "dim_users": self.dim_users,
            "custom_ops": self.custom_ops,
            "producer": self.producer,
        }


def _op_name(node: onnx.NodeProto) -> str:
    return node.op_type if node.domain in STANDARD_DOMAINS else f"{node.domain}.{node.op_type}"


def _weights(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.domain in STANDARD_DOMAINS:
            tensors.extend(a.t for a in node.attribute if a.name == "value")
    return tensors


def _nbytes(t: onnx.TensorProto) -> int:
    count = int(np.prod(t.dims))
    if t.data_type == onnx.TensorProto.STRING:
        return sum(len(s) for s in t.string_data)
    return count * np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize


def dynamic_dims(model: onnx.ModelProto) -> dict[str, list[str]]:
    dims: dict[str, list[str]] = {}
    for spec in graph_inputs(model):
        for axis, d in enumerate(spec.shape):
            if isinstance(d, str):
                dims.setdefault(d, []).append(f"{spec.name}[{axis}]")
    return dims


def dim_users(model: onnx.ModelProto, names: list[str]) -> dict[str, list[str]]:
    """Nodes touching a tensor whose inferred shape holds each symbolic dim."""
    if not names:
        return {}
    inferred = symbolic_infer(model)  # follows dims through more ops than ONNX's inference
    if inferred is None:
        try:
            inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        except Exception:
            inferred = model
    holds: dict[str, set[str]] = {}
    graph = inferred.graph
    for v in list(graph.input) + list(graph.value_info) + list(graph.output):
        for d in v.type.tensor_type.shape.dim:
            if d.HasField("dim_param") and d.dim_param in names:
                holds.setdefault(v.name, set()).add(d.dim_param)
    users: dict[str, list[str]] = {n: [] for n in names}
    for i, node in enumerate(graph.node):
        found = set().union(*(holds.get(t, set()) for t in list(node.input) + list(node.output)))
        for dim in found:
            users[dim].append(node.name or f"{node.op_type}_{i}")
    return users


def summarize(model: onnx.ModelProto) -> ModelSummary:
    counts = Counter(_op_name(node) for node in model.graph.node)
    weights = _weights(model)
    dims = dynamic_dims(model)
    return ModelSummary(
        inputs=graph_inputs(model),
        outputs=graph_outputs(model),
        opsets={(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
        op_counts=dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        parameters=sum(int(np.prod(t.dims)) for t in weights),
        parameter_bytes=sum(_nbytes(t) for t in weights),
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        domains=sorted({node.domain or "ai.onnx" for node in model.graph.node}),
        dynamic_dims=dims,
        dim_users=dim_users(model, list(dims)),
        custom_ops={op: n for op, n in counts.items() if "." in op},
    )
