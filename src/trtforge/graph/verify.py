"""The run check: a changed model must run at its declared shapes and compute what the original does.

The changed model runs once with ONNX Runtime on seeded random data at its new shapes
(dynamic dims get probe sizes).  Its outputs must match their declared shapes.  The
original then runs at its *own* shapes on the same samples (in chunks of its batch) and
the outputs are compared sample by sample.  If the original cannot take those samples at
all (a non-batch dimension changed), the check says so instead of comparing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from trtforge.errors import TrtforgeError
from trtforge.graph.batch import batch_axes
from trtforge.graph.model import graph_inputs, graph_outputs

PROBE_SIZES = (64, 512)
"""Sizes a dynamic non-batch dim (height, width, sequence) is probed at, in turn until the model
runs: 64 is a multiple of the strides detectors and segmenters need (32) and fast; 512 is the
chunk audio models take."""


def session(model: onnx.ModelProto):  # -> onnxruntime.InferenceSession
    import onnxruntime as ort

    ort.set_default_logger_severity(4)  # failures are reported as one line, not ORT's log
    options = ort.SessionOptions()
    options.log_severity_level = 4  # a failed probe run is expected (a batch that cannot be freed)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def probe_sizes(
    original: onnx.ModelProto, changed: onnx.ModelProto, old_batch: int | None, other: int = PROBE_SIZES[0]
) -> dict[str, int]:
    """A size for every symbolic input dim of ``changed``: a batch unlike the exported one, else the original's."""
    before = {t.name: t.shape for t in graph_inputs(original)}
    axes = batch_axes(graph_inputs(changed))
    sizes: dict[str, int] = {}
    for spec in graph_inputs(changed):
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, int) or dim in sizes:
                continue
            old = before.get(spec.name, ())
            was = old[axis] if axis < len(old) else None
            if axis == axes.get(spec.name, 0):
                sizes[dim] = (old_batch + 1) if old_batch else 2
            else:
                sizes[dim] = was if isinstance(was, int) and was > 0 else other
    return sizes


def _other_dynamic(model: onnx.ModelProto) -> list[str]:
    """``name:dims`` of inputs with dynamic dims other than the batch (their size was guessed)."""
    axes = batch_axes(graph_inputs(model))
    return [
        spec.name + ":" + spec.shape_text()
        for spec in graph_inputs(model)
        if any(not isinstance(d, int) or d < 1 for a, d in enumerate(spec.shape) if a != axes[spec.name])
    ]


def compared_constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Scalar inputs the graph tests for one value (``Equal(sr, 16000)`` choosing an If branch): that value.

    Random values would take the branch the model is never run on, which may not even work.
    """
    from onnx import numpy_helper

    scalars = {t.name for t in graph_inputs(model) if not t.shape}
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    values: dict[str, np.ndarray] = {}
    for node in model.graph.node:
        if node.op_type == "Equal" and len(node.input) == 2:
            for mine, other in (node.input, node.input[::-1]):
                if mine in scalars and other in constants and constants[other].size == 1:
                    values.setdefault(mine, constants[other].reshape(()))
    return values


def random_feeds(model: onnx.ModelProto, sizes: dict[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    fixed = compared_constants(model)
    for spec in graph_inputs(model):
        if spec.name in fixed:
            feeds[spec.name] = fixed[spec.name].astype(np.dtype(spec.dtype))
            continue
        shape = [d if isinstance(d, int) and d > 0 else sizes.get(str(d), 1) for d in spec.shape]
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


def _shape_text(shape: Sequence[object]) -> str:
    return "x".join(str(d) for d in shape) or "scalar"


def check_declared(model: onnx.ModelProto, feeds: dict[str, np.ndarray], got: list[np.ndarray]) -> None:
    """Outputs must have their declared static dims; a dim name means one size everywhere."""
    bound: dict[str, int] = {}
    for spec in graph_inputs(model):
        for d, n in zip(spec.shape, feeds[spec.name].shape):
            if isinstance(d, str):
                bound.setdefault(d, n)
    for spec, array in zip(graph_outputs(model), got):
        declared = spec.shape
        ok = len(declared) == array.ndim or not declared
        for d, n in zip(declared, array.shape):
            if isinstance(d, int) and d > 0:
                ok = ok and d == n
            elif isinstance(d, str) and not d.startswith("dim") and not d.startswith("unk__"):
                ok = ok and bound.setdefault(d, n) == n
        if not ok:
            raise TrtforgeError(
                f"the changed model declares output {spec.name!r} as {spec.shape_text()} but produces "
                f"{_shape_text(array.shape)}; nothing was written"
            )


def _original_batch(original: onnx.ModelProto) -> int | None:
    firsts = {t.shape[0] if t.shape else None for t in graph_inputs(original)}
    firsts.discard(None)
    if len(firsts) == 1:
        (first,) = firsts
        if isinstance(first, int) and first > 0:
            return first
    return None


def _original_can_take(original: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> bool:
    """True when every non-batch dim of the feeds fits the original's inputs."""
    for spec in graph_inputs(original):
        shape = feeds[spec.name].shape
        if len(shape) != len(spec.shape):
            return False
        for axis, (d, n) in enumerate(zip(spec.shape, shape)):
            if axis > 0 and isinstance(d, int) and d > 0 and d != n:
                return False
    return True


def expected_outputs(original: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The original's outputs for ``feeds``, run at its own batch in chunks when that differs."""
    run = session(original).run
    batch = _original_batch(original)
    n = next((v.shape[0] for v in feeds.values() if v.ndim), None)
    if batch is None or n is None or n == batch:
        return list(run(None, feeds))
    index = np.arange(math.ceil(n / batch) * batch) % n  # wrap the last chunk round to a full batch
    chunks = []
    for start in range(0, len(index), batch):
        take = index[start : start + batch]
        chunks.append(run(None, {k: v[take] if v.ndim else v for k, v in feeds.items()}))
    results = []
    for parts in zip(*chunks):
        if all(p.ndim and p.shape[0] == batch for p in parts):
            results.append(np.concatenate(parts)[:n])
        else:
            results.append(parts[0])  # an output that does not follow the batch
    return results


def _close(want: np.ndarray, have: np.ndarray, rtol: float, atol: float) -> bool:
    if want.shape != have.shape:
        return False
    if want.dtype.kind in "fc":
        return bool(np.allclose(want, have, rtol=rtol, atol=atol, equal_nan=True))
    return bool(np.array_equal(want, have))


def verify(
    original: onnx.ModelProto,
    changed: onnx.ModelProto,
    *,
    old_batch: int | None = None,
    suspects: Sequence[str] = (),
    rtol: float = 1e-4,
    atol: float = 1e-4,
) -> str:
    """Run ``changed`` once and compare it with ``original``; raise if it fails, else say what was checked."""
    hint = f"; nodes that may bake the exported batch: {', '.join(suspects)}" if suspects else ""
    advice = f"; nothing was written; re-export the model with the shapes you want{hint}"
    guessed = _other_dynamic(changed)
    if guessed:
        sizes = " and ".join(map(str, PROBE_SIZES))
        advice = (
            f"; nothing was written; {', '.join(guessed)} has dynamic dims other than the batch, "
            f"tried at {sizes}: give the sizes you use with --shapes NAME:DIMS,...{hint}"
        )
    for other in PROBE_SIZES if guessed else PROBE_SIZES[:1]:
        feeds = random_feeds(changed, probe_sizes(original, changed, old_batch, other))
        at = ", ".join(f"{k}:{_shape_text(v.shape)}" for k, v in feeds.items())
        try:
            got = list(session(changed).run(None, feeds))
            break
        except Exception as exc:
            failure = f"the changed model fails to run at {at} ({str(exc).splitlines()[0]}){advice}"
    else:
        raise TrtforgeError(failure)
    try:
        check_declared(changed, feeds, got)
    except TrtforgeError as exc:
        raise TrtforgeError(f"{exc}{hint}") from None
    if not _original_can_take(original, feeds):
        return f"ran with onnxruntime at {at}; not compared (the original cannot take those shapes)"
    expected = expected_outputs(original, feeds)
    for spec, want, have in zip(graph_outputs(changed), expected, got):
        if not _close(want, have, rtol, atol):
            detail = (
                f"shape {_shape_text(have.shape)}, expected {_shape_text(want.shape)}"
                if want.shape != have.shape
                else "values differ"
            )
            raise TrtforgeError(
                f"the changed model at {at} no longer computes what the original does "
                f"(output {spec.name!r}: {detail}, compared sample by sample){advice}"
            )
    return f"ran with onnxruntime at {at} and matched the original sample by sample"


# --- Conversion check: the source framework against ONNX Runtime -----------------------------

BATCH_PROBE = 2
"""A dynamic batch is checked at 2: a batch baked in at 1 by the exporter then shows."""
OTHER_PROBE = 32


def conversion_feeds(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random inputs at the model's shapes; a dynamic batch gets 2, other dynamic dims 32."""
    sizes: dict[str, int] = {}
    for spec in graph_inputs(model):
        for axis, dim in enumerate(spec.shape):
            if not isinstance(dim, int) or dim < 1:
                sizes.setdefault(str(dim), BATCH_PROBE if axis == 0 else OTHER_PROBE)
    return random_feeds(model, sizes, seed)


@dataclass(frozen=True)
class OutputCheck:
    """How far one converted output is from the source's: max absolute and relative error."""

    name: str
    max_abs: float
    max_rel: float
    ok: bool
    shape: tuple[int, ...]
    expected_shape: tuple[int, ...]

    def describe(self) -> str:
        if self.shape != self.expected_shape:
            return (
                f"output {self.name!r} has shape {_shape_text(self.shape)}, "
                f"the source gives {_shape_text(self.expected_shape)}"
            )
        return f"output {self.name!r} max abs error {self.max_abs:.3g}, max rel error {self.max_rel:.3g}"


def compare_outputs(
    expected: dict[str, np.ndarray], got: dict[str, np.ndarray], atol: float, rtol: float
) -> list[OutputCheck]:
    """Per output: max |got - expected|, max of that over |expected| (where |expected| > atol),
    and numpy's allclose test (|got - expected| <= atol + rtol * |expected| everywhere)."""
    checks = []
    for name, have in got.items():
        want = np.asarray(expected[name])
        have = np.asarray(have)
        if want.shape != have.shape:
            checks.append(OutputCheck(name, math.inf, math.inf, False, have.shape, want.shape))
            continue
        if want.size == 0:
            checks.append(OutputCheck(name, 0.0, 0.0, True, have.shape, want.shape))
            continue
        w, h = want.astype(np.float64), have.astype(np.float64)
        diff = np.abs(h - w)
        both_nan = np.isnan(w) & np.isnan(h)
        diff[both_nan] = 0.0
        ok = bool(np.all(diff <= atol + rtol * np.abs(w)))
        large = np.abs(w) > atol  # relative error near zero says nothing
        rel = float(np.nanmax(diff[large] / np.abs(w[large]))) if large.any() else 0.0
        checks.append(OutputCheck(name, float(np.nanmax(diff)), rel, ok, have.shape, want.shape))
    return checks
