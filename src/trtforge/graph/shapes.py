"""Changing a model's batch dimension without silently breaking it.

Overwriting ``graph.input[*].shape.dim[0]`` is not enough: exporters bake the batch
into shape constants (``Flatten`` exported as ``Reshape [1, -1]``), and stale
``value_info`` keeps old shapes alive.  :func:`set_batch` patches the constants it can
prove equivalent, refuses the ones it cannot, re-infers shapes, and runs the result
against the original before returning it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from trtforge.errors import TrtforgeError
from trtforge.graph.model import graph_inputs

DYNAMIC = "dynamic"


@dataclass(frozen=True)
class Batch:
    """A batch size: a positive int, or a symbolic dimension (``--batch dynamic``)."""

    size: int | None
    dim_name: str = "batch"

    @classmethod
    def parse(cls, text: str | int, dim_name: str = "batch") -> Batch:
        if isinstance(text, int) and not isinstance(text, bool):
            value: int | None = text
        elif str(text).strip().lower() == DYNAMIC:
            return cls(None, dim_name)
        else:
            try:
                value = int(str(text).strip())
            except ValueError:
                raise TrtforgeError(
                    f"bad batch {text!r}: expected a positive integer or 'dynamic'"
                ) from None
        if value is None or value < 1:
            raise TrtforgeError(f"bad batch {text!r}: expected a positive integer or 'dynamic'")
        return cls(value, dim_name)

    @property
    def is_dynamic(self) -> bool:
        return self.size is None

    def __str__(self) -> str:
        return DYNAMIC if self.size is None else str(self.size)


def _set_dim0(value: onnx.ValueInfoProto, batch: Batch) -> None:
    dims = value.type.tensor_type.shape.dim
    if not dims:
        raise TrtforgeError(f"tensor {value.name!r} is a scalar; it has no batch dimension to set")
    dims[0].Clear()
    if batch.size is None:
        dims[0].dim_param = batch.dim_name
    else:
        dims[0].dim_value = batch.size


def _static_batch(model: onnx.ModelProto) -> int | None:
    """The batch the model was exported with, if every input states the same static one."""
    firsts = {t.shape[0] if t.shape else None for t in graph_inputs(model)}
    if len(firsts) == 1:
        (first,) = firsts
        if isinstance(first, int) and first > 0:
            return first
    return None


def _patch_reshape_constants(model: onnx.ModelProto, old_batch: int | None) -> list[str]:
    """Rewrite Reshape targets that bake ``old_batch`` as their leading dim to ``-1``.

    The rewrite is exact when the target has no other ``-1`` and no ``0``: the leading
    dimension is then whatever the element count leaves, which is the new batch.
    Returns the names of Reshape nodes that bake the batch but could not be patched.
    """
    if old_batch is None:
        return []
    initializers = {t.name: t for t in model.graph.initializer}
    users: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    refused: list[str] = []
    for node in model.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in initializers:
            continue
        target = numpy_helper.to_array(initializers[node.input[1]])
        if target.ndim != 1 or target.size == 0 or int(target[0]) != old_batch:
            continue
        rest = target[1:]
        if old_batch == 1 and (rest == -1).any():
            continue  # [1, -1, ...] on a batch-1 model: ambiguous, left to the run check
        if (rest == -1).any() or (rest == 0).any() or users[node.input[1]] > 1:
            refused.append(node.name or node.output[0])
            continue
        patched = target.copy()
        patched[0] = -1
        initializers[node.input[1]].CopyFrom(numpy_helper.from_array(patched, node.input[1]))
    return refused


def set_batch(model: onnx.ModelProto, batch: Batch, verify: bool = True) -> onnx.ModelProto:
    """Return a copy of ``model`` whose inputs and outputs have ``batch`` as first dimension."""
    new = onnx.ModelProto()
    new.CopyFrom(model)
    old_batch = _static_batch(model)
    refused = _patch_reshape_constants(new, old_batch)
    if refused:
        raise TrtforgeError(
            f"cannot change the batch safely: Reshape node(s) {', '.join(refused)} bake the "
            f"exported batch {old_batch} into their target shape in a way that cannot be "
            "rewritten exactly; re-export the model with the batch you want (for tf2onnx: "
            "an input signature with that batch; for torch.onnx: dynamic_axes)"
        )
    initializers = {t.name for t in new.graph.initializer}
    for value in new.graph.input:
        if value.name not in initializers:
            _set_dim0(value, batch)
    for value in new.graph.output:
        _set_dim0(value, batch)
    del new.graph.value_info[:]
    try:
        new = onnx.shape_inference.infer_shapes(new, strict_mode=True)
    except Exception as exc:
        raise TrtforgeError(
            f"the model does not hold together at batch {batch}: shape inference failed ({exc}); "
            "re-export it with the batch you want"
        ) from None
    if verify:
        check_same_outputs(model, new, batch_size=batch.size or 2)
    return new


def random_feeds(model: onnx.ModelProto, batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random inputs for ``model``, with ``batch_size`` for dim 0 and 1 for other dynamic dims."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for spec in graph_inputs(model):
        shape = [batch_size if i == 0 else (d if isinstance(d, int) and d > 0 else 1)
                 for i, d in enumerate(spec.shape)]
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f":
            feeds[spec.name] = rng.uniform(0.0, 1.0, shape).astype(dtype)
        elif dtype.kind in "iu":
            feeds[spec.name] = rng.integers(0, 8, shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[spec.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            raise TrtforgeError(f"input {spec.name!r} has dtype {dtype}, which trtforge cannot feed")
    return feeds


def _session(model: onnx.ModelProto):  # -> onnxruntime.InferenceSession
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def check_same_outputs(
    original: onnx.ModelProto, changed: onnx.ModelProto, batch_size: int,
    rtol: float = 1e-4, atol: float = 1e-5,
) -> None:
    """Run ``changed`` at ``batch_size`` and ``original`` at its own batch on the same samples."""
    feeds = random_feeds(changed, batch_size)
    try:
        got = _session(changed).run(None, feeds)
    except Exception as exc:
        raise TrtforgeError(
            f"the reshaped model fails to run at batch {batch_size} ({str(exc).splitlines()[0]}); "
            "nothing was written; re-export the model with the batch you want"
        ) from None
    old = _static_batch(original) or batch_size
    session = _session(original)
    chunks = [session.run(None, {k: v[i:i + old] for k, v in feeds.items()})
              for i in range(0, batch_size, old)] if batch_size % old == 0 else None
    if chunks is None:  # e.g. batch 3 from a model exported at batch 2: compare the first samples
        chunks = [session.run(None, {k: np.resize(v, (old,) + v.shape[1:]) for k, v in feeds.items()})]
    expected = [np.concatenate([c[i] for c in chunks])[:batch_size] for i in range(len(got))]
    for out, (want, have) in enumerate(zip(expected, got)):
        n = min(len(want), len(have))
        if want.shape[1:] != have.shape[1:] or not np.allclose(want[:n], have[:n], rtol=rtol, atol=atol):
            name = changed.graph.output[out].name
            raise TrtforgeError(
                f"the model at batch {batch_size} no longer computes what the original does "
                f"(output {name!r} differs per sample); nothing was written; re-export the model "
                "with the batch you want"
            )


def reshape(source: str | os.PathLike[str], output: str | os.PathLike[str],
            batch: Batch | int | str) -> onnx.ModelProto:
    """Read ``source``, set its batch, verify it with ONNX Runtime, and write ``output``."""
    from trtforge.graph.model import load, save

    if not isinstance(batch, Batch):
        batch = Batch.parse(batch)
    model = set_batch(load(source), batch)
    save(model, output)
    return model
