"""Loading and saving ONNX models with user-facing errors, and reading their IO."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx

from trtforge._files import atomic_path, existing_file
from trtforge.config import TensorSpec
from trtforge.errors import TrtforgeError


def load(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Load an ONNX model (external data included), or raise a user error saying why not."""
    p = existing_file(path, "ONNX model")
    try:
        model = onnx.load(str(p))
    except Exception as exc:  # onnx raises DecodeError, ValueError, OSError...
        raise TrtforgeError(f"{p} is not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    if not model.graph.node and not model.graph.output:
        raise TrtforgeError(f"{p} is not an ONNX model (it parses, but holds no graph)")
    return model


def save(model: onnx.ModelProto, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` atomically; models over 2 GB keep their weights in ``<name>.data``."""
    target = Path(path)
    large = model.ByteSize() > 2_000_000_000 if _fits_protobuf(model) else True
    with atomic_path(target) as tmp:
        if large:
            onnx.save(
                model,
                str(tmp),
                save_as_external_data=True,
                location=target.name + ".data",
                all_tensors_to_one_file=True,
            )
        else:
            onnx.save(model, str(tmp))
    return target


def _fits_protobuf(model: onnx.ModelProto) -> bool:
    try:
        model.ByteSize()
        return True
    except Exception:
        return False


def _dims(value: onnx.ValueInfoProto) -> tuple[int | str, ...]:
    shape = value.type.tensor_type.shape
    dims: list[int | str] = []
    for i, d in enumerate(shape.dim):
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(f"dim{i}")
    return tuple(dims)


def dtype_name(elem_type: int) -> str:
    if elem_type == onnx.TensorProto.BFLOAT16:
        return "bfloat16"
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name


def graph_inputs(model: onnx.ModelProto) -> list[TensorSpec]:
    """The model's real inputs (initializers listed as inputs by old exporters are skipped)."""
    initializers = {t.name for t in model.graph.initializer}
    return [
        TensorSpec(v.name, dtype_name(v.type.tensor_type.elem_type), _dims(v))
        for v in model.graph.input
        if v.name not in initializers
    ]


def graph_outputs(model: onnx.ModelProto) -> list[TensorSpec]:
    return [TensorSpec(v.name, dtype_name(v.type.tensor_type.elem_type), _dims(v)) for v in model.graph.output]


def resolve_input_name(name: str, names: list[str], what: str = "input") -> str:
    """Match a user-given tensor name, with or without a TensorFlow ``:0`` suffix."""
    if name in names:
        return name
    for candidate in (f"{name}:0", name[:-2] if name.endswith(":0") else None):
        if candidate and candidate in names:
            return candidate
    raise TrtforgeError(f"no {what} named {name!r}; the model's {what}s are: {', '.join(names)}")


def symbolic_infer(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """ONNX Runtime's symbolic shape inference, or None when it cannot finish.

    On failure ONNX Runtime saves its partial model as ``sym_shape_infer_temp.onnx`` in the
    working directory; it runs in a scratch directory so nothing lands in the user's.
    """
    import tempfile

    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="trtforge-shapes-") as scratch:
        os.chdir(scratch)
        try:
            return SymbolicShapeInference.infer_shapes(model, auto_merge=True)
        except Exception:  # "Incomplete symbolic shape inference", or an op it does not know
            return None
        finally:
            os.chdir(here)
