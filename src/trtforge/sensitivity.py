"""Per-unit sensitivity to INT8, and the mixed-precision search built on it.

A *unit* is what a backend can honour as one choice: a quantized op with the activations and the
residual Add its flavour fuses into it (a TensorRT Conv + BN + Add + ReLU runs as one kernel), named
by the node names that ``exclude_nodes`` takes. The scheme is **one unit at a time**: calibrate once,
then for each unit build the model with only that unit quantized (every other unit float) and measure
its outputs against FP32 with ONNX Runtime on the validation samples. The error a unit adds alone does
not depend on how noisy the other units are, so the ranking stays readable when several are bad; the
cost is one Q/DQ placement and one validation pass per unit. The budgeted search then keeps the most
sensitive units float, one at a time, measuring the real mixed model after each (a unit that does not
help is put back to INT8), until the error is within the budget.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from trtforge.errors import TrtforgeError, VerificationError

if TYPE_CHECKING:
    from trtforge.config import BuildConfig, CalibrationConfig
    from trtforge.data.preprocess import Preprocess
    from trtforge.precision.quantize import QuantFlavour

Feeds = dict[str, np.ndarray]
Metric = Callable[[Mapping[str, np.ndarray], Mapping[str, np.ndarray]], float]
"""(outputs, FP32 reference) -> error, larger is worse; arrays keyed by output name, first axis samples."""

# Ops folded into the quantized op before them (TensorRT fuses them into the kernel; ONNX Runtime's
# CPU placement moves the Q/DQ past the activation).
_FOLLOWERS = frozenset({"Relu", "Clip", "LeakyRelu", "BatchNormalization", "Add"})
_OP_WORD = re.compile(r"^[A-Z][A-Za-z0-9_]*$")


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
    errors: tuple[UnitError, ...]
    """In graph order; :attr:`ranked` sorts them."""
    seconds: dict[str, float]

    @property
    def ranked(self) -> list[UnitError]:
        return sorted(self.errors, key=lambda e: (-e.error, e.unit.index))

    def to_json(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "flavour": self.flavour,
            "scheme": self.scheme,
            "samples": self.samples,
            "all_int8_error": self.all_int8,
            "seconds": self.seconds,
            "ranked": [{**e.unit.to_json(), "error": e.error} for e in self.ranked],
        }

    def table(self, limit: int | None = 20) -> str:
        rows = self.ranked[:limit] if limit else self.ranked
        lines = [
            f"{'rank':>4}  {'error':>10}  {'op':<18} {'layer':<24} node",
            f"{'':>4}  {self.all_int8:>10.4g}  {'(all INT8)':<18}",
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
        return frozenset(TENSORRT_OPS)
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return frozenset(QLinearOpsRegistry) | frozenset(QDQRegistry)


def units(model: onnx.ModelProto, flavour: QuantFlavour) -> list[Unit]:
    """The model's units in graph order: each node the flavour quantizes, with the ReLU/Clip/BN/Add
    that alone read its output folded in (a Conv and its residual Add and ReLU are one unit)."""
    anchors = quantized_op_types(flavour)
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for tensor in node.input:
            readers.setdefault(tensor, []).append(node)
    outputs = {o.name for o in model.graph.output}
    taken: set[str] = set()
    found: list[Unit] = []
    for node in model.graph.node:
        if node.op_type not in anchors or node.name in taken:
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


# --------------------------------------------------------------------------- evaluation


class Evaluator:
    """FP32 reference outputs of the validation samples, and the error of any variant against them."""

    def __init__(self, model: onnx.ModelProto, feeds: Feeds, metric: Metric) -> None:
        self.feeds, self.metric = feeds, metric
        self.reference = self.outputs(model)

    def outputs(self, model: onnx.ModelProto) -> dict[str, np.ndarray]:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
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
        out = self.outputs(model)
        return float(self.metric(out, {k: v[: len(out[k])] for k, v in self.reference.items()}))

    def latency_ms(self, model: onnx.ModelProto, repeats: int = 10) -> float:
        """Median ms of one batch (the first validation chunk) on ONNX Runtime CPU, one thread, after a warm-up."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        first = session.get_inputs()[0].shape[0]
        size = first if isinstance(first, int) and first > 0 else 1
        batch = {k: v[:size] for k, v in self.feeds.items()}
        session.run(None, batch)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            session.run(None, batch)
            times.append((time.perf_counter() - started) * 1e3)
        return float(np.median(times))


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
    means: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    """Per-channel input means from calibration, for bias correction (empty: none)."""

    def closure(self, float_units: Sequence[Unit]) -> list[Unit]:
        """``float_units`` and, on ONNX Runtime CPU, each Conv/Gemm/MatMul unit whose output only float
        units read: with no Q after it, ONNX Runtime cannot fuse it into an integer kernel, and it would run
        in float anyway after dequantizing its weights on every call (slower than FP32, no accuracy gained).
        TensorRT fuses the weight Q/DQ at build time, so its flavour needs none."""
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
            floating = {n for u in chosen for n in u.nodes}
            for unit in self.units:
                if unit in chosen or unit.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
                    continue
                after = readers.get(nodes[unit.nodes[-1]].output[0], set())
                if after and after <= floating:
                    chosen.append(unit)
                    grew = True
        return chosen

    def quantized(self, float_units: Sequence[Unit] = (), only: Unit | None = None) -> onnx.ModelProto:
        """All units INT8 but ``float_units``; or, with ``only``, that unit alone INT8."""
        from trtforge.precision.quantize import quantize, restore_activations

        keep = [u for u in self.units if u is not only] if only is not None else list(float_units)
        nodes = tuple(n for u in keep for n in u.nodes)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "stay in floating point because ... no range": expected here
            quantized = quantize(self.model, self.ranges, self.flavour, nodes)
        if self.means:
            from trtforge.precision.biascorrect import correct_biases

            correct_biases(self.model, quantized, self.means)
        return restore_activations(self.model, quantized) if nodes else quantized


def prepare_int8(model: onnx.ModelProto, calibration: CalibrationConfig, flavour: QuantFlavour) -> Prepared:
    """Calibrate once (or read the matching cache), on the model quantization will edit."""
    from trtforge._files import sha256_bytes
    from trtforge.precision.apply import _int8_ranges
    from trtforge.precision.quantize import ensure_opset, prepare

    started = time.perf_counter()
    sha = sha256_bytes(model.SerializeToString(deterministic=True))  # the model as the user gave it
    model, _ = ensure_opset(model)  # as a plain INT8 build does: per-channel Q/DQ needs opset 13
    prepared = name_nodes(prepare(model))
    means: dict[str, np.ndarray] = {}
    ranges, facts = _int8_ranges(prepared, calibration, sha, None, flavour.activation_symmetric, means)
    means = means if calibration.bias_correction else {}
    seconds = time.perf_counter() - started
    return Prepared(prepared, ranges, facts, flavour, units(prepared, flavour), seconds, means)


def rank(prepared: Prepared, evaluator: Evaluator, metric: str, progress: bool = True) -> SensitivityResult:
    """The error each unit adds alone (one quantize + one validation pass per unit)."""
    started = time.perf_counter()
    all_int8 = evaluator.error(prepared.quantized())
    errors = []
    for i, unit in enumerate(prepared.units, 1):
        errors.append(UnitError(unit, evaluator.error(prepared.quantized(only=unit))))
        if progress and (i % 10 == 0 or i == len(prepared.units)):
            print(f"sensitivity: {i}/{len(prepared.units)} units measured", file=sys.stderr)
    elapsed = time.perf_counter() - started
    return SensitivityResult(
        metric,
        prepared.flavour.name,
        "one unit quantized at a time, the rest float, vs FP32 (ONNX Runtime CPU)",
        len(next(iter(evaluator.feeds.values()))),
        all_int8,
        tuple(errors),
        {
            "calibrate": round(prepared.seconds, 2),
            "units": round(elapsed, 2),
            "per_unit": round(elapsed / max(1, len(prepared.units) + 1), 3),
        },
    )


def sensitivity(
    model: str | Path | onnx.ModelProto,
    calibration: CalibrationConfig,
    validation: str | Path,
    backend: str = "onnxruntime",
    metric: str | Metric = "top1",
    preprocess: Preprocess | None = None,
    val_num: int = 64,
) -> SensitivityResult:
    """Rank ``model``'s INT8 units by the error each adds, measured on ``validation`` (images or .npz).

    ``backend`` picks the Q/DQ flavour (and so the units); ``preprocess`` defaults to the calibration's.
    """
    from trtforge.backends.base import get_backend
    from trtforge.config import BuildConfig, Precision
    from trtforge.graph.model import load

    onnx_model = model if isinstance(model, onnx.ModelProto) else load(model)
    config = BuildConfig(precision=Precision.INT8, backend=backend, calibration=calibration)
    flavour = get_backend(backend).quant_flavour(config)
    metric_name, fn = metric_from(metric)
    feeds = validation_feeds(onnx_model, validation, preprocess or calibration.preprocess, val_num)
    prepared = prepare_int8(onnx_model, _fitted(calibration, onnx_model), flavour)
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
    gain: float
    kept: bool
    with_units: tuple[Unit, ...] = ()
    """Units that went float with it: their only reader is now float, so ONNX Runtime cannot fuse them."""


def search(
    prepared: Prepared, evaluator: Evaluator, ranking: SensitivityResult, budget: float, max_float: int | None = None
) -> tuple[list[Try], float]:
    """Keep the most sensitive units float, one at a time, until the error is within ``budget``.

    A unit whose float version does not lower the error goes back to INT8. Units that add no error
    alone are not tried, and at most ``max_float`` units (default: half of them, so the result is still
    mostly INT8) are kept float. Returns the tries and the final error.
    """
    error, kept, tries = ranking.all_int8, list[Unit](), list[Try]()
    limit = max(1, len(prepared.units) // 2) if max_float is None else max_float
    for candidate in ranking.ranked:
        if error <= budget or candidate.error <= 0 or len(kept) >= limit:
            break
        if candidate.unit in kept:
            continue  # already float, taken along by an earlier unit
        together = prepared.closure([*kept, candidate.unit])
        trial = evaluator.error(prepared.quantized(together))
        gain = error - trial
        tries.append(Try(candidate.unit, trial, gain, gain > 0, tuple(together[len(kept) + 1 :])))
        if gain > 0:
            kept = together
            error = trial
    return tries, error


def apply_budget(
    model: onnx.ModelProto, config: BuildConfig, flavour: QuantFlavour
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """INT8 within ``config.max_accuracy_drop``: the precision stage for a budgeted build.

    Returns the mixed Q/DQ model and the facts by manifest section (``calibration``, ``mixed``).
    Raises :class:`VerificationError` (exit 1) with the table when no tried mix meets the budget.
    """
    assert config.calibration is not None and config.validation is not None and config.max_accuracy_drop is not None
    started = time.perf_counter()
    metric_name, fn = metric_from(config.metric)
    feeds = validation_feeds(model, config.validation, config.calibration.preprocess, config.val_num)
    evaluator = Evaluator(model, feeds, fn)
    prepared = prepare_int8(model, _fitted(config.calibration, model), flavour)
    extra = [n for n in config.exclude_nodes if n not in {x.name for x in prepared.model.graph.node}]
    if extra or config.exclude_op_types:
        raise TrtforgeError(
            "--max-accuracy-drop chooses the float units itself; drop --exclude-nodes/"
            "--exclude-op-types, or build without the budget"
        )
    ranking = rank(prepared, evaluator, metric_name)
    tries, error = search(prepared, evaluator, ranking, config.max_accuracy_drop)
    kept = [u for t in tries if t.kept for u in (t.unit, *t.with_units)]
    mixed_model = prepared.quantized(kept)
    facts = _mixed_facts(prepared, evaluator, ranking, tries, error, config, model, mixed_model)
    facts["seconds"] = round(time.perf_counter() - started, 2)
    print(render_mixed(facts), file=sys.stderr)
    if error > config.max_accuracy_drop:
        print(ranking.table(), file=sys.stderr)
        raise VerificationError(
            f"INT8 misses --max-accuracy-drop {config.max_accuracy_drop:g} ({metric_name}): all-INT8 error "
            f"{ranking.all_int8:.4g}, {error:.4g} with {len(kept)} of {len(tries)} tried unit(s) kept float "
            f"(at most half of the {len(prepared.units)} units are); the ranking is above (raise the budget, "
            "or build FP16/FP32)"
        )
    calibration = {
        **prepared.calibration,
        "flavour": flavour.to_json(),
        "prepared": "onnxruntime basic graph optimizations (constants folded, Conv+BN/Mul/Add fused)",
    }
    from trtforge.precision.apply import io_formats

    mixed_model, formats = io_formats(mixed_model, config)
    return mixed_model, {"calibration": calibration, "mixed": facts, "cast": None, "io_formats": formats}


def _mixed_facts(
    prepared: Prepared,
    evaluator: Evaluator,
    ranking: SensitivityResult,
    tries: list[Try],
    error: float,
    config: BuildConfig,
    fp32: onnx.ModelProto,
    mixed: onnx.ModelProto,
) -> dict[str, Any]:
    all_int8 = prepared.quantized()
    models = {"fp32": fp32, "int8": all_int8, "mixed": mixed}
    return {
        "metric": ranking.metric,
        "budget": config.max_accuracy_drop,
        "scheme": ranking.scheme,
        "validation": str(config.validation),
        "samples": ranking.samples,
        "units": len(prepared.units),
        "kept_float": [
            {
                **t.unit.to_json(),
                "gain": t.gain,
                "error_after": t.error,
                "error_alone": next(e.error for e in ranking.errors if e.unit is t.unit),
                "with": [u.name for u in t.with_units],
            }
            for t in tries
            if t.kept
        ],
        "tried": [{"name": t.unit.name, "error_after": t.error, "gain": t.gain, "kept": t.kept} for t in tries],
        "error": {"fp32": 0.0, "int8": ranking.all_int8, "mixed": error},
        "latency_ms": {k: round(evaluator.latency_ms(m), 4) for k, m in models.items()},
        "latency_measured": "ONNX Runtime CPU, 1 thread, median of 10 runs of one batch, Q/DQ graphs"
        + (
            ": not the TensorRT target, whose speed is not measured here"
            if prepared.flavour.placement == "tensorrt"
            else ""
        ),
        "latency_is_target": prepared.flavour.placement != "tensorrt",
        "onnx_bytes": {k: m.ByteSize() for k, m in models.items()},
        "int8_fraction": round(
            1
            - sum(len(u.nodes) for t in tries if t.kept for u in (t.unit, *t.with_units))
            / max(1, sum(len(u.nodes) for u in prepared.units)),
            4,
        ),
        "ranking_seconds": ranking.seconds,
        "ranking": [
            {"name": e.unit.name, "op_type": e.unit.op_type, "layer": e.unit.layer, "error": e.error}
            for e in sorted(ranking.errors, key=lambda e: e.unit.index)
        ],
        "kept_precision": "fp32",
    }


def render_mixed(facts: Mapping[str, Any]) -> str:
    err, lat, size = facts["error"], facts["latency_ms"], facts["onnx_bytes"]
    lines = [
        f"mixed precision ({facts['metric']}, budget {facts['budget']:g}): "
        f"{sum(1 + len(u['with']) for u in facts['kept_float'])} of {facts['units']} unit(s) kept FP32"
    ]
    for u in facts["kept_float"]:
        lines.append(
            f"  kept float: {u['name']} ({u['op_type']}, layer {u['layer'] or '-'}): "
            f"alone {u['error_alone']:.4g}, gain {u['gain']:.4g}"
            + (f"; with {', '.join(u['with'])} (its reader is float, so unfusable)" if u["with"] else "")
        )
    lines.append(f"  {'':<6} {'error':>10} {'latency ms':>11} {'ONNX KiB':>9}")
    for k in ("fp32", "int8", "mixed"):
        lines.append(f"  {k:<6} {err[k]:>10.4g} {lat[k]:>11.3f} {size[k] / 1024:>9.1f}")
    if not facts["latency_is_target"]:
        lines.append(f"  latency: {facts['latency_measured']}")
    elif facts["kept_float"] and lat["mixed"] > lat["fp32"]:
        lines.append(
            f"  warning: the mixed model is slower than FP32 here ({lat['mixed']:.3f} vs {lat['fp32']:.3f} ms, "
            f"{facts['latency_measured']}): the Q/DQ pairs at the float units' borders cost more than the "
            "INT8 units save; FP32 (or FP16) may be the better build"
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
