"""Changing a model's batch dimension without silently breaking it.

Overwriting ``graph.input[*].shape.dim[0]`` is not enough: exporters bake the batch
into shape constants (``Flatten`` exported as ``Reshape [1, -1]``), and stale
``value_info`` keeps old shapes alive.  :func:`change_shapes` patches the constants it
can prove equivalent (:mod:`trtforge.graph.constants`), refuses the ones it cannot,
clears ``value_info``, re-infers shapes, and runs the result against the original
(:mod:`trtforge.graph.verify`) before returning it.  :func:`reshape` does that from file
to file and writes nothing when any step fails.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import onnx

from trtforge.errors import TrtforgeError
from trtforge.graph.batch import batch_axes
from trtforge.graph.model import graph_inputs, graph_outputs, symbolic_infer
from trtforge.graph.ranges import MAX_DIM, Dim, InputShapes, as_mapping

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
                digits = str(text).strip()
                if not (digits.isascii() and len(digits) <= 12):
                    raise ValueError(digits)
                value = int(digits)
            except ValueError:
                raise TrtforgeError(f"bad batch {text!r}: expected a positive integer or 'dynamic'") from None
        if value is None or not 1 <= value <= MAX_DIM:
            raise TrtforgeError(f"bad batch {str(text)[:40]!r}: expected an integer from 1 to {MAX_DIM} or 'dynamic'")
        return cls(value, dim_name)

    @property
    def is_dynamic(self) -> bool:
        return self.size is None

    def __str__(self) -> str:
        return DYNAMIC if self.size is None else str(self.size)


@dataclass(frozen=True)
class Reshaped:
    """A changed model and what was done to it."""

    model: onnx.ModelProto
    patched: tuple[str, ...] = ()
    """Shape constants rewritten to follow the batch, as ``"Op 'node'"``."""
    check: str = ""
    """What the run check did (empty when it was skipped)."""
    old_batch: int | None = None
    suspects: tuple[str, ...] = ()


def target_shapes(
    model: onnx.ModelProto,
    batch: Batch | int | str | None = None,
    shapes: Mapping[str, tuple[Dim, ...]] | InputShapes | str | None = None,
    dim_name: str = "batch",
) -> dict[str, tuple[Dim, ...]]:
    """The new shape of every input: ``shapes`` for the inputs it names, ``batch`` as dim 0 of the others.

    ``-1`` in ``shapes`` becomes a named dynamic dim: ``dim_name`` at axis 0, else ``<input>_dim<axis>``.
    """
    specs = graph_inputs(model)
    new: dict[str, tuple[Dim, ...]] = {t.name: t.shape for t in specs}
    if batch is not None:
        b = batch if isinstance(batch, Batch) else Batch.parse(batch, dim_name)
        first: Dim = b.size if b.size is not None else b.dim_name
        axes = batch_axes(specs)
        if all(axis is None for axis in axes.values()):
            raise TrtforgeError(
                "no input has a batch dimension to set (scalars or fixed state only); "
                "give the shapes with --shapes NAME:DIMS,..."
            )
        for t in specs:
            axis = axes[t.name]
            if axis is not None:  # a scalar or a fixed state tensor keeps its shape
                new[t.name] = t.shape[:axis] + (first,) + t.shape[axis + 1 :]
    if shapes is not None:
        given = InputShapes(tuple(as_mapping(shapes).items())).validate(specs)
        for name, dims in given.shapes:
            new[name] = tuple(
                (dim_name if axis == 0 else f"{name}_dim{axis}") if d == -1 else d for axis, d in enumerate(dims)
            )
    return new


def _batch_change(model: onnx.ModelProto, new: Mapping[str, tuple[Dim, ...]]) -> tuple[int | None, list[str]]:
    """(old batch, inputs) when every input exported with that static batch moves to one other batch."""
    old = {t.name: t.shape[0] for t in graph_inputs(model) if t.shape}
    changing = [n for n, d in old.items() if new[n][0] != d]
    firsts = {old[n] for n in changing}
    targets = {new[n][0] for n in changing}
    if len(firsts) != 1 or len(targets) != 1:
        return None, []
    (batch,) = firsts
    if not isinstance(batch, int) or batch < 1 or any(old[n] == batch for n in old if n not in changing):
        return None, []
    return batch, changing


def _set_dims(value: onnx.ValueInfoProto, dims: tuple[Dim, ...]) -> None:
    shape = value.type.tensor_type.shape
    del shape.dim[:]
    for d in dims:
        dim = shape.dim.add()
        if isinstance(d, int) and d > 0:
            dim.dim_value = d
        else:
            dim.dim_param = str(d)


def _unknown_dims(model: onnx.ModelProto) -> int:
    return sum(1 for t in graph_outputs(model) for d in t.shape if isinstance(d, str) and d.startswith("dim"))


def infer(model: onnx.ModelProto) -> onnx.ModelProto:
    """Clear ``value_info`` and output shapes, then infer them again.

    ONNX's inference first (strict, then lenient); ONNX Runtime's symbolic inference
    when ONNX leaves output dims unknown and it does better.
    """
    ranks = {
        v.name: len(v.type.tensor_type.shape.dim) for v in model.graph.output if v.type.tensor_type.HasField("shape")
    }
    del model.graph.value_info[:]
    for value in model.graph.output:
        value.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    if _unknown_dims(inferred):
        symbolic = symbolic_infer(model)
        if symbolic is not None and _unknown_dims(symbolic) < _unknown_dims(inferred):
            inferred = symbolic
    _keep_ranks(inferred, ranks)
    return inferred


def _keep_ranks(model: onnx.ModelProto, ranks: Mapping[str, int]) -> None:
    """An output inference could not shape keeps its old rank with every dim unknown.

    A graph output without a shape is invalid ONNX ("Field 'shape' of 'type' is required").
    """
    for value in model.graph.output:
        tensor = value.type.tensor_type
        if not tensor.HasField("shape") and value.name in ranks:
            tensor.shape.SetInParent()
            for _ in range(ranks[value.name]):
                tensor.shape.dim.add()


def _fill_output_batch(model: onnx.ModelProto, original: onnx.ModelProto, old: int, new: Dim) -> None:
    """Outputs whose dim 0 inference left unknown and was the old batch get the new one (then checked)."""
    before = {t.name: t.shape for t in graph_outputs(original)}
    for value in model.graph.output:
        dims = value.type.tensor_type.shape.dim
        was = before.get(value.name, ())
        if dims and was and was[0] == old and not dims[0].HasField("dim_value") and not dims[0].HasField("dim_param"):
            if isinstance(new, int) and new > 0:
                dims[0].dim_value = new
            else:
                dims[0].dim_param = str(new)


def _refuse(refused: list[str], old: int, new: Dim) -> TrtforgeError:
    to = new if isinstance(new, int) and new > 0 else f"dynamic ({new!r})"
    return TrtforgeError(
        f"cannot change the batch from {old} to {to} safely: {', '.join(refused)} bake the exported "
        f"batch {old} into constants that cannot be rewritten exactly; nothing was written; re-export "
        "the model with the batch you want (tf2onnx: an input signature with that batch or None; "
        "torch.onnx.export: dynamic_axes or dynamic_shapes)"
    )


def _change(model: onnx.ModelProto, new: Mapping[str, tuple[Dim, ...]]) -> Reshaped:
    from trtforge.graph.constants import patch_batch_constants

    changed = onnx.ModelProto()
    changed.CopyFrom(model)
    old, batch_inputs = _batch_change(model, new)
    patched: list[str] = []
    suspects: list[str] = []
    if old is not None:
        fixed, left = patch_batch_constants(changed, old, batch_inputs)
        refused = [f.describe() for f in left if f.kind == "refuse"]
        if refused:
            raise _refuse(refused, old, new[batch_inputs[0]][0])
        patched = [f.describe() for f in fixed]
        suspects = [f.describe() for f in left if f.kind == "suspect"]
    for value in changed.graph.input:
        if value.name in new:
            _set_dims(value, new[value.name])
    changed = infer(changed)
    if old is not None:
        _fill_output_batch(changed, model, old, new[batch_inputs[0]][0])
    return Reshaped(changed, tuple(dict.fromkeys(patched)), "", old, tuple(suspects))


def change_shapes(
    model: onnx.ModelProto,
    new: Mapping[str, tuple[Dim, ...]],
    verify: bool = True,
) -> Reshaped:
    """A copy of ``model`` with input shapes ``new`` (see :func:`target_shapes`), checked by running it."""
    from trtforge.graph import verify as check

    result = _change(model, new)
    if not verify:
        return result
    done = check.verify(model, result.model, old_batch=result.old_batch, suspects=result.suspects)
    return Reshaped(result.model, result.patched, done, result.old_batch, result.suspects)


def set_batch(model: onnx.ModelProto, batch: Batch, verify: bool = True) -> onnx.ModelProto:
    """Return a copy of ``model`` whose inputs have ``batch`` as first dimension, checked by running it."""
    return change_shapes(model, target_shapes(model, batch), verify=verify).model


def _check_valid(model: onnx.ModelProto) -> None:
    if model.ByteSize() > 2_000_000_000:
        return  # the checker needs a path for models this large; the run check has passed
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise TrtforgeError(
            f"the changed model is not valid ONNX ({str(exc).splitlines()[0]}); nothing was written"
        ) from None


def reshape(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    batch: Batch | int | str | None = None,
    *,
    shapes: Mapping[str, tuple[Dim, ...]] | InputShapes | str | None = None,
    dim_name: str = "batch",
    simplify: bool = False,
) -> Reshaped:
    """Read ``source``; set its batch and/or input shapes; optionally simplify; verify; write ``output``.

    Nothing is written unless the result runs with ONNX Runtime at its declared shapes and
    matches the original sample by sample.
    """
    from trtforge._files import check_outputs
    from trtforge.graph import verify as check

    check_outputs([("-o", output)], [source])
    from trtforge.graph.model import load, save

    if batch is None and shapes is None and not simplify:
        raise TrtforgeError("nothing to do: give --batch, --shapes and/or --simplify")
    original = load(source)
    result = _change(original, target_shapes(original, batch, shapes, dim_name))
    model = result.model
    if simplify:
        from trtforge.graph.simplify import simplify as slim

        model = slim(model)
    done = check.verify(original, model, old_batch=result.old_batch, suspects=result.suspects)
    _check_valid(model)
    save(model, output)
    return Reshaped(model, result.patched, done, result.old_batch, result.suspects)
