"""Accuracy of one runner against another: the same inputs to both, errors per output.

Per output (matched by name, or by position when the names differ):

* max / mean absolute error ``|a - b|``; max / mean relative error ``|a - b| / max(|b|, tiny)``;
* cosine similarity per sample (``min`` and ``mean`` over samples);
* for classifier-shaped outputs (samples x classes): top-1 agreement, and with labels the
  top-1 accuracy of each side.

Thresholds (:class:`Thresholds`) fail an output when any element has
``|a - b| > atol + rtol * |b|`` (numpy's ``allclose``), when a sample's cosine is below
``min_cosine``, or when a sample's largest error is above ``max_range_error`` of the reference's
range (per field where the output mixes fields).  Without thresholds, :meth:`Thresholds.default`
applies (cosine >= 0.9, error <= 30% of range): an all-zero answer never passes.  ``deploy`` uses
:func:`run_all` and :func:`accuracy` from here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from trtforge.errors import TrtforgeError

if TYPE_CHECKING:
    from trtforge.backends.base import Runner
    from trtforge.config import TensorSpec
    from trtforge.converters import ConvertOptions
    from trtforge.data.preprocess import Preprocess

TINY = 1e-12
# compare's thresholds when none are given (the INT8 self-check's defaults)
DEFAULT_MIN_COSINE = 0.9
DEFAULT_MAX_RANGE_ERROR = 0.3


# --------------------------------------------------------------------------- shared with deploy


def _as_float(outputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(v, dtype=np.float64) for v in outputs.values()]


def run_all(runner: Runner, samples: Sequence[Mapping[str, np.ndarray]]) -> list[list[np.ndarray]]:
    """Run every sample; feeds are checked against the engine's inputs and cast to their dtypes
    (an fp16 IO engine takes fp16)."""
    from trtforge.data.arrays import conform

    specs = runner.inputs  # type: ignore[attr-defined]
    return [
        _as_float(runner.infer(conform(feeds, specs, "validation sample")))  # type: ignore[attr-defined]
        for feeds in samples
    ]


AGREE_COSINE = 0.999
"""A sample of a non-class output (boxes, masks, landmarks, embeddings) agrees with the reference
when its cosine reaches this; both all zero agrees too."""

METRICS = ("auto", "top1", "cosine")
"""How deploy's agreement is measured: ``auto`` picks per output (top-1 for class scores, cosine
for the rest), ``top1`` is argmax of the first output, ``cosine`` is cosine for every output."""


def output_kind(output: np.ndarray) -> str:
    """'classification' for class scores (samples x classes), else 'regression'."""
    from trtforge.data.arrays import is_classifier

    return "classification" if is_classifier(output) else "regression"


def _sample_agreement(outs: list[np.ndarray], refs: list[np.ndarray], kind: str) -> float:
    if kind == "classification":
        a = np.concatenate([o.reshape(o.shape[0], -1) for o in outs])
        b = np.concatenate([r.reshape(r.shape[0], -1) for r in refs])
        return float(np.mean(a.argmax(1) == b.argmax(1)))
    agree: list[bool] = []
    for o, r in zip(outs, refs):
        a, b = o.ravel(), r.ravel()
        na, nb = np.linalg.norm(a), np.linalg.norm(b)
        agree.append(bool(na == nb == 0 or (na > 0 and nb > 0 and float(a @ b / (na * nb)) >= AGREE_COSINE)))
    return float(np.mean(agree))


def accuracy(
    outputs: list[list[np.ndarray]],
    reference: list[list[np.ndarray]],
    labels: list[int] | None,
    names: Sequence[str] = (),
    metric: str = "auto",
) -> dict[str, float | None]:
    """Errors against the reference over all outputs, and agreement by ``metric`` (see :data:`METRICS`).

    ``agreement`` is the worst output's; ``agreement[NAME]`` each output's (top-1 for class scores,
    share of samples with cosine >= :data:`AGREE_COSINE` for the rest).  ``top1_agreement`` and,
    with labels, ``top1_accuracy`` are for the first output when it holds class scores.
    """
    if metric not in METRICS:
        raise TrtforgeError(f"--metric {metric!r}: expected one of {', '.join(METRICS)}")
    diffs = [np.abs(o - r) for out, ref in zip(outputs, reference) for o, r in zip(out, ref)]
    first = np.concatenate([out[0].reshape(out[0].shape[0], -1) for out in outputs])
    first_ref = np.concatenate([ref[0].reshape(ref[0].shape[0], -1) for ref in reference])
    a, b = first.ravel(), first_ref.ravel()
    cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))) if a.any() and b.any() else None
    result: dict[str, float | None] = {
        "max_abs_error": float(max(d.max() for d in diffs)) if diffs else 0.0,
        "mean_abs_error": float(np.mean([d.mean() for d in diffs])) if diffs else 0.0,
        "cosine": cosine,
        "top1_agreement": None,
        "top1_accuracy": None,
    }
    if first.shape[1] > 1 and (metric == "top1" or output_kind(outputs[0][0]) == "classification"):
        predicted = first.argmax(axis=1)
        result["top1_agreement"] = float(np.mean(predicted == first_ref.argmax(axis=1)))
        if labels is not None:
            result["top1_accuracy"] = float(np.mean(predicted == np.asarray(labels)))
    count = len(outputs[0]) if outputs else 0
    per = {}
    for i in range(count if metric != "top1" else 0):
        kind = "regression" if metric == "cosine" else output_kind(outputs[0][i])
        name = names[i] if i < len(names) else f"output{i}"
        per[f"agreement[{name}]"] = _sample_agreement([o[i] for o in outputs], [r[i] for r in reference], kind)
    result["agreement"] = result["top1_agreement"] if metric == "top1" else min(per.values(), default=None)
    result.update(per)
    return result


# --------------------------------------------------------------------------- compare


@dataclass(frozen=True)
class Thresholds:
    atol: float | None = None
    rtol: float | None = None
    min_cosine: float | None = None
    max_range_error: float | None = None
    """Largest |a - b| as a fraction of the reference's range, per sample and per field where an
    output mixes fields (:func:`trtforge.precision.check.range_errors`)."""

    @classmethod
    def default(cls) -> Thresholds:
        """What ``compare`` checks when given no thresholds: an all-zero or wiped-out answer never passes."""
        return cls(min_cosine=DEFAULT_MIN_COSINE, max_range_error=DEFAULT_MAX_RANGE_ERROR)

    def __post_init__(self) -> None:
        for name in ("atol", "rtol"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise TrtforgeError(f"--{name} must not be negative, got {value}")
        if self.min_cosine is not None and not -1.0 <= self.min_cosine <= 1.0:
            raise TrtforgeError(f"--min-cosine must be within [-1, 1], got {self.min_cosine}")

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.atol, self.rtol, self.min_cosine, self.max_range_error))


@dataclass(frozen=True)
class OutputMetrics:
    name: str
    reference_name: str
    shape: tuple[int, ...]
    max_abs_error: float
    mean_abs_error: float
    max_rel_error: float
    mean_rel_error: float
    min_cosine: float | None
    mean_cosine: float | None
    top1_agreement: float | None = None
    top1_accuracy: float | None = None
    reference_top1_accuracy: float | None = None
    not_close: int = 0
    """Elements with ``|a - b| > atol + rtol * |b|`` (0 when no atol/rtol was given)."""
    failures: tuple[str, ...] = ()
    max_range_error: float | None = None
    zero: str = ""
    """Which side is all zero ("engine", "reference", "both"), where the cosine cannot say much."""

    def cosine_text(self) -> str:
        text = f"{_fmt(self.min_cosine, '.6f')} / {_fmt(self.mean_cosine, '.6f')}"
        return f"{text} ({self.zero} all zero)" if self.zero else text


def _zero_side(a: np.ndarray, b: np.ndarray) -> str:
    za, zb = not a.any(), not b.any()
    return "both" if za and zb else "engine" if za else "reference" if zb else ""


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    a2, b2 = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    na, nb = np.linalg.norm(a2, axis=1), np.linalg.norm(b2, axis=1)
    both = (na > 0) & (nb > 0)
    if not both.any() and not ((na > 0) != (nb > 0)).any():
        return None
    cos = np.einsum("ij,ij->i", a2[both], b2[both]) / (na[both] * nb[both])
    # A sample that is zero on one side only is as far apart as it can be.
    return np.concatenate([cos, -np.ones(int(((na > 0) != (nb > 0)).sum()))])


def output_metrics(
    name: str, ref_name: str, a: np.ndarray, b: np.ndarray, thresholds: Thresholds, labels: np.ndarray | None = None
) -> OutputMetrics:
    from trtforge.data.arrays import is_classifier

    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a64.shape != b64.shape:
        raise TrtforgeError(
            f"output {name!r} has shape {'x'.join(map(str, a64.shape))}, but the reference's "
            f"{ref_name!r} has {'x'.join(map(str, b64.shape))}: they cannot be compared"
        )
    diff = np.abs(a64 - b64)
    rel = diff / np.maximum(np.abs(b64), TINY)
    cos = _cosines(a64, b64) if a64.ndim else None
    top1 = acc = ref_acc = None
    if is_classifier(a64):
        pa = a64.reshape(a64.shape[0], -1).argmax(1)
        pb = b64.reshape(b64.shape[0], -1).argmax(1)
        top1 = float(np.mean(pa == pb))
        if labels is not None:
            acc, ref_acc = float(np.mean(pa == labels)), float(np.mean(pb == labels))
    failures = []
    not_close = 0
    if thresholds.atol is not None or thresholds.rtol is not None:
        atol, rtol = thresholds.atol or 0.0, thresholds.rtol or 0.0
        bad = diff > atol + rtol * np.abs(b64)
        not_close = int(bad.sum())
        if not_close:
            worst = np.unravel_index(int(np.argmax(diff - (atol + rtol * np.abs(b64)))), diff.shape)
            failures.append(
                f"{not_close} of {diff.size} values beyond atol={atol:g} + rtol={rtol:g}*|ref| "
                f"(worst at {list(map(int, worst))}: {a64[worst]:.6g} vs {b64[worst]:.6g})"
            )
    if thresholds.min_cosine is not None and cos is not None and cos.min() < thresholds.min_cosine:
        failures.append(f"cosine {cos.min():.6f} on its worst sample is below --min-cosine {thresholds.min_cosine:g}")
    range_error = None
    if thresholds.max_range_error is not None and a64.ndim and a64.size:
        from trtforge.precision.check import range_errors

        errors, axis, fields = range_errors(b64, a64)
        range_error = float(errors.max())
        if range_error > thresholds.max_range_error:
            sample = int(errors.argmax())
            where = f"sample {sample}" + (
                f", field {int(fields[sample])} along axis {axis}" if axis is not None else ""
            )
            failures.append(
                f"max error {range_error:.1%} of the reference's range ({where}) is above "
                f"--max-range-error {thresholds.max_range_error:g}"
            )
    return OutputMetrics(
        name,
        ref_name,
        tuple(a64.shape),
        float(diff.max()) if diff.size else 0.0,
        float(diff.mean()) if diff.size else 0.0,
        float(rel.max()) if rel.size else 0.0,
        float(rel.mean()) if rel.size else 0.0,
        float(cos.min()) if cos is not None else None,
        float(cos.mean()) if cos is not None else None,
        top1,
        acc,
        ref_acc,
        not_close,
        tuple(failures),
        range_error,
        _zero_side(a64, b64),
    )


@dataclass
class CompareResult:
    engine: str
    reference: str
    samples: int
    source: str
    outputs: list[OutputMetrics]
    thresholds: Thresholds
    labels_source: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(o.failures for o in self.outputs)

    def to_json(self) -> dict[str, object]:
        return {
            "engine": self.engine,
            "reference": self.reference,
            "samples": self.samples,
            "inputs": self.source,
            "labels": self.labels_source,
            "thresholds": asdict(self.thresholds),
            "passed": self.passed,
            "outputs": [asdict(o) for o in self.outputs],
            "notes": self.notes,
        }


def _pair_outputs(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], notes: list[str]) -> list[tuple[str, str]]:
    if set(a) == set(b):
        return [(n, n) for n in a]
    if len(a) != len(b):
        raise TrtforgeError(
            f"the engine has outputs {', '.join(a)} and the reference {', '.join(b)}: "
            "neither the names nor the counts match"
        )
    notes.append("output names differ; compared by position: " + ", ".join(f"{x} ~ {y}" for x, y in zip(a, b)))
    return list(zip(a, b))


def _fit_reference(
    feeds: Mapping[str, np.ndarray], specs: Sequence[TensorSpec], notes: list[str]
) -> dict[str, np.ndarray]:
    """The engine's inputs checked against the reference's; a layout mismatch gets its fix named."""
    from trtforge.data.arrays import conform

    for spec in specs:
        array = feeds.get(spec.name)
        shape = spec.shape
        if array is None or array.ndim != 4 or len(shape) != 4:
            continue
        fixed = [(axis, d) for axis, d in enumerate(shape) if axis and isinstance(d, int) and d > 0]
        if any(array.shape[a] != d for a, d in fixed) and all(array.shape[(0, 2, 3, 1)[a]] == d for a, d in fixed):
            raise TrtforgeError(
                f"the reference takes {spec.name!r} as NHWC ({'x'.join(map(str, shape))}) and the engine as NCHW "
                f"({'x'.join(map(str, array.shape))}); pass --inputs-as-nchw {spec.name}, as to trtforge convert"
            )
    return conform(feeds, specs, "the reference's inputs", notes, samples=True)


def compare(
    engine: str | os.PathLike[str],
    reference: str | os.PathLike[str],
    inputs: str | os.PathLike[str] | None = None,
    preprocess: Preprocess | None = None,
    *,
    random: int | None = None,
    labels: str | None = None,
    thresholds: Thresholds | None = None,
    limit: int | None = None,
    seed: int = 0,
    source_options: ConvertOptions | None = None,
    source_format: str | None = None,
) -> CompareResult:
    """Run ``engine`` and ``reference`` on the same inputs.

    ``reference``: another engine, an ONNX model (run in FP32 by ONNX Runtime), or the source
    model (SavedModel, Keras...) run by its framework; ``source_options`` (a ConvertOptions,
    e.g. ``inputs_as_nchw``) say how the engine's ONNX was converted from it.
    """
    from trtforge.run import load_samples, open_runner, run_samples

    thresholds = thresholds or Thresholds.default()
    runner, described = open_runner(engine)
    ref_runner, ref_described = open_runner(reference, source_options, source_format)
    notes: list[str] = []
    samples = load_samples(inputs, runner.inputs, preprocess, random, labels, limit, seed, notes)  # type: ignore[attr-defined]
    ref_names = [s.name for s in ref_runner.inputs]  # type: ignore[attr-defined]
    if len(ref_names) == len(samples.feeds) and set(ref_names) != set(samples.feeds):
        from trtforge.graph.model import resolve_input_name

        try:
            ref_feeds = {resolve_input_name(k, ref_names): v for k, v in samples.feeds.items()}
        except TrtforgeError:
            ref_feeds = dict(zip(ref_names, samples.feeds.values()))
            notes.append(
                "input names differ; fed by position: "
                + ", ".join(f"{x} -> {y}" for x, y in zip(samples.feeds, ref_names))
            )
    else:
        ref_feeds = samples.feeds
    ref_feeds = _fit_reference(ref_feeds, ref_runner.inputs, notes)  # type: ignore[attr-defined]
    out_a = run_samples(runner, samples.feeds)
    out_b = run_samples(ref_runner, ref_feeds)
    metrics = [
        output_metrics(x, y, out_a[x], out_b[y], thresholds, samples.labels)
        for x, y in _pair_outputs(out_a, out_b, notes)
    ]
    return CompareResult(
        described, ref_described, len(samples), samples.source, metrics, thresholds, samples.labels_source, notes
    )


def _fmt(value: float | None, pattern: str = ".4g") -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, pattern)


def render(result: CompareResult) -> str:
    lines = [
        f"engine:    {result.engine}",
        f"reference: {result.reference}",
        f"inputs:    {result.source} ({result.samples} samples)",
    ]
    if result.labels_source:
        lines.append(f"labels:    {result.labels_source}")
    # Top-1 columns only where some output holds class scores (not for boxes, masks, landmarks).
    classes = any(o.top1_agreement is not None for o in result.outputs)
    head = ["output", "shape", "max abs", "mean abs", "max rel", "mean rel", "cosine (min / mean)"]
    head += ["top-1 agree", "top-1 acc (engine / ref)"] if classes else []
    lines += ["", "| " + " | ".join(head + ["pass"]) + " |", "|" + "---|" * (len(head) + 1)]
    for o in result.outputs:
        name = o.name if o.name == o.reference_name else f"{o.name} ~ {o.reference_name}"
        acc = "n/a" if o.top1_accuracy is None else f"{o.top1_accuracy:.2%} / {o.reference_top1_accuracy:.2%}"
        verdict = "–" if not result.thresholds.any else ("no" if o.failures else "yes")
        cells = [
            name,
            "x".join(map(str, o.shape)),
            _fmt(o.max_abs_error),
            _fmt(o.mean_abs_error),
            _fmt(o.max_rel_error),
            _fmt(o.mean_rel_error),
            o.cosine_text(),
        ]
        cells += [_fmt(o.top1_agreement, ".2%"), acc] if classes else []
        lines.append("| " + " | ".join(cells + [verdict]) + " |")
    for o in result.outputs:
        lines += [f"FAIL {o.name}: {f}" for f in o.failures]
    lines += [f"note: {n}" for n in result.notes]
    if result.thresholds.any:
        lines.append("PASSED" if result.passed else "FAILED")
    return "\n".join(lines)
