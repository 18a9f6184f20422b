"""The INT8 self-check: the Q/DQ model against the FP32 model it came from, on held-back samples.

Every INT8 build runs it (:func:`trtforge.precision.apply.quantize_int8`). Per output and per
sample: the cosine similarity, and the largest error relative to the output's range; where an
output mixes fields (rank 3 or more: boxes next to scores, one map per class), the error is taken
per field along the field axis, each against its own range (floored by :func:`field_floor`, so an
absent class's near-zero scores do not count one INT8 step of noise as failure). An all-zero
answer to a non-zero output has cosine 0: it can never pass.

When an output fails, the suspects are the quantized tensors with the largest local error
(``|fakequant(x) - x| / |x|`` on the FP32 activations, with the scale the model uses) upstream of
it, named by the nodes that read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import onnx

from trtforge.errors import TrtforgeError


@dataclass(frozen=True)
class Thresholds:
    """When an INT8 output counts as faithful to FP32 (every sample must pass both)."""

    min_cosine: float = 0.9
    max_error: float = 0.3
    """Largest |INT8 - FP32| as a fraction of the FP32 output's (or field's) range."""
    max_flip_margin: float = 0.2
    """Class scores (samples x classes): a sample whose top-1 answer changed fails when FP32 preferred
    its own answer to INT8's by more than this fraction of the sample's score range (a confident
    answer flipped; a near-tie may flip)."""


@dataclass(frozen=True)
class OutputCheck:
    name: str
    worst_cosine: float
    mean_cosine: float
    worst_error: float
    worst_sample: int
    field_axis: int | None
    worst_field: int | None
    passed: bool
    top1_agreement: float | None = None
    """Classifier outputs: the share of samples whose top-1 class INT8 kept."""
    worst_flip: float | None = None
    """Classifier outputs: FP32's largest margin (fraction of the sample's score range) for an answer INT8 changed."""


@dataclass
class CheckReport:
    data: str
    samples: int
    held_back: bool
    thresholds: Thresholds
    outputs: list[OutputCheck] = field(default_factory=list)
    suspects: list[dict[str, object]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    def failed(self) -> list[str]:
        return [o.name for o in self.outputs if not o.passed]

    def to_json(self) -> dict[str, object]:
        return {
            "data": self.data,
            "samples": self.samples,
            "held_back": self.held_back,
            "thresholds": asdict(self.thresholds),
            "passed": self.passed,
            "outputs": [asdict(o) for o in self.outputs],
            "suspects": self.suspects,
        }

    def table(self) -> str:
        where = "held-back samples of" if self.held_back else "samples of (also used to calibrate)"
        lines = [
            (
                f"INT8 self-check against FP32 on {self.samples} {where} {self.data} "
                f"(pass: cosine >= {self.thresholds.min_cosine:g}, max error <= "
                f"{self.thresholds.max_error:.0%} of range, every sample)"
            ),
            f"  {'output':<28} {'worst cos':>9} {'mean cos':>9} {'max err':>8}  {'worst at':<22} result",
        ]
        for o in self.outputs:
            at = f"sample {o.worst_sample}" + (
                f", field {o.worst_field} (axis {o.field_axis})" if o.worst_field is not None else ""
            )
            lines.append(
                f"  {o.name[:28]:<28} {o.worst_cosine:9.4f} {o.mean_cosine:9.4f} {o.worst_error:8.1%}  "
                f"{at:<22} {'ok' if o.passed else 'FAIL'}"
            )
            if o.top1_agreement is not None:
                flip = "" if o.worst_flip is None else f"; a changed answer led by {o.worst_flip:.0%} of range in FP32"
                lines.append(
                    f"  {'':<28} top-1 kept on {o.top1_agreement:.0%} of samples{flip} "
                    f"(fails above {self.thresholds.max_flip_margin:.0%})"
                )
        for s in self.suspects:
            lines.append(
                f"  suspect: {s['tensor']} read by {', '.join(map(str, s['nodes']))} "  # type: ignore[call-overload]
                f"(local INT8 error {float(str(s['error'])):.1%}, range {s['range']})"
            )
        return "\n".join(lines)


def field_axis(shape: tuple[int, ...]) -> int | None:
    """The axis along which an output of one sample mixes fields, or None (rank < 3)."""
    if len(shape) < 3:
        return None
    if len(shape) == 3:
        return 1 if shape[1] <= shape[2] else 2  # [N, 84, 8400] or [N, 8400, 84]: the short axis
    return 1  # [N, C, H, W]


def compare_output(name: str, ref: np.ndarray, got: np.ndarray, thresholds: Thresholds) -> OutputCheck:
    """Per-sample cosine and range-relative error of ``got`` against ``ref`` (axis 0 = samples)."""
    ref, got = ref.astype(np.float64), got.astype(np.float64)
    n = ref.shape[0] if ref.ndim else 1
    flat_ref, flat_got = ref.reshape(n, -1), got.reshape(n, -1)
    norms = np.linalg.norm(flat_ref, axis=1) * np.linalg.norm(flat_got, axis=1)
    both_zero = (np.linalg.norm(flat_ref, axis=1) == 0) & (np.linalg.norm(flat_got, axis=1) == 0)
    cos = np.where(norms > 0, np.sum(flat_ref * flat_got, axis=1) / np.where(norms > 0, norms, 1), 0.0)
    cos = np.where(both_zero, 1.0, cos)
    err, axis, fields_at = range_errors(ref, got)
    worst_field = None if axis is None else int(fields_at[int(np.argmax(err))])
    worst = int(np.argmax(err)) if thresholds.max_error < float(np.max(err)) else int(np.argmin(cos))
    passed = bool(np.min(cos) >= thresholds.min_cosine and np.max(err) <= thresholds.max_error)
    kept, flip = top1_flips(ref, got)
    if flip is not None and flip > thresholds.max_flip_margin:
        passed = False
    return OutputCheck(
        name,
        round(float(np.min(cos)), 5),
        round(float(np.mean(cos)), 5),
        round(float(np.max(err)), 5),
        worst,
        axis if worst_field is not None else None,
        worst_field,
        passed,
        None if kept is None else round(kept, 5),
        None if flip is None else round(flip, 5),
    )


def top1_flips(ref: np.ndarray, got: np.ndarray) -> tuple[float | None, float | None]:
    """For class scores: the share of samples whose top-1 class ``got`` kept, and, over the samples
    where it changed, FP32's largest lead of its own answer over ``got``'s, as a fraction of that
    sample's FP32 score range (None where nothing changed). (None, None) for other outputs."""
    from trtforge.data.arrays import is_classifier

    if ref.ndim < 2 or not is_classifier(ref):
        return None, None
    flat_ref, flat_got = ref.reshape(ref.shape[0], -1), got.reshape(got.shape[0], -1)
    want, have = flat_ref.argmax(axis=1), flat_got.argmax(axis=1)
    changed = np.flatnonzero(want != have)
    if changed.size == 0:
        return 1.0, None
    rows = flat_ref[changed]
    lead = rows[np.arange(changed.size), want[changed]] - rows[np.arange(changed.size), have[changed]]
    spans = np.ptp(rows, axis=1)
    margins = np.where(spans > 0, lead / np.where(spans > 0, spans, 1.0), 0.0)
    return 1.0 - changed.size / len(want), float(np.max(margins))


def range_errors(ref: np.ndarray, got: np.ndarray) -> tuple[np.ndarray, int | None, np.ndarray]:
    """Per sample (axis 0): the largest ``|got - ref|`` over the reference's range, per field where
    the output mixes fields. Returns the errors, the field axis (or None) and each sample's worst field."""
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    n = ref.shape[0]
    axis = field_axis(ref.shape)
    if axis is None or ref.shape[axis] < 2:
        return np.abs(got - ref).reshape(n, -1).max(axis=1) / _span(ref), None, np.zeros(n, np.int64)
    moved_ref, moved_got = np.moveaxis(ref, axis, 1), np.moveaxis(got, axis, 1)
    fields = moved_ref.shape[1]
    per_ref = moved_ref.reshape(n, fields, -1)
    per_err = np.abs(moved_got.reshape(n, fields, -1) - per_ref).max(axis=2)  # [n, fields]
    spans = np.array([_span(per_ref[:, f]) for f in range(fields)])
    spans = np.maximum(spans, field_floor(spans))
    rel = per_err / spans
    return rel.max(axis=1), axis, rel.argmax(axis=1)


def field_floor(spans: np.ndarray) -> float:
    """The smallest range a field's error is measured against: 5% of the widest field among the
    small ones (those under a tenth of the widest). Boxes in 0..320 next to class scores in 0..1:
    scores are the small family; a class absent from the samples (scores ~0.004, one INT8 step)
    is measured against 5% of the present class's range, not against its own near-zero range."""
    small = spans[spans < 0.1 * spans.max()]
    return 0.05 * float(small.max() if small.size else spans.max())


def _span(values: np.ndarray) -> float:
    span = float(np.max(values) - np.min(values)) if values.size else 0.0
    if span > 0:
        return span
    peak = float(np.max(np.abs(values))) if values.size else 0.0
    return peak if peak > 0 else 1.0


def run(
    model: onnx.ModelProto, feeds: dict[str, np.ndarray], outputs: list[str] | None = None, fuse_qdq: bool = True
) -> dict[str, np.ndarray]:
    """``model`` on ONNX Runtime CPU over ``feeds`` (in groups of a static batch, if it has one).

    ``fuse_qdq=False`` runs Q/DQ nodes as written (DequantizeLinear, the float op, QuantizeLinear)
    instead of ONNX Runtime's fused integer kernels: the Q/DQ arithmetic another backend
    (OpenVINO, TensorRT) implements, and no refusal from a fused kernel that backend never runs."""
    import onnxruntime as ort

    from trtforge.data.samples import output_axis, sample_count, take
    from trtforge.graph.batch import batch_axes
    from trtforge.graph.model import graph_inputs
    from trtforge.precision.calibrate import _static_batch

    options = ort.SessionOptions()
    options.log_severity_level = 4  # a failing kernel is reported by the caller, in one line
    if not fuse_qdq:
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = outputs or [o.name for o in session.get_outputs()]
    axes = batch_axes(graph_inputs(model))  # a state's samples on axis 1; a scalar is fed whole
    total = sample_count(feeds, axes)
    step = _static_batch(model) or total
    pad = -total % step  # a static batch runs whole groups: the last one is filled with its last sample
    if pad:
        feeds = {k: _repeat_last(v, axes.get(k, 0), pad) for k, v in feeds.items()}
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for start in range(0, total + pad, step):
        got = session.run(
            names,
            {k: take(v, axes.get(k, 0) if v.ndim else None, slice(start, start + step)) for k, v in feeds.items()},
        )
        for name, value in zip(names, got):
            parts[name].append(np.asarray(value))
    joined = {}
    for name, v in parts.items():
        axis = output_axis(v[0], step) if v[0].ndim else None
        value = v[0] if axis is None or len(v) == 1 else np.concatenate(v, axis=axis)
        joined[name] = value if axis is None or not pad else np.take(value, np.arange(total), axis=axis)
    return joined


def _repeat_last(array: np.ndarray, axis: int | None, count: int) -> np.ndarray:
    """``array`` with its last sample along ``axis`` repeated ``count`` more times (as is without a batch axis)."""
    if axis is None or not array.ndim:
        return array
    last = np.take(array, [-1], axis=axis)
    return np.concatenate([array, *([last] * count)], axis=axis)


def self_check(
    reference: onnx.ModelProto,
    quantized: onnx.ModelProto,
    feeds: dict[str, np.ndarray],
    data: str,
    held_back: bool,
    thresholds: Thresholds = Thresholds(),
    fuse_qdq: bool = True,
) -> CheckReport:
    """Compare ``quantized`` with its FP32 ``reference`` on ``feeds``; suspects when an output fails.

    ``fuse_qdq``: run the INT8 model with ONNX Runtime's fused integer kernels (what an onnxruntime
    engine runs) or as written (see :func:`run`), for the Q/DQ flavours of other backends."""
    ref = run(reference, feeds)
    try:
        got = run(quantized, feeds, fuse_qdq=fuse_qdq)
    except Exception as exc:
        if not type(exc).__module__.startswith("onnxruntime"):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split("Status Message:")[-1].strip()
        raise TrtforgeError(
            f"ONNX Runtime cannot run the INT8 model it would build ({first[:200]}); calibrate with "
            "other data or --calib-method, or keep the failing node float with --exclude-nodes"
        ) from None
    samples = len(next(iter(feeds.values())))
    report = CheckReport(data, samples, held_back, thresholds)
    report.outputs = [compare_output(name, ref[name], got[name], thresholds) for name in ref]
    if not report.passed:
        report.suspects = suspects(reference, quantized, feeds, report.failed())
    return report


def suspects(
    reference: onnx.ModelProto,
    quantized: onnx.ModelProto,
    feeds: dict[str, np.ndarray],
    outputs: list[str],
    top: int = 3,
) -> list[dict[str, object]]:
    """The quantized activations upstream of ``outputs`` that lose the most on their own."""
    from onnx import numpy_helper

    consts = {i.name: numpy_helper.to_array(i) for i in quantized.graph.initializer}
    readers: dict[str, list[str]] = {}
    for node in quantized.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node.name)
    known = {t for n in reference.graph.node for t in n.output} | {i.name for i in reference.graph.input}
    upstream = _ancestors(reference, outputs)
    pairs = []  # (tensor, scale, zero point, qtype, readers of the DQ)
    for q in (n for n in quantized.graph.node if n.op_type == "QuantizeLinear"):
        x = q.input[0]
        if x not in known or x not in upstream or q.input[1] not in consts:
            continue
        zero = consts[q.input[2]] if len(q.input) > 2 and q.input[2] in consts else np.uint8(0)
        dqs = [d for d in quantized.graph.node if d.op_type == "DequantizeLinear" and d.input[0] == q.output[0]]
        users = sorted({r for d in dqs for r in readers.get(d.output[0], [])})
        pairs.append((x, consts[q.input[1]], zero, users))
    if not pairs:
        return []
    probe = _with_outputs(reference, sorted({p[0] for p in pairs}))
    values = run(probe, feeds, sorted({p[0] for p in pairs}))
    scored = []
    for x, scale, zero, users in pairs:
        value = values[x].astype(np.float64)
        info = np.iinfo(zero.dtype)
        fake = (np.clip(np.rint(value / scale) + zero.astype(np.int64), info.min, info.max) - zero) * scale
        error = float(np.linalg.norm(fake - value) / max(float(np.linalg.norm(value)), 1e-12))
        span = (round(float((info.min - int(zero)) * scale), 5), round(float((info.max - int(zero)) * scale), 5))
        scored.append({"tensor": x, "nodes": users, "error": round(error, 5), "range": list(span)})
    scored.sort(key=lambda s: -float(str(s["error"])))
    return scored[:top]


def _ancestors(model: onnx.ModelProto, outputs: list[str]) -> set[str]:
    producer = {out: node for node in model.graph.node for out in node.output}
    seen: set[str] = set()
    stack = list(outputs)
    while stack:
        tensor = stack.pop()
        if tensor in seen:
            continue
        seen.add(tensor)
        node = producer.get(tensor)
        if node is not None:
            stack.extend(node.input)
    return seen


def _with_outputs(model: onnx.ModelProto, tensors: list[str]) -> onnx.ModelProto:
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    present = {o.name for o in probe.graph.output}
    probe.graph.output.extend(
        onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in tensors if t not in present
    )
    return probe


def failure_message(report: CheckReport) -> str:
    """One line for the CLI: which outputs, how far off, which nodes to suspect, what to do."""
    worst = [o for o in report.outputs if not o.passed]
    said = "; ".join(f"{o.name} ({_why(o)})" for o in worst)
    nodes = sorted({str(n) for s in report.suspects for n in s["nodes"]})  # type: ignore[attr-defined]
    hint = f"; suspected nodes: {', '.join(nodes[:6])} (try --exclude-nodes {','.join(nodes[:3])})" if nodes else ""
    return (
        f"the INT8 model is far from FP32 on {report.samples} samples of {report.data}: {said}{hint}; "
        "pass --allow-inaccurate to keep it anyway"
    )


def _why(o: OutputCheck) -> str:
    said = f"worst cosine {o.worst_cosine:.3f}, max error {o.worst_error:.0%} of range"
    if o.worst_flip is not None and o.top1_agreement is not None:
        said += f", top-1 changed on {1 - o.top1_agreement:.0%} of samples, once where FP32 led by {o.worst_flip:.0%}"
    return said


class Holdout:
    """The first samples of a calibration stream, kept for the self-check.

    One sample in five, at most ``most``, is held back; with fewer than five samples (or none left
    after holding back) the checked samples also calibrate, and the report says so.
    """

    def __init__(self, most: int = 16, axes: Mapping[str, int | None] | None = None) -> None:
        self.most = most
        self.axes = dict(axes or {})
        """Each input's batch axis (absent: 0; None: a scalar, the same for every sample)."""
        self.held: dict[str, list[np.ndarray]] = {}
        self.held_back = True

    def _axis(self, name: str, array: np.ndarray) -> int | None:
        return self.axes.get(name, 0) if np.ndim(array) else None

    def _cut(self, name: str, array: np.ndarray, part: slice) -> np.ndarray:
        axis = self._axis(name, array)
        if axis is None:
            return np.asarray(array)
        where: list[slice] = [slice(None)] * np.ndim(array)
        where[axis] = part
        return np.asarray(array)[tuple(where)]

    def split(self, batches: Any, total: int | None) -> Any:
        wanted = self.most if total is None else min(self.most, total // 5)
        self.held_back = wanted > 0
        wanted = wanted or min(self.most, total or 0)
        taken, yielded = 0, False
        for batch in batches:
            size = next((np.shape(v)[a] for k, v in batch.items() if (a := self._axis(k, v)) is not None), 1)
            take = min(size, wanted - taken)
            if take > 0:
                for name, array in batch.items():
                    self.held.setdefault(name, []).append(self._cut(name, array, slice(0, take)))
                taken += take
            if not self.held_back:
                yielded = True
                yield batch
            elif take < size:
                yielded = True
                yield {k: self._cut(k, v, slice(take, None)) for k, v in batch.items()}
        if not yielded and self.held:
            self.held_back = False
            yield self.feeds()

    def count(self) -> int:
        for name, parts in self.held.items():
            axis = self._axis(name, parts[0])
            if axis is not None:
                return sum(int(np.shape(p)[axis]) for p in parts)
        return 0

    def feeds(self) -> dict[str, np.ndarray] | None:
        if not self.held:
            return None
        return {
            k: v[0] if self._axis(k, v[0]) is None else np.concatenate(v, axis=self._axis(k, v[0]))
            for k, v in self.held.items()
        }


def verify(
    reference: onnx.ModelProto,
    quantized: onnx.ModelProto,
    feeds: dict[str, np.ndarray] | None,
    data: str,
    held: bool,
    allow_inaccurate: bool,
    thresholds: Thresholds = Thresholds(),
    fuse_qdq: bool = True,
) -> dict[str, object]:
    """Run :func:`self_check`, print its table on stderr, and refuse a far-off model unless allowed.

    Returns the manifest's record. Raises :class:`~trtforge.errors.VerificationError` (exit 1).
    """
    import sys

    from trtforge.errors import VerificationError

    if feeds is None:
        print(
            "warning: the INT8 model was NOT checked against FP32: no calibration data to check on "
            "(ranges came from --calib-cache); add --calib-data to check it",
            file=sys.stderr,
        )
        return {"checked": False, "reason": "no data: ranges from a calibration cache"}
    report = self_check(reference, quantized, feeds, data, held, thresholds, fuse_qdq)
    print(report.table(), file=sys.stderr)
    if not report.passed:
        if not allow_inaccurate:
            raise VerificationError(failure_message(report))
        print(
            f"WARNING: keeping an INT8 model far from FP32 (--allow-inaccurate): {', '.join(report.failed())}",
            file=sys.stderr,
        )
    return {"checked": True, "allowed_inaccurate": allow_inaccurate and not report.passed, **report.to_json()}
