"""Per-unit sensitivity to INT8 (or FP16), and the mixed-precision search built on it.

A *unit* is what a backend can honour as one choice: a quantized op with the activations and the
residual Add its flavour fuses into it (a TensorRT Conv + BN + Add + ReLU runs as one kernel), named
by the node names that ``exclude_nodes`` takes. The scheme is **one unit at a time**: calibrate once,
then for each unit build the model with only that unit quantized (every other unit float) and measure
its outputs against FP32 with ONNX Runtime on the validation samples. The error a unit adds alone does
not depend on how noisy the other units are, so the ranking stays readable when several are bad; the
cost is one Q/DQ placement and one validation pass per unit. The budgeted search then keeps the most
sensitive units float, one at a time, measuring the real mixed model after each (a unit that does not
help is put back to INT8), until the error is within the budget.

FP16 works the same way with the cast's units (every node the cast lowers, with its followers), each
measured as the cast would round it (:class:`trtforge.precision.fp16.HalfPlan`). A mixed INT8 model's
kept units go to FP16 where the target runs FP16 kernels fast (TensorRT, TensorRT-RTX, ONNX Runtime
CUDA; :func:`kept_precision`) and stay FP32 on CPUs.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import re
import sys
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from trtforge.config import Precision
from trtforge.errors import TrtforgeError, VerificationError

if TYPE_CHECKING:
    from trtforge.config import BuildConfig, CalibrationConfig
    from trtforge.data.preprocess import Preprocess
    from trtforge.precision.check import Holdout
    from trtforge.precision.fp16 import HalfPlan
    from trtforge.precision.quantize import QuantFlavour
    from trtforge.precision.quantmemo import QuantMemo

Feeds = dict[str, np.ndarray]
Metric = Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], float]
"""(outputs, FP32 reference) -> error, larger is worse; arrays keyed by output name, first axis samples."""

# Ops folded into the quantized op before them (TensorRT fuses them into the kernel; ONNX Runtime's
# CPU placement moves the Q/DQ past the activation).
_FOLLOWERS = frozenset({"Relu", "Clip", "LeakyRelu", "BatchNormalization", "Add"})
_OP_WORD = re.compile(r"^[A-Z][A-Za-z0-9_]*$")
# The ops whose multiply-accumulates count as compute (the INT8 share of a mix is measured in them).
_COMPUTE_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass(frozen=True)
class Unit:
    """One quantization choice: ``nodes`` (anchor first) stay float together or are INT8 together."""

    name: str
    op_type: str
    nodes: tuple[str, ...]
    layer: str | None
    """The source-framework layer the converter kept in the node name (``conv2d_1``, ``layer1.0.conv1``)."""
    index: int

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "op_type": self.op_type,
            "nodes": list(self.nodes),
            "layer": self.layer,
            "index": self.index,
        }


@dataclass(frozen=True)
class UnitError:
    unit: Unit
    error: float
    """The metric with only this unit quantized."""


@dataclass(frozen=True)
class SensitivityResult:
    """Units ranked by the error each adds alone, plus the all-INT8 error and what it cost."""

    metric: str
    flavour: str
    scheme: str
    samples: int
    all_int8: float
    """The error with every unit at the low precision (INT8, or FP16 for an FP16 ranking)."""
    errors: tuple[UnitError, ...]
    """In graph order; :attr:`ranked` sorts them."""
    seconds: dict[str, float]
    precision: str = "int8"

    @property
    def ranked(self) -> list[UnitError]:
        return sorted(self.errors, key=lambda e: (-e.error, e.unit.index))

    def to_json(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "flavour": self.flavour,
            "scheme": self.scheme,
            "samples": self.samples,
            "precision": self.precision,
            "all_int8_error" if self.precision == "int8" else f"all_{self.precision}_error": self.all_int8,
            "seconds": self.seconds,
            "ranked": [{**e.unit.to_json(), "error": e.error} for e in self.ranked],
        }

    def table(self, limit: int | None = 20) -> str:
        rows = self.ranked[:limit] if limit else self.ranked
        lines = [
            f"{'rank':>4}  {'error':>10}  {'op':<18} {'layer':<24} node",
            f"{'':>4}  {self.all_int8:>10.4g}  {f'(all {self.precision.upper()})':<18}",
        ]
        for i, e in enumerate(rows, 1):
            lines.append(
                f"{i:>4}  {e.error:>10.4g}  {e.unit.op_type:<18} {e.unit.layer or '-':<24} {e.unit.name}"
                + (f" (+{len(e.unit.nodes) - 1} fused)" if len(e.unit.nodes) > 1 else "")
            )
        if limit and len(self.errors) > limit:
            lines.append(f"... {len(self.errors) - limit} more unit(s) (--json has all)")
        return "\n".join(lines)


# --------------------------------------------------------------------------- metrics


def _first_classifier(outputs: Mapping[str, np.ndarray]) -> str | None:
    from trtforge.data.arrays import is_classifier

    return next((k for k, v in outputs.items() if is_classifier(np.asarray(v))), None)


def top1(outputs: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> float:
    """Percentage points of samples whose top-1 class differs from FP32's (first class-score output)."""
    name = _first_classifier(reference)
    if name is None:
        raise TrtforgeError(
            "--metric top1: no output holds class scores (samples x classes); use --metric cosine or max-abs"
        )
    a, b = (np.asarray(x[name]).reshape(len(x[name]), -1) for x in (outputs, reference))
    return float(100.0 * np.mean(a.argmax(1) != b.argmax(1)))


def cosine(outputs: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> float:
    """1 - the worst output's mean per-sample cosine similarity of mean-centred values."""
    worst = 0.0
    for name, ref in reference.items():
        a = np.asarray(outputs[name], np.float64).reshape(len(ref), -1)
        b = np.asarray(ref, np.float64).reshape(len(ref), -1)
        a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        cos = np.where(norms > 0, (a * b).sum(1) / np.where(norms > 0, norms, 1), np.all(a == b, axis=1))
        worst = max(worst, float(1.0 - cos.mean()))
    return worst


def max_abs(outputs: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> float:
    """The largest |error| over every output, relative to that output's FP32 range."""
    worst = 0.0
    for name, ref in reference.items():
        r = np.asarray(ref, np.float64)
        span = float(r.max() - r.min()) or 1.0
        worst = max(worst, float(np.abs(np.asarray(outputs[name], np.float64) - r).max()) / span)
    return worst


METRICS: dict[str, Metric] = {"top1": top1, "cosine": cosine, "max-abs": max_abs}


def metric_from(spec: str | Metric) -> tuple[str, Metric]:
    """``top1`` | ``cosine`` | ``max-abs`` | ``FILE.py:fn`` (``fn(outputs, reference) -> error``)."""
    if callable(spec):
        return getattr(spec, "__name__", "custom"), spec
    if spec in METRICS:
        return spec, METRICS[spec]
    path, _, fn = spec.partition(":")
    if not path.endswith(".py") or not fn:
        raise TrtforgeError(f"--metric {spec!r}: expected one of {', '.join(METRICS)} or FILE.py:function")
    if not Path(path).is_file():
        raise TrtforgeError(f"--metric {spec!r}: no file {path}")
    module_spec = importlib.util.spec_from_file_location(f"trtforge_metric_{Path(path).stem}", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    found = getattr(module, fn, None)
    if not callable(found):
        raise TrtforgeError(f"--metric {spec!r}: {path} has no function {fn!r}")
    return spec, found


# --------------------------------------------------------------------------- units


def layer_of(name: str) -> str | None:
    """``model/conv2d_1/BiasAdd`` -> ``conv2d_1``; ``/layer1/layer1.0/conv1/Conv`` -> ``conv1``."""
    parts = [p for p in name.split("/") if p]
    while parts and _OP_WORD.match(parts[-1]):
        parts.pop()
    return parts[-1] if parts and len(name.split("/")) > 1 else None


def name_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give every unnamed node a unique name (``exclude_nodes`` can only name named nodes); in place."""
    taken = {n.name for n in model.graph.node}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            candidate = f"{node.op_type}_{i}"
            while candidate in taken:
                candidate += "_"
            node.name = candidate
            taken.add(candidate)
    return model


def quantized_op_types(flavour: QuantFlavour) -> frozenset[str]:
    from trtforge.precision.quantize import TENSORRT_OPS

    if flavour.placement == "tensorrt":
        return frozenset({*TENSORRT_OPS, *flavour.extra_op_types})
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return frozenset(QLinearOpsRegistry) | frozenset(QDQRegistry)


def units(model: onnx.ModelProto, flavour: QuantFlavour) -> list[Unit]:
    """The model's units in graph order: each node the flavour quantizes, with the ReLU/Clip/BN/Add
    that alone read its output folded in (a Conv and its residual Add and ReLU are one unit)."""
    anchors = quantized_op_types(flavour)
    return grouped(model, lambda node: node.op_type in anchors)


def grouped(model: onnx.ModelProto, is_anchor: Callable[[onnx.NodeProto], bool]) -> list[Unit]:
    """Units in graph order: each anchor node with the ReLU/Clip/BN/Add chain that alone reads its output."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for tensor in node.input:
            readers.setdefault(tensor, []).append(node)
    outputs = {o.name for o in model.graph.output}
    taken: set[str] = set()
    found: list[Unit] = []
    for node in model.graph.node:
        if node.name in taken or not is_anchor(node):
            continue
        members = [node.name]
        current = node
        while len(current.output) == 1 and current.output[0] not in outputs:
            after = readers.get(current.output[0], [])
            if len(after) != 1 or after[0].op_type not in _FOLLOWERS or after[0].name in taken:
                break
            current = after[0]
            members.append(current.name)
        taken.update(members)
        found.append(Unit(node.name, node.op_type, tuple(members), layer_of(node.name), len(found)))
    return found


def node_macs(model: onnx.ModelProto) -> dict[str, int]:
    """Multiply-accumulates per sample of each Conv/ConvTranspose/Gemm/MatMul node, from ONNX shape
    inference (a dimension it cannot tell, such as a symbolic batch, counts as 1)."""
    graph = onnx.shape_inference.infer_shapes(model).graph
    shapes = {i.name: [int(d) for d in i.dims] for i in graph.initializer}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in dims]
    found: dict[str, int] = {}
    for node in graph.node:
        if node.op_type not in _COMPUTE_OPS or len(node.input) < 2:
            continue
        x, w, out = (shapes.get(t) for t in (node.input[0], node.input[1], node.output[0]))
        if not x or not w or not out:
            found[node.name] = 0
        elif node.op_type == "Conv":
            found[node.name] = int(np.prod(out[1:])) * int(np.prod(w[1:]))
        elif node.op_type == "ConvTranspose":
            found[node.name] = int(np.prod(x[1:])) * int(np.prod(w[1:]))
        elif node.op_type == "Gemm":
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            found[node.name] = int(np.prod(out[1:])) * w[1 if trans_b else 0]
        else:
            found[node.name] = int(np.prod(out[1:])) * x[-1]
    return found


def compute_fraction(prepared: Candidates, float_units: Collection[Unit]) -> float:
    """The share of the model's Conv/Gemm/MatMul multiply-accumulates outside ``float_units`` (the units
    left at the low precision), 1.0 for a model without such ops."""
    total = sum(prepared.macs.values())
    floating = sum(prepared.macs.get(n, 0) for u in float_units for n in u.nodes)
    return 1.0 - floating / total if total else 1.0


# --------------------------------------------------------------------------- evaluation


SPEED_MARGIN = 0.05
"""A unit goes float for speed when the float model is this much faster in 4 of 5 alternating rounds."""


@dataclass(frozen=True)
class RaceResult:
    first_ms: float
    second_ms: float
    """The median of each model's round medians, over the rounds run."""
    second_won: int
    """Rounds in which ``second`` was faster than ``first`` by the margin."""
    rounds: int
    """Rounds run: the race stops once the verdict cannot change."""
    needed: int = 4
    """Rounds ``second`` must win to be faster."""

    @property
    def second_faster(self) -> bool:
        return self.second_won >= self.needed


class Evaluator:
    """FP32 reference outputs of the validation samples, and the error of any variant against them.

    The ONNX Runtime sessions of the last few models it ran are kept: a model raced and then measured,
    or the current mix raced against each candidate in turn, is loaded once."""

    _KEPT_SESSIONS = 3

    def __init__(self, model: onnx.ModelProto, feeds: Feeds, metric: Metric) -> None:
        self.feeds, self.metric = feeds, metric
        self._sessions: list[tuple[onnx.ModelProto, Any]] = []
        self.reference = self.outputs(model)

    def session(self, model: onnx.ModelProto) -> Any:
        """An ONNX Runtime CPU session (one thread) of ``model``; the same one again for the same model
        object (do not edit a model in place after running it)."""
        import onnxruntime as ort

        for i, (known, session) in enumerate(self._sessions):
            if known is model:
                self._sessions.append(self._sessions.pop(i))
                return session
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self._sessions = [*self._sessions[1 - self._KEPT_SESSIONS :], (model, session)]
        return session

    def outputs(self, model: onnx.ModelProto) -> dict[str, np.ndarray]:
        session = self.session(model)
        first = session.get_inputs()[0].shape[0]
        n = len(next(iter(self.feeds.values())))
        size = first if isinstance(first, int) and first > 0 else min(n, 64)
        names = [o.name for o in session.get_outputs()]
        chunks: list[list[np.ndarray]] = []
        for start in range(0, n - size + 1 if isinstance(first, int) and first > 0 else n, size):
            chunks.append(session.run(names, {k: v[start : start + size] for k, v in self.feeds.items()}))
        if not chunks:
            raise TrtforgeError(f"the validation data has {n} sample(s), fewer than the model's fixed batch {size}")
        return {name: np.concatenate([c[i] for c in chunks]) for i, name in enumerate(names)}

    def error(self, model: onnx.ModelProto) -> float:
        return self.measure(model)[0]

    def measure(self, model: onnx.ModelProto) -> tuple[float, bool]:
        """The error, and whether every output passes the INT8 self-check's test (cosine and range error
        per sample, :class:`trtforge.precision.check.Thresholds`) on the validation samples."""
        from trtforge.precision.check import Thresholds, compare_output

        out = self.outputs(model)
        reference = {k: v[: len(out[k])] for k, v in self.reference.items()}
        error = float(self.metric(out, reference))
        faithful = all(compare_output(k, reference[k], out[k], Thresholds()).passed for k in reference)
        return (error if np.isfinite(error) else float("inf")), faithful  # a NaN (FP16 overflow) is the worst

    def _batch(self, session: Any) -> Feeds:
        """One batch of the validation samples: the model's fixed batch, else one sample."""
        first = session.get_inputs()[0].shape[0]
        size = first if isinstance(first, int) and first > 0 else 1
        return {k: v[:size] for k, v in self.feeds.items()}

    def race(self, first: onnx.ModelProto, second: onnx.ModelProto, rounds: int = 5, runs: int = 10) -> RaceResult:
        """Whether ``second`` runs faster than ``first`` by :data:`SPEED_MARGIN` on one batch (ONNX Runtime
        CPU, one thread): rounds of ``runs`` calls of each, in alternating order (the noise of a shared
        CPU hits both alike); ``second`` wins a round when its median is below ``first``'s by the margin
        and must win all rounds but one. The race stops as soon as the verdict is settled: two rounds
        lost (usually after two rounds, as most units change the whole model's time by less than the
        margin), or all but one won."""
        sessions = [self.session(m) for m in (first, second)]
        batch = self._batch(sessions[0])
        for session in sessions:
            session.run(None, batch)  # warm-up
        medians: list[list[float]] = [[], []]
        needed, won = max(1, rounds - 1), 0
        while won < needed and len(medians[0]) - won <= rounds - needed:
            order = (0, 1) if len(medians[0]) % 2 == 0 else (1, 0)
            for i in order:
                medians[i].append(self._median_ms(sessions[i], batch, runs))
            won += medians[1][-1] <= medians[0][-1] * (1 - SPEED_MARGIN)
        ms = [float(np.median(m)) for m in medians]
        return RaceResult(ms[0], ms[1], won, len(medians[0]), needed)

    @staticmethod
    def _median_ms(session: Any, batch: Feeds, runs: int) -> float:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            session.run(None, batch)
            times.append((time.perf_counter() - started) * 1e3)
        return float(np.median(times))

    def latency_ms(self, model: onnx.ModelProto, repeats: int = 10) -> float:
        """Median ms of one batch (the first validation chunk) on ONNX Runtime CPU, one thread, after a warm-up."""
        session = self.session(model)
        batch = self._batch(session)
        session.run(None, batch)
        return self._median_ms(session, batch, repeats)


def validation_feeds(model: onnx.ModelProto, data: str | Path, preprocess: Preprocess | None, num: int) -> Feeds:
    from trtforge.data.samples import load_samples
    from trtforge.graph.model import graph_inputs

    if not Path(data).exists():
        raise TrtforgeError(f"--val-data {data}: no such file or folder; give an image folder or FILE.npz/.npy")
    specs = graph_inputs(model)
    if preprocess is not None and len(specs) == 1:
        preprocess = preprocess.resolve(specs[0])
    return load_samples(data, specs, preprocess, limit=num).feeds


# --------------------------------------------------------------------------- sensitivity


@dataclass
class Prepared:
    """The model as quantization sees it (basic optimizations applied, every node named) and its ranges."""

    model: onnx.ModelProto
    ranges: dict[str, tuple[float, float]]
    calibration: dict[str, object]
    flavour: QuantFlavour
    units: list[Unit]
    seconds: float
    holdout: Holdout | None = None
    """The calibration samples held back for the self-check (a budgeted build checks itself too)."""
    precision: str = "int8"
    means: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    """Mean Conv/Gemm inputs from calibration, for bias correction (empty: none)."""
    shifts: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    """Bias shifts by node, computed on first use and reused by every variant."""
    memoize: bool = True
    """Variants share shape inference and weight quantization (:class:`QuantMemo`); False: each is
    quantized from scratch (the same model, slower: the tests compare the two)."""

    @property
    def label(self) -> str:
        return self.flavour.name

    def closure(self, float_units: Sequence[Unit], borders: Collection[Unit] = ()) -> list[Unit]:
        """``float_units`` and, on ONNX Runtime CPU, each Conv/Gemm/MatMul unit whose output only float
        units read: with no Q after it, ONNX Runtime cannot fuse it into an integer kernel, and it would run
        in float anyway after dequantizing its weights on every call (slower than FP32, no accuracy gained).
        A float unit in ``borders`` reads its input through the producer's Q/DQ pair, so it takes nothing
        along. TensorRT fuses the weight Q/DQ at build time, so its flavour needs none."""
        chosen = list(float_units)
        if self.flavour.placement == "tensorrt":
            return chosen
        readers: dict[str, set[str]] = {}
        for node in self.model.graph.node:
            for tensor in node.input:
                readers.setdefault(tensor, set()).add(node.name)
        nodes = {n.name: n for n in self.model.graph.node}
        grew = True
        while grew:
            grew = False
            floating = {n for u in chosen if u not in borders for n in u.nodes}
            for unit in self.units:
                if unit in chosen or unit.op_type not in _COMPUTE_OPS:
                    continue
                after = readers.get(nodes[unit.nodes[-1]].output[0], set())
                if after and after <= floating:
                    chosen.append(unit)
                    grew = True
        return chosen

    def can_border(self, unit: Unit) -> bool:
        """Whether ``unit`` kept float can read its input through a Q/DQ pair instead (ONNX Runtime's
        placement: its producer then keeps the Q after it and stays an integer kernel)."""
        return self.flavour.placement == "onnxruntime"

    def quantized(
        self, float_units: Sequence[Unit] = (), only: Unit | None = None, borders: Collection[Unit] = ()
    ) -> onnx.ModelProto:
        """All units INT8 but ``float_units``; or, with ``only``, that unit alone INT8. Float units in
        ``borders`` read their inputs through the Q/DQ pair their quantized producers write."""
        from trtforge.precision.quantize import quantize, restore_activations

        keep = [u for u in self.units if u is not only] if only is not None else list(float_units)
        nodes = tuple(n for u in keep for n in u.nodes)
        bordered = tuple(n for u in keep if u in borders for n in u.nodes)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "stay in floating point because ... no range": expected here
            memo = self.memo if self.memoize else None
            quantized = quantize(self.model, self.ranges, self.flavour, nodes, quantized_inputs=bordered, memo=memo)
        if self.means:
            from trtforge.precision.biascorrect import correct_biases

            correct_biases(self.model, quantized, self.means, self.shifts)
        return restore_activations(self.model, quantized) if nodes else quantized

    @functools.cached_property
    def macs(self) -> dict[str, int]:
        return node_macs(self.model)

    @functools.cached_property
    def memo(self) -> QuantMemo:
        """Shape inference and weight quantization, done once for every variant."""
        from trtforge.precision.quantmemo import QuantMemo

        return QuantMemo(self.model)

    variant = quantized
    """The model the search measures (for INT8: the Q/DQ model itself)."""
    final = quantized


@dataclass
class HalfPrepared:
    """The FP16 (BF16) cast's units: each node the cast lowers, with the ReLU/BN/Add chain after it.

    :meth:`variant` is what ONNX Runtime CPU can measure (FP32 arithmetic, the half-precision tensors
    rounded through Cast pairs, as TensorRT's FP16 kernels store them); :meth:`final` the real cast."""

    plan: HalfPlan
    units: list[Unit]
    seconds: float
    precision: str = "fp16"
    holdout: None = None

    @property
    def model(self) -> onnx.ModelProto:
        return self.plan.model

    @property
    def label(self) -> str:
        return f"{self.precision} cast"

    def closure(self, float_units: Sequence[Unit], borders: Collection[Unit] = ()) -> list[Unit]:
        return list(float_units)

    def can_border(self, unit: Unit) -> bool:
        return False

    @functools.cached_property
    def macs(self) -> dict[str, int]:
        return node_macs(self.model)

    def variant(
        self, float_units: Sequence[Unit] = (), only: Unit | None = None, borders: Collection[Unit] = ()
    ) -> onnx.ModelProto:
        if only is not None:
            return self.plan.simulated(only=only.nodes)
        return self.plan.simulated(kept=[n for u in float_units for n in u.nodes])

    def final(self, float_units: Sequence[Unit] = ()) -> onnx.ModelProto:
        return self.plan.cast(kept=[n for u in float_units for n in u.nodes])


Candidates = Prepared | HalfPrepared


def prepare_int8(
    model: onnx.ModelProto, calibration: CalibrationConfig, flavour: QuantFlavour, holdout: Holdout | None = None
) -> Prepared:
    """Calibrate once (or read the matching cache), on the model quantization will edit; ``holdout``
    keeps samples back for the self-check, as a plain INT8 build does."""
    from trtforge._files import sha256_bytes
    from trtforge.precision.apply import _int8_ranges, equalize_channels
    from trtforge.precision.quantize import ensure_opset, prepare

    started = time.perf_counter()
    sha = sha256_bytes(model.SerializeToString(deterministic=True))  # the model as the user gave it
    model, _ = ensure_opset(model)  # as a plain INT8 build does: per-channel Q/DQ needs opset 13
    prepared, equalized = equalize_channels(name_nodes(prepare(model)), calibration)
    means: dict[str, np.ndarray] = {}
    ranges, facts = _int8_ranges(prepared, calibration, sha, holdout, flavour.activation_symmetric, means)
    facts["equalization"] = equalized
    means = means if calibration.bias_correction else {}
    seconds = time.perf_counter() - started
    return Prepared(prepared, ranges, facts, flavour, units(prepared, flavour), seconds, holdout, means=means)


def prepare_half(model: onnx.ModelProto, precision: Precision = Precision.FP16) -> HalfPrepared:
    """The cast's units (nodes already kept FP32 by the cast's op rules are none)."""
    from trtforge.precision.fp16 import HalfPlan

    started = time.perf_counter()
    plan = HalfPlan(name_nodes(onnx.ModelProto.FromString(model.SerializeToString())), precision)
    return HalfPrepared(plan, grouped(plan.model, plan.lowered), time.perf_counter() - started, str(precision))


def rank(prepared: Candidates, evaluator: Evaluator, metric: str, progress: bool = True) -> SensitivityResult:
    """The error each unit adds alone (one variant + one validation pass per unit)."""
    started = time.perf_counter()
    all_low = evaluator.error(prepared.variant())
    errors = []
    for i, unit in enumerate(prepared.units, 1):
        errors.append(UnitError(unit, evaluator.error(prepared.variant(only=unit))))
        if progress and (i % 10 == 0 or i == len(prepared.units)):
            print(f"sensitivity: {i}/{len(prepared.units)} units measured", file=sys.stderr)
    elapsed = time.perf_counter() - started
    how = "quantized" if prepared.precision == "int8" else f"cast to {prepared.precision.upper()} (rounding simulated)"
    return SensitivityResult(
        metric,
        prepared.label,
        f"one unit {how} at a time, the rest float, vs FP32 (ONNX Runtime CPU)",
        len(next(iter(evaluator.feeds.values()))),
        all_low,
        tuple(errors),
        {
            "calibrate" if prepared.precision == "int8" else "prepare": round(prepared.seconds, 2),
            "units": round(elapsed, 2),
            "per_unit": round(elapsed / max(1, len(prepared.units) + 1), 3),
        },
        prepared.precision,
    )


def flavour_for(backend: str, reduce_range: bool = False) -> QuantFlavour:
    """The Q/DQ flavour ``backend`` builds INT8 in (as its ``quant_flavour``; tests pin the two together)."""
    from trtforge.precision.quantize import TENSORRT_FLAVOUR, cpu_flavour, openvino_flavour

    if backend in ("tensorrt", "tensorrt-rtx"):
        return TENSORRT_FLAVOUR
    if backend == "openvino":
        return openvino_flavour()
    if backend == "onnxruntime":
        return cpu_flavour(reduce_range=reduce_range)
    raise TrtforgeError(f"unknown backend {backend!r}; expected one of onnxruntime, openvino, tensorrt, tensorrt-rtx")


def sensitivity(
    model: str | Path | onnx.ModelProto,
    calibration: CalibrationConfig | None,
    validation: str | Path,
    backend: str = "onnxruntime",
    metric: str | Metric = "top1",
    preprocess: Preprocess | None = None,
    val_num: int = 64,
    precision: Precision | str = Precision.INT8,
) -> SensitivityResult:
    """Rank ``model``'s units by the error each adds at ``precision`` (INT8 or FP16), measured on
    ``validation`` (images or .npz).

    ``backend`` picks the Q/DQ flavour (and so the INT8 units); ``preprocess`` defaults to the
    calibration's. FP16 needs no ``calibration`` (pass None).
    """
    from trtforge.graph.model import load

    precision = Precision.parse(precision)
    onnx_model = model if isinstance(model, onnx.ModelProto) else load(model)
    metric_name, fn = metric_from(metric)
    preprocess = preprocess or (calibration.preprocess if calibration is not None else None)
    feeds = validation_feeds(onnx_model, validation, preprocess, val_num)
    prepared: Candidates
    if precision is Precision.INT8:
        if calibration is None:
            raise TrtforgeError("INT8 sensitivity needs calibration data: pass --calib-data DIR|FILE.npz")
        flavour = flavour_for(backend, calibration.reduce_range)
        prepared = prepare_int8(onnx_model, _fitted(calibration, onnx_model), flavour)
    elif precision in (Precision.FP16, Precision.BF16):
        prepared = prepare_half(onnx_model, precision)
    else:
        raise TrtforgeError(f"--precision {precision}: sensitivity measures int8, fp16 or bf16 units")
    return rank(prepared, Evaluator(onnx_model, feeds, fn), metric_name)


def _fitted(calibration: CalibrationConfig, model: onnx.ModelProto) -> CalibrationConfig:
    from trtforge.graph.model import graph_inputs

    specs = graph_inputs(model)
    if calibration.preprocess is None or len(specs) != 1:
        return calibration
    return dataclasses.replace(calibration, preprocess=calibration.preprocess.resolve(specs[0]))


# --------------------------------------------------------------------------- the budgeted search


@dataclass(frozen=True)
class Try:
    unit: Unit
    error: float
    """The error after this step."""
    gain: float
    """How much this step lowered the error (negative when it raised it)."""
    kept: bool
    """Whether the step was taken (for ``pruned``/``border``: whether the unit went back)."""
    with_units: tuple[Unit, ...] = ()
    """Units that went float with it: their only reader is now float, so ONNX Runtime cannot fuse them."""
    step: str = "alone"
    """``alone``: float when that alone lowers the error; ``cumulative``: float in ranked order, helping or
    not, once no single unit did; ``pruned``: back to the low precision after the budget held;
    ``border``: reads its input through its producer's Q/DQ again after the budget held (the producer
    goes back to INT8)."""
    border: bool = False
    """The unit reads its input through its INT8 producer's Q/DQ pair (the producer stays INT8)."""


@dataclass(frozen=True)
class Mix:
    """A point of the search: the units chosen float (in order), those of them that read a quantized
    input, every unit that ends up float (the chosen ones and what they take along), and its error."""

    chosen: tuple[Unit, ...]
    borders: frozenset[Unit]
    floating: tuple[Unit, ...]
    error: float
    faithful: bool = True
    """Every output passes the self-check's test on the validation samples."""


@dataclass(frozen=True)
class SearchResult:
    tries: list[Try]
    mix: Mix
    passes: int
    """Validation passes the search made (the ranking's not counted)."""

    @property
    def error(self) -> float:
        return self.mix.error

    def taken_along(self, prepared: Candidates) -> dict[Unit, tuple[Unit, ...]]:
        """``{chosen unit: the units it took along}``, in the order they were chosen."""
        found: dict[Unit, tuple[Unit, ...]] = {}
        before: set[Unit] = set()
        for i, unit in enumerate(self.mix.chosen):
            now = prepared.closure(self.mix.chosen[: i + 1], self.mix.borders)
            found[unit] = tuple(u for u in now if u not in before and u is not unit)
            before = set(now)
        return found


class _Searcher:
    """Measures mixes and counts the passes."""

    def __init__(self, prepared: Candidates, evaluator: Evaluator, budget: float) -> None:
        self.prepared, self.evaluator, self.budget, self.passes = prepared, evaluator, budget, 0

    def mix(self, chosen: Sequence[Unit], borders: Collection[Unit]) -> Mix:
        floating = self.prepared.closure(chosen, borders)
        self.passes += 1
        error, faithful = self.evaluator.measure(self.prepared.variant(floating, borders=borders))
        return Mix(tuple(chosen), frozenset(borders), tuple(floating), error, faithful)

    def holds(self, trial: Mix, current: Mix) -> bool:
        """A pruning step keeps the budget, and does not trade a faithful mix for one the self-check
        would refuse (a coarse metric such as top1 can hold while the outputs drift)."""
        return trial.error <= self.budget and (trial.faithful or not current.faithful)

    def macs_restored(self, mix: Mix, unit: Unit) -> int:
        """The multiply-accumulates that go back to the low precision when ``unit`` is no longer chosen."""
        rest = set(self.prepared.closure([u for u in mix.chosen if u is not unit], mix.borders - {unit}))
        macs = self.prepared.macs
        return sum(macs.get(n, 0) for u in mix.floating if u not in rest for n in u.nodes)


def search(
    prepared: Candidates, evaluator: Evaluator, ranking: SensitivityResult, budget: float, max_float: int | None = None
) -> SearchResult:
    """Keep the most sensitive units float until the error is within ``budget``, then put back what
    the budget does not need.

    1. One at a time in ranked order: a unit stays float when that lowers the error (else it goes back).
    2. Cumulative, when the budget still fails: the remaining units go float in ranked order whether or
       not each helps alone (an error spread over many units falls only together).
    3. Pruning, once the budget holds: each chosen unit, most compute first, goes back to the low
       precision if the budget still holds without it (and the outputs still pass the self-check's
       cosine and range test on the validation samples, when they did); else, on ONNX Runtime CPU, where it took its
       producer along (float, as nothing else read it quantized), it reads its input through the
       producer's Q/DQ pair instead if that keeps the budget (the producer goes back to INT8).

    Steps 1 and 2 keep the float readers reading float tensors (accuracy first: a reader kept float
    because its quantized input is the problem gains nothing from a Q/DQ at its border); step 3 trades
    that back for INT8 compute only where the budget allows.

    Units that add no error alone are not tried in step 1, and at most ``max_float`` units (default:
    half of them, so the result is still mostly INT8/FP16) end up float.
    """
    searcher = _Searcher(prepared, evaluator, budget)
    mix = Mix((), frozenset(), (), ranking.all_int8)
    limit = max(1, len(prepared.units) // 2) if max_float is None else max_float
    tries: list[Try] = []
    for step in ("alone", "cumulative"):
        for candidate in ranking.ranked:
            if mix.error <= budget or len(mix.floating) >= limit or (step == "alone" and candidate.error <= 0):
                break
            if candidate.unit in mix.floating:
                continue  # already float, taken along by an earlier unit
            trial = searcher.mix([*mix.chosen, candidate.unit], mix.borders)
            taken = step == "cumulative" or trial.error < mix.error
            along = tuple(u for u in trial.floating if u not in mix.floating and u is not candidate.unit)
            tries.append(Try(candidate.unit, trial.error, mix.error - trial.error, taken, along, step))
            mix = trial if taken else mix
    if mix.error <= budget:
        mix = _prune(searcher, mix, tries)
    return SearchResult(tries, mix, searcher.passes)


def _prune(searcher: _Searcher, mix: Mix, tries: list[Try]) -> Mix:
    for unit in sorted(mix.chosen, key=lambda u: -searcher.macs_restored(mix, u)):
        rest = [u for u in mix.chosen if u is not unit]
        if unit in searcher.prepared.closure(rest, mix.borders - {unit}):
            continue  # float anyway: another chosen unit takes it along
        back = searcher.mix(rest, mix.borders - {unit})
        fits = searcher.holds(back, mix)
        tries.append(Try(unit, back.error, mix.error - back.error, fits, (), "pruned"))
        if fits:
            mix = back
            continue
        if unit in mix.borders or not searcher.prepared.can_border(unit):
            continue
        if len(searcher.prepared.closure(mix.chosen, mix.borders | {unit})) == len(mix.floating):
            continue  # it took nothing along: the same compute either way
        bordered = searcher.mix(mix.chosen, mix.borders | {unit})
        fits = searcher.holds(bordered, mix)
        tries.append(Try(unit, bordered.error, mix.error - bordered.error, fits, (), "border", True))
        mix = bordered if fits else mix
    return mix


@dataclass(frozen=True)
class SpeedDrop:
    unit: Unit
    with_units: tuple[Unit, ...]
    int8_ms: float
    float_ms: float
    error_after: float

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.unit.name,
            "op_type": self.unit.op_type,
            "layer": self.unit.layer,
            "with": [u.name for u in self.with_units],
            "int8_ms": round(self.int8_ms, 4),
            "float_ms": round(self.float_ms, 4),
            "error_after": self.error_after,
        }


def drop_slow_units(
    prepared: Prepared,
    evaluator: Evaluator,
    kept: list[Unit],
    error: float,
    budget: float,
    borders: Collection[Unit] = (),
) -> tuple[list[Unit], float, list[SpeedDrop]]:
    """Units still INT8 whose float version runs faster on ONNX Runtime CPU (timed in alternating rounds,
    the whole model each way) go float, when the error stays within the budget."""
    drops: list[SpeedDrop] = []
    current = prepared.quantized(kept, borders=borders)
    for unit in prepared.units:
        if unit in kept:
            continue
        together = prepared.closure([*kept, unit], borders)
        candidate = prepared.quantized(together, borders=borders)
        race = evaluator.race(current, candidate)
        if not race.second_faster:
            continue
        trial = evaluator.error(candidate)  # the candidate's session, loaded for the race, serves again
        if trial > budget:
            continue
        drops.append(SpeedDrop(unit, tuple(together[len(kept) + 1 :]), race.first_ms, race.second_ms, trial))
        kept, error, current = together, trial, candidate
    return kept, error, drops


def kept_precision(backend: str, device: str) -> tuple[Precision, str]:
    """The precision a mixed INT8 model's kept units run in on the target, and why."""
    if backend in ("tensorrt", "tensorrt-rtx"):
        return Precision.FP16, f"{backend} runs FP16 kernels natively (the units' nodes are cast in the graph)"
    if backend == "onnxruntime" and device == "cuda":
        return Precision.FP16, "ONNX Runtime CUDA has FP16 kernels (the units' nodes are cast in the graph)"
    return Precision.FP32, f"{backend} on {device}: no fast FP16 kernels (FP16 would run as FP32 plus casts)"


def measured_on(config: BuildConfig, precision: str) -> tuple[bool, str]:
    """Whether the search's ONNX Runtime CPU timings are the target's, and the words for the manifest."""
    where = "ONNX Runtime CPU, 1 thread, median of 10 runs of one batch"
    if config.backend == "onnxruntime" and config.device == "cpu":
        return True, where
    if precision == "int8" and config.backend in ("tensorrt", "tensorrt-rtx"):
        return False, (
            f"{where}, Q/DQ graphs: not the {config.backend} target, which cannot run here; its Q/DQ "
            "follows TensorRT's placement rules (Q/DQ only where TensorRT fuses them into INT8 kernels)"
        )
    return False, f"{where}: not the {config.backend} ({config.device}) target"


def apply_budget(
    model: onnx.ModelProto, config: BuildConfig, flavour: QuantFlavour | None
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """INT8 (or FP16) within ``config.max_accuracy_drop``: the precision stage for a budgeted build.

    Returns the mixed model and the facts by manifest section (``calibration``, ``mixed``, ``cast``).
    Raises :class:`VerificationError` (exit 1) with the table when no tried mix meets the budget, or
    when the INT8 self-check fails (unless ``allow_inaccurate``).
    """
    assert config.validation is not None and config.max_accuracy_drop is not None
    if config.exclude_nodes or config.exclude_op_types:
        raise TrtforgeError(
            "--max-accuracy-drop chooses the float units itself; drop --exclude-nodes/"
            "--exclude-op-types, or build without the budget"
        )
    started = time.perf_counter()
    metric_name, fn = metric_from(config.metric)
    preprocess = config.val_preprocess or (config.calibration.preprocess if config.calibration is not None else None)
    evaluator = Evaluator(model, validation_feeds(model, config.validation, preprocess, config.val_num), fn)
    prepared: Candidates
    if config.precision is Precision.INT8:
        assert config.calibration is not None and flavour is not None
        from trtforge.graph.batch import batch_axes
        from trtforge.graph.model import graph_inputs
        from trtforge.precision.check import Holdout

        holdout = Holdout(axes=batch_axes(graph_inputs(model)))
        prepared = prepare_int8(model, _fitted(config.calibration, model), flavour, holdout)
    else:
        prepared = prepare_half(model, config.precision)
    ranking = rank(prepared, evaluator, metric_name)
    searched = time.perf_counter()
    found = search(prepared, evaluator, ranking, config.max_accuracy_drop)
    searched = time.perf_counter() - searched
    tries, error, kept = found.tries, found.error, list(found.mix.floating)
    if error > config.max_accuracy_drop:
        print(ranking.table(), file=sys.stderr)
        raise VerificationError(
            f"{prepared.precision.upper()} misses --max-accuracy-drop {config.max_accuracy_drop:g} ({metric_name}): "
            f"all-{prepared.precision.upper()} error {ranking.all_int8:.4g}, {error:.4g} with {len(kept)} of "
            f"{len({t.unit for t in tries})} tried unit(s) kept float, one at a time and then together (at most "
            f"half of the {len(prepared.units)} units are); the ranking is above (raise the budget, or build at "
            "a higher precision)"
        )
    if isinstance(prepared, Prepared):
        mixed_model, facts = _finish_int8(prepared, evaluator, ranking, found, config)
    else:
        mixed_model, facts = _finish_half(prepared, evaluator, ranking, found, config, model)
    facts["mixed"]["seconds"] = round(time.perf_counter() - started, 2)
    facts["mixed"]["search_seconds"] = round(searched, 2)
    print(render_mixed(facts["mixed"]), file=sys.stderr)
    if isinstance(prepared, Prepared):
        facts["calibration"]["check"] = _self_check(prepared, mixed_model, config)
    from trtforge.precision.apply import io_formats

    mixed_model, facts["io_formats"] = io_formats(mixed_model, config)
    return mixed_model, facts


def _finish_int8(
    prepared: Prepared, evaluator: Evaluator, ranking: SensitivityResult, found: SearchResult, config: BuildConfig
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Speed-aware dropping where the target is this CPU, then the kept units in FP16 where the target
    runs FP16 fast (kept FP32 when FP16 rounding would break the budget, said so)."""
    assert config.max_accuracy_drop is not None
    on_target, _ = measured_on(config, "int8")
    drops: list[SpeedDrop] = []
    kept, error, borders = list(found.mix.floating), found.error, found.mix.borders
    speed_seconds = 0.0
    if on_target and prepared.flavour.placement != "tensorrt" and config.drop_slow_units:
        timed = time.perf_counter()
        kept, error, drops = drop_slow_units(prepared, evaluator, kept, error, config.max_accuracy_drop, borders)
        speed_seconds = time.perf_counter() - timed
    model = prepared.quantized(kept, borders=borders)
    precision, why = kept_precision(config.backend, config.device)
    if precision is Precision.FP16 and kept:
        from trtforge.precision.fp16 import HalfPlan

        plan, nodes = HalfPlan(model), [n for u in kept for n in u.nodes]
        half_error = evaluator.error(plan.simulated(only=nodes))
        if half_error <= config.max_accuracy_drop:
            model, error = plan.cast(only=nodes), half_error
        else:
            precision = Precision.FP32
            why += f"; but FP16 rounding of the kept units gave error {half_error:.4g}, over the budget, so FP32"
    facts = _mixed_facts(prepared, evaluator, ranking, found, kept, error, config, model)
    facts.update(
        {
            "kept_precision": str(precision),
            "kept_precision_why": why,
            "speed": _speed_facts(config, prepared, drops, speed_seconds),
        }
    )
    calibration = {
        **prepared.calibration,
        "flavour": prepared.flavour.to_json(),
        "prepared": "onnxruntime basic graph optimizations (constants folded, Conv+BN/Mul/Add fused)",
    }
    return model, {"calibration": calibration, "mixed": facts, "cast": None}


def _speed_facts(config: BuildConfig, prepared: Prepared, drops: list[SpeedDrop], seconds: float) -> dict[str, object]:
    on_target, where = measured_on(config, "int8")
    if not config.drop_slow_units:
        return {"measured": False, "how": "not checked (--keep-slow-int8)", "dropped": []}
    if on_target and prepared.flavour.placement != "tensorrt":
        how = (
            f"each INT8 unit timed float vs INT8 (whole model, {where.split(',')[0]}, up to 5 alternating rounds "
            f"of 10 runs, stopped once settled); float kept when faster by {SPEED_MARGIN:.0%} in 4 of 5 rounds "
            "and within the budget"
        )
        return {"measured": True, "how": how, "dropped": [d.to_json() for d in drops], "seconds": round(seconds, 2)}
    return {"measured": False, "how": where, "dropped": []}


def _finish_half(
    prepared: HalfPrepared,
    evaluator: Evaluator,
    ranking: SensitivityResult,
    found: SearchResult,
    config: BuildConfig,
    fp32: onnx.ModelProto,
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    kept = list(found.mix.floating)
    model = prepared.final(kept)
    facts = _mixed_facts(prepared, evaluator, ranking, found, kept, found.error, config, model, fp32)
    facts.update({"kept_precision": "fp32", "kept_precision_why": "the units that break the budget in half precision"})
    cast = {
        "precision": prepared.precision,
        "kept": {n: f"kept FP32 by --max-accuracy-drop ({ranking.metric})" for u in kept for n in u.nodes},
        "blocked_op_types": sorted(prepared.plan.blocked_ops),
        "checked_on": f"{ranking.samples} validation sample(s) of {config.validation}",
    }
    return model, {"calibration": None, "mixed": facts, "cast": cast}


def _self_check(prepared: Prepared, model: onnx.ModelProto, config: BuildConfig) -> dict[str, object]:
    """The INT8 self-check every INT8 build runs: on the held-back calibration samples."""
    from trtforge.precision.apply import _cached_check_feeds
    from trtforge.precision.check import verify

    assert config.calibration is not None
    holdout = prepared.holdout
    feeds = holdout.feeds() if holdout is not None else None
    return verify(
        prepared.model,
        model,
        feeds or _cached_check_feeds(prepared.model, config),
        str(config.calibration.data or config.calibration.loader),
        holdout.held_back if holdout is not None else False,
        config.allow_inaccurate,
        fuse_qdq=prepared.flavour.placement == "onnxruntime",  # as in apply.quantize_int8
    )


def _mixed_facts(
    prepared: Candidates,
    evaluator: Evaluator,
    ranking: SensitivityResult,
    found: SearchResult,
    kept_units: list[Unit],
    error: float,
    config: BuildConfig,
    mixed: onnx.ModelProto,
    fp32: onnx.ModelProto | None = None,
) -> dict[str, Any]:
    low = prepared.precision
    models = {"fp32": fp32 or prepared.model, low: prepared.final(), "mixed": mixed}
    on_target, where = measured_on(config, low)
    taken = {t.unit: t for t in found.tries if t.kept and t.step in ("alone", "cumulative")}
    along = found.taken_along(prepared)
    return {
        "precision": low,
        "metric": ranking.metric,
        "budget": config.max_accuracy_drop,
        "scheme": ranking.scheme,
        "validation": str(config.validation),
        "samples": ranking.samples,
        "units": len(prepared.units),
        "kept_float": [
            {
                **unit.to_json(),
                "gain": taken[unit].gain,
                "error_after": taken[unit].error,
                "error_alone": next(e.error for e in ranking.errors if e.unit is unit),
                "with": [u.name for u in along[unit]],
                "step": taken[unit].step,
                "reads_int8_input": unit in found.mix.borders,
            }
            for unit in found.mix.chosen
        ],
        "tried": [
            {"name": t.unit.name, "step": t.step, "error_after": t.error, "gain": t.gain, "kept": t.kept}
            for t in found.tries
        ],
        "search_passes": found.passes,
        "error": {"fp32": 0.0, low: ranking.all_int8, "mixed": error},
        "latency_ms": {k: round(evaluator.latency_ms(m), 4) for k, m in models.items()},
        "latency_measured": where,
        "latency_is_target": on_target,
        "onnx_bytes": {k: m.ByteSize() for k, m in models.items()},
        f"{low}_fraction": round(
            1 - sum(len(u.nodes) for u in kept_units) / max(1, sum(len(u.nodes) for u in prepared.units)), 4
        ),
        f"{low}_compute_fraction": round(compute_fraction(prepared, kept_units), 4),
        "compute_macs": sum(prepared.macs.values()),
        "ranking_seconds": ranking.seconds,
        "ranking": [
            {"name": e.unit.name, "op_type": e.unit.op_type, "layer": e.unit.layer, "error": e.error}
            for e in sorted(ranking.errors, key=lambda e: e.unit.index)
        ],
    }


def render_mixed(facts: Mapping[str, Any]) -> str:
    err, lat, size = facts["error"], facts["latency_ms"], facts["onnx_bytes"]
    low = facts.get("precision", "int8")
    kept_word = str(facts.get("kept_precision", "fp32")).upper()
    lines = [
        f"mixed precision ({facts['metric']}, budget {facts['budget']:g}): "
        f"{sum(1 + len(u['with']) for u in facts['kept_float'])} of {facts['units']} unit(s) kept {kept_word}"
        + (f" ({facts['kept_precision_why']})" if facts["kept_float"] and "kept_precision_why" in facts else "")
    ]
    for u in facts["kept_float"]:
        lines.append(
            f"  kept {kept_word}: {u['name']} ({u['op_type']}, layer {u['layer'] or '-'}): "
            f"alone {u['error_alone']:.4g}, gain {u['gain']:.4g}"
            + (" (with the units before it, once no single unit helped)" if u.get("step") == "cumulative" else "")
            + ("; reads its input through the Q/DQ of its INT8 producer" if u.get("reads_int8_input") else "")
            + (f"; with {', '.join(u['with'])} (its reader is float, so unfusable)" if u["with"] else "")
        )
    for t in facts.get("tried", []):
        if t.get("step") in ("pruned", "border") and t["kept"]:
            what = f"back to {low.upper()}" if t["step"] == "pruned" else "reads INT8 input again"
            lines.append(f"  {what}: {t['name']} (the budget still holds: error {t['error_after']:.4g})")
    for d in facts.get("speed", {}).get("dropped", []):
        lines.append(
            f"  float for speed: {d['name']} ({d['op_type']}): {d['float_ms']:.3f} ms float vs "
            f"{d['int8_ms']:.3f} ms INT8 (whole model), error then {d['error_after']:.4g}"
        )
    lines.append(f"  {'':<6} {'error':>10} {'latency ms':>11} {'ONNX KiB':>9}")
    for k in ("fp32", low, "mixed"):
        lines.append(f"  {k:<6} {err[k]:>10.4g} {lat[k]:>11.3f} {size[k] / 1024:>9.1f}")
    share = facts.get(f"{low}_compute_fraction")
    if share is not None:
        lines.append(
            f"  {low.upper()} share of the mix: {share:.0%} of the Conv/Gemm/MatMul multiply-accumulates, "
            f"{facts[f'{low}_fraction']:.0%} of the units' nodes"
        )
        if share == 0 and facts.get("compute_macs"):
            lines.append(
                f"  note: no Conv/Gemm/MatMul is left {low.upper()} in this mix: it computes in FP32 (the "
                f"{low.upper()} part is lighter ops); an FP32 build{' (or FP16)' if low == 'int8' else ''} "
                "gives the same accuracy with less overhead, or raise the budget"
            )
    if not facts["latency_is_target"]:
        lines.append(f"  latency: {facts['latency_measured']}")
    elif facts["kept_float"] and lat["mixed"] > lat["fp32"] * (1 + SPEED_MARGIN):
        lines.append(
            f"  warning: the mixed model is slower than FP32 here ({lat['mixed']:.3f} vs {lat['fp32']:.3f} ms, "
            f"{facts['latency_measured']}): the {'Q/DQ pairs' if low == 'int8' else 'casts'} at the float units' "
            f"borders cost more than the {low.upper()} units save; FP32{' (or FP16)' if low == 'int8' else ''} may "
            "be the better build"
        )
    return "\n".join(lines)


def plot(result: SensitivityResult, path: str | Path) -> None:
    """Error per unit in graph order (bars), the all-INT8 error as a line; written atomically."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise TrtforgeError("--plot needs matplotlib, which is not installed: pip install matplotlib") from None
    from trtforge._files import atomic_path

    errors = sorted(result.errors, key=lambda e: e.unit.index)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.18 * len(errors)), 3.4))
    ax.bar(range(len(errors)), [e.error for e in errors], color="#4c72b0")
    ax.axhline(result.all_int8, color="#c44e52", linestyle="--", label=f"all INT8 ({result.all_int8:.3g})")
    ax.set_xticks(range(len(errors)))
    ax.set_xticklabels([e.unit.layer or e.unit.name for e in errors], rotation=90, fontsize=6)
    ax.set_ylabel(f"{result.metric} error, unit alone INT8")
    ax.set_title("INT8 sensitivity per unit (graph order)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
