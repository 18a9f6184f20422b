"""Feeds checked against the model's inputs once, at the boundary, before any runtime sees them.

Every path that hands arrays to a model goes through :func:`check_feeds` (``--inputs``,
``--loadInputs``, image folders, random values, the reference of ``compare``) or
:func:`checked_batches` (calibration data and ``--calib-loader`` batches).  What is checked,
per input: the name, that the value is a numeric array (not ragged, not objects), the rank,
every static dimension (the first one too, unless it counts samples), at least one sample,
the dtype and finiteness.  A dtype is cast within its kind (float to float, int to int)
when no value changes beyond float rounding (a widening such as int32 -> int64, or float64
values that float32 holds) and the cast is noted; anything else is refused.  Each refusal is one line naming
the input and what was expected.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

from trtforge.config import TensorSpec
from trtforge.errors import TrtforgeError

Feeds = dict[str, np.ndarray]


def check_feeds(
    feeds: Mapping[str, object],
    specs: Sequence[TensorSpec],
    where: str,
    notes: list[str] | None = None,
    samples: bool = False,
) -> Feeds:
    """``feeds`` by the model's input names, each checked and in the input's dtype, C-contiguous.

    ``samples``: each input's batch axis (:func:`trtforge.graph.batch.batch_axes`: 0, a state's 1,
    none for a scalar) counts samples (fed in chunks), so it may differ from a fixed batch.
    Keys that are no input are left out, with a note.
    """
    if not specs:
        raise TrtforgeError(
            f"{where}: the model has no inputs, so there is nothing to feed it; check that this is the model you meant"
        )
    from trtforge.graph.batch import batch_axes

    resolved = _by_input(feeds, specs, where, notes)
    axes = batch_axes(specs)  # a state's samples run along axis 1; a scalar has none
    return {
        spec.name: _checked(resolved[spec.name], spec, where, notes, axes[spec.name] if samples else None)
        for spec in specs
    }


def checked_batches(
    batches: Iterable[Mapping[str, object]], specs: Sequence[TensorSpec], where: str
) -> Iterator[Feeds]:
    """Calibration batches, each checked as :func:`check_feeds` does (casts noted once, on stderr)."""
    import sys

    noted: set[str] = set()
    for index, batch in enumerate(batches):
        notes: list[str] = []
        yield check_feeds(batch, specs, f"{where} (batch {index})", notes, samples=True)
        for note in notes:
            text = note.split(": ", 1)[-1]
            if text not in noted:
                noted.add(text)
                print(f"note: {text}", file=sys.stderr)


def _by_input(
    feeds: Mapping[str, object], specs: Sequence[TensorSpec], where: str, notes: list[str] | None
) -> dict[str, object]:
    from trtforge.graph.model import resolve_input_name

    names = [s.name for s in specs]
    resolved: dict[str, object] = {}
    for key, value in feeds.items():
        try:
            resolved[resolve_input_name(str(key), names)] = value
        except TrtforgeError:
            if notes is not None:
                notes.append(f"{where}: {key!r} is not an input of the model; left out")
    missing = [n for n in names if n not in resolved]
    if missing:
        raise TrtforgeError(
            f"{where} has no array for input(s) {', '.join(missing)}; "
            f"it holds: {', '.join(map(str, feeds)) or 'nothing'}"
        )
    return resolved


def _as_array(value: object, spec: TensorSpec, where: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):  # ragged nested lists
        raise TrtforgeError(
            f"{where}: {spec.name!r} is not a rectangular array (ragged data?); "
            f"expected {spec.dtype} at {spec.shape_text()}"
        ) from None
    if array.dtype.kind not in "biuf":
        raise TrtforgeError(
            f"{where}: {spec.name!r} holds {array.dtype} values, not numbers; "
            f"expected {spec.dtype} at {spec.shape_text()}"
        )
    return array


def _checked(value: object, spec: TensorSpec, where: str, notes: list[str] | None, samples: int | None) -> np.ndarray:
    """``samples``: the axis that counts samples (may differ from a fixed batch), or None."""
    array = _as_array(value, spec, where)
    shape = "x".join(map(str, array.shape)) or "scalar"
    if array.ndim != len(spec.shape):
        raise TrtforgeError(
            f"{where}: {spec.name!r} has shape {shape}, but the model's input has "
            f"{len(spec.shape)} dimensions ({spec.shape_text()})"
        )
    for axis, d in enumerate(spec.shape):
        if isinstance(d, int) and d > 0 and array.shape[axis] != d and axis != samples:
            raise TrtforgeError(
                f"{where}: {spec.name!r} has shape {shape}, but the model's input is "
                f"{spec.shape_text()} (dimension {axis} differs)"
            )
    if array.ndim and array.shape[samples or 0] == 0:
        raise TrtforgeError(f"{where}: {spec.name!r} holds no samples (shape {shape})")
    array = _cast(array, spec, where, notes)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise TrtforgeError(
            f"{where}: {spec.name!r} holds {bad} NaN or infinite value(s); "
            "a model input must be finite: clean the data first"
        )
    return np.ascontiguousarray(array) if array.ndim else array  # a scalar stays 0-d


def _cast(array: np.ndarray, spec: TensorSpec, where: str, notes: list[str] | None) -> np.ndarray:
    try:
        dtype = np.dtype(spec.dtype)
    except TypeError:
        raise TrtforgeError(
            f"input {spec.name!r} has dtype {spec.dtype}, which numpy cannot hold; "
            "pass inputs in a dtype the engine takes"
        ) from None
    if array.dtype == dtype:
        return array
    if not _same_kind(array.dtype, dtype):
        raise TrtforgeError(
            f"{where}: {spec.name!r} is {array.dtype}, the model takes {dtype}; convert it first "
            "(trtforge does not turn floats into ints or back)"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        cast = array.astype(dtype)
    if not (np.can_cast(array.dtype, dtype, "safe") or _values_kept(array, cast)):
        raise TrtforgeError(
            f"{where}: {spec.name!r} is {array.dtype}, the model takes {dtype}, and casting "
            "would change values (out of range); convert it first"
        )
    if notes is not None:
        notes.append(
            f"{where}: input {spec.name!r} cast from {array.dtype} to {dtype}, the model's input type "
            "(no value changed beyond rounding)"
        )
    return cast


def _same_kind(a: np.dtype, b: np.dtype) -> bool:
    return a.kind == b.kind or (a.kind in "biu" and b.kind in "iu")


def _values_kept(before: np.ndarray, after: np.ndarray) -> bool:
    if after.dtype.kind == "f":  # narrower float: finite stays finite (rounding is expected)
        return bool(np.array_equal(np.isfinite(before), np.isfinite(after)))
    return bool(np.array_equal(before, after.astype(before.dtype)))  # ints: none wrapped around
