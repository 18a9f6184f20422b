"""ONNX edits every converter shares: renaming graph inputs/outputs, NHWC <-> NCHW at the boundary."""

from __future__ import annotations

import onnx
from onnx import helper

from trtforge.errors import TrtforgeError
from trtforge.graph.model import graph_inputs, graph_outputs, resolve_input_name


def _targets(pairs: tuple[tuple[str, str], ...], names: list[str], what: str) -> dict[str, str]:
    """old -> new; an empty old name means 'the next one in order' (tf2onnx's style)."""
    mapping: dict[str, str] = {}
    for index, (old, new) in enumerate(pairs):
        if old:
            mapping[resolve_input_name(old, names, what)] = new
        elif index < len(names):
            mapping[names[index]] = new
        else:
            raise TrtforgeError(f"--rename-{what}s gives {len(pairs)} names but the model has {len(names)} {what}s")
    taken = [n for n in names if n not in mapping] + list(mapping.values())
    duplicates = sorted({n for n in taken if taken.count(n) > 1})
    if duplicates:
        raise TrtforgeError(f"--rename-{what}s would give two {what}s the name {duplicates[0]!r}")
    return mapping


def _rename_in_graph(graph: onnx.GraphProto, mapping: dict[str, str]) -> None:
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.name in mapping:
            value.name = mapping[value.name]
    for node in graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                _rename_in_graph(sub, mapping)


def rename(
    model: onnx.ModelProto, inputs: tuple[tuple[str, str], ...], outputs: tuple[tuple[str, str], ...]
) -> dict[str, str]:
    """Rename graph inputs/outputs in place; returns new name -> old name."""
    mapping = _targets(inputs, [t.name for t in graph_inputs(model)], "input")
    mapping.update(_targets(outputs, [t.name for t in graph_outputs(model)], "output"))
    clash = set(mapping.values()) & {t.name for t in model.graph.initializer}
    if clash:
        raise TrtforgeError(f"cannot rename to {sorted(clash)[0]!r}: a weight of the model has that name")
    _rename_in_graph(model.graph, mapping)
    return {new: old for old, new in mapping.items()}


def transpose_boundary(model: onnx.ModelProto, inputs: list[str], outputs: list[str]) -> None:
    """Expose rank-4 NHWC ``inputs``/``outputs`` as NCHW with a Transpose at the boundary (in place)."""
    for name in inputs:
        value = next(v for v in model.graph.input if v.name == name)
        inner = f"{name}__nhwc"
        for node in model.graph.node:
            node.input[:] = [inner if n == name else n for n in node.input]
        model.graph.node.insert(
            0, helper.make_node("Transpose", [name], [inner], perm=[0, 2, 3, 1], name=f"{name}__to_nhwc")
        )
        _permute(value, [0, 3, 1, 2])
    for name in outputs:
        value = next(v for v in model.graph.output if v.name == name)
        inner = f"{name}__nhwc"
        for node in model.graph.node:
            node.output[:] = [inner if n == name else n for n in node.output]
            node.input[:] = [inner if n == name else n for n in node.input]
        model.graph.node.append(
            helper.make_node("Transpose", [inner], [name], perm=[0, 3, 1, 2], name=f"{name}__to_nchw")
        )
        _permute(value, [0, 3, 1, 2])


def _permute(value: onnx.ValueInfoProto, perm: list[int]) -> None:
    dims = list(value.type.tensor_type.shape.dim)
    copies = [onnx.TensorShapeProto.Dimension() for _ in dims]
    for copy, axis in zip(copies, perm):
        copy.CopyFrom(dims[axis])
    del value.type.tensor_type.shape.dim[:]
    value.type.tensor_type.shape.dim.extend(copies)
