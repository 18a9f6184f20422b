"""IO formats in trtexec's syntax: ``fp16:chw``, ``int8:hwc8``, ``fp32:chw+hwc8``.

``--inputIOFormats=spec[,spec...]`` gives one spec per network input, in order (one spec for
all inputs is also accepted here).  A spec is ``type:format[+format...]``.  The type is the
tensor's dtype at the engine boundary; the formats are TensorRT memory layouts the builder may
choose among.  Backends without layouts (ONNX Runtime) honour the dtype and linear layouts only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from trtforge.errors import TrtforgeError

# trtexec type word -> numpy dtype name
DTYPES = {
    "fp32": "float32",
    "fp16": "float16",
    "bf16": "bfloat16",
    "int32": "int32",
    "int64": "int64",
    "int8": "int8",
    "uint8": "uint8",
    "bool": "bool",
    "fp8": "float8e4m3fn",
}
# TensorRT TensorFormat names (trtexec's spelling, lower case).  The linear ones are the plain
# row-major layouts every backend can read.
FORMATS = (
    "chw",
    "hwc",
    "chw2",
    "chw4",
    "hwc8",
    "chw16",
    "chw32",
    "dhwc8",
    "cdhw32",
    "hwc16",
    "dhwc",
    "dla_linear",
    "dla_hwc4",
)
LINEAR = frozenset({"chw", "dla_linear"})


@dataclass(frozen=True)
class IOFormat:
    """One tensor's boundary dtype (numpy name) and allowed memory formats."""

    dtype: str
    formats: tuple[str, ...] = ("chw",)

    @classmethod
    def parse(cls, text: str) -> IOFormat:
        kind, sep, layouts = text.strip().lower().partition(":")
        if kind not in DTYPES:
            raise TrtforgeError(f"bad IO format {text!r}: unknown type {kind!r}; expected one of {', '.join(DTYPES)}")
        formats = tuple(f for f in layouts.split("+") if f) if sep else ("chw",)
        unknown = [f for f in formats if f not in FORMATS]
        if unknown or not formats:
            raise TrtforgeError(
                f"bad IO format {text!r}: unknown format {(unknown or [''])[0]!r}; "
                f"expected one of {', '.join(FORMATS)} (several joined with +)"
            )
        return cls(DTYPES[kind], formats)

    @property
    def linear(self) -> bool:
        return any(f in LINEAR for f in self.formats)

    @property
    def dtype_word(self) -> str:
        """trtexec's word for the dtype: ``fp16`` for float16."""
        return next(k for k, v in DTYPES.items() if v == self.dtype)

    def __str__(self) -> str:
        return f"{self.dtype_word}:{'+'.join(self.formats)}"


def parse_formats(text: str | None) -> tuple[IOFormat, ...]:
    """``"fp16:chw,int8:hwc8"`` -> one IOFormat per spec; empty or None -> ()."""
    if not text:
        return ()
    return tuple(IOFormat.parse(part) for part in text.split(",") if part.strip())


def for_tensors(formats: tuple[IOFormat, ...], names: list[str], what: str) -> dict[str, IOFormat]:
    """Match specs to tensors by position; a single spec applies to every tensor."""
    if not formats:
        return {}
    if len(formats) == 1:
        return {name: formats[0] for name in names}
    if len(formats) != len(names):
        raise TrtforgeError(
            f"{len(formats)} {what} IO formats given for {len(names)} {what}s ({', '.join(names)}); "
            f"give one per {what}, in order, or a single one for all"
        )
    return dict(zip(names, formats))


def apply(
    model: onnx.ModelProto, inputs: tuple[IOFormat, ...], outputs: tuple[IOFormat, ...]
) -> tuple[onnx.ModelProto, dict[str, str]]:
    """Give the graph's IO tensors the formats' dtypes, with casts at the edges.

    Returns the new model and ``{tensor: dtype}`` for every boundary tensor that changed.
    A cast that would only undo the precision stage's own cast (FP16 -> FP32 -> FP16) is
    folded away, so an FP16 graph with FP16 IO carries no casts at its edges.
    """
    from trtforge.graph.model import graph_inputs, graph_outputs

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    changed: dict[str, str] = {}
    wanted_in = for_tensors(inputs, [t.name for t in graph_inputs(model)], "input")
    wanted_out = for_tensors(outputs, [t.name for t in graph_outputs(model)], "output")
    for value in graph.input:
        fmt = wanted_in.get(value.name)
        was = _retype(value, fmt) if fmt else None
        if fmt and was is not None:
            inner = f"{value.name}__trtforge_io"
            for node in graph.node:
                node.input[:] = [inner if i == value.name else i for i in node.input]
            graph.node.insert(0, _cast(value.name, inner, was))
            changed[value.name] = fmt.dtype
    for value in graph.output:
        fmt = wanted_out.get(value.name)
        if fmt and _retype(value, fmt) is not None:
            inner = f"{value.name}__trtforge_io"
            for node in graph.node:
                node.output[:] = [inner if o == value.name else o for o in node.output]
                node.input[:] = [inner if i == value.name else i for i in node.input]
            graph.node.append(_cast(inner, value.name, value.type.tensor_type.elem_type))
            changed[value.name] = fmt.dtype
    if changed:
        _fold_cast_pairs(model)
    return model, changed


def _retype(value: onnx.ValueInfoProto, fmt: IOFormat) -> int | None:
    """Set ``value``'s element type to the format's; returns the old type, None when unchanged."""
    tensor = value.type.tensor_type
    target = onnx.helper.np_dtype_to_tensor_dtype(_numpy(fmt.dtype))
    if tensor.elem_type == target:
        return None
    if tensor.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16):
        raise TrtforgeError(
            f"IO format {fmt} for {value.name!r}: the tensor is "
            f"{onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)}, and only floating "
            "tensors change type at the boundary"
        )
    was = tensor.elem_type
    tensor.elem_type = target
    return was


def _numpy(dtype: str) -> np.dtype:
    if dtype == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    if dtype == "float8e4m3fn":
        import ml_dtypes

        return np.dtype(ml_dtypes.float8_e4m3fn)
    return np.dtype(dtype)


def _cast(source: str, target: str, to: int) -> onnx.NodeProto:
    return onnx.helper.make_node("Cast", [source], [target], name=f"{target}__cast", to=to)


_WIDENS_EXACTLY = {
    (onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT),
    (onnx.TensorProto.BFLOAT16, onnx.TensorProto.FLOAT),
}


def _fold_cast_pairs(model: onnx.ModelProto) -> None:
    """Remove ``Cast(a->b)`` followed only by ``Cast(b->a)`` when a->b is exact (half -> float)."""
    graph = model.graph
    inferred = onnx.shape_inference.infer_shapes(model).graph
    kinds = {v.name: v.type.tensor_type.elem_type for v in list(inferred.input) + list(inferred.value_info)}
    producers = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        if node.op_type == "Cast":
            kinds[node.output[0]] = next(a.i for a in node.attribute if a.name == "to")
    graph_outputs = {o.name for o in graph.output}
    for first in [n for n in graph.node if n.op_type == "Cast"]:
        src, mid = first.input[0], first.output[0]
        users = [n for n in graph.node if mid in n.input]
        if (kinds.get(src), kinds.get(mid)) not in _WIDENS_EXACTLY or mid in graph_outputs or not users:
            continue
        if not all(u.op_type == "Cast" and kinds.get(u.output[0]) == kinds.get(src) for u in users):
            continue
        for second in users:
            out = second.output[0]
            for node in graph.node:
                node.input[:] = [src if i == out else i for i in node.input]
            if out in graph_outputs:  # keep the output's name: the first cast's source is renamed instead
                producer = producers.get(src)
                if producer is None:
                    continue
                producer.output[:] = [out if o == src else o for o in producer.output]
                for node in graph.node:
                    node.input[:] = [out if i == src else i for i in node.input]
            graph.node.remove(second)
        if not any(mid in n.input for n in graph.node):
            graph.node.remove(first)
