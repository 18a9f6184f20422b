"""Channel equalisation before INT8: one per-tensor activation scale that fits every channel.

A depthwise Conv reads each input channel alone, with its own (per-channel quantized) weights. Its
input is quantized per tensor, so a channel whose values stay small next to its neighbours keeps
few integer levels, and its depthwise weights multiply that rounding error (MediaPipe's hand
landmarker: 15% of the channels its depthwise Convs read stay below a quarter of the ReLU6 range, and
they carry 42% of the depthwise weights' L2 norm, median 5.9 against 1.7 for the rest).
This pass scales such a channel up where it is made and down where it is read:

    producer Conv -> [Relu | LeakyRelu | PRelu | Clip(0, hi) | zero Pad]* -> depthwise Conv

channel c of the producer's weights and bias times ``s_c``, the depthwise weights of channel c
divided by ``s_c``. Both sides are quantized per output channel, so their weight grids lose
nothing; the tensor between them now spans one range in every channel. Positive scaling commutes
with every op in the chain except the upper bound of a Clip (ReLU6): there ``s_c`` is chosen so the
channel's largest calibrated value times :data:`CLIP_MARGIN` still lies below ``hi / s_c``, so the
bound changes nothing on data that goes up to that many times the calibration data's largest value
in the channel (recorded per pair as ``headroom``); a channel that stayed below ``hi /``
:data:`CLIP_FLOOR` (nearly dead: its largest value is a poor estimate) is scaled as if it reached
that, so its headroom is larger. Under a Clip the tensor's INT8 range is the Clip's, whatever the
data, so every channel below ``hi / 2`` is scaled; without one, a pair is only equalised when its
channels spread more than :data:`MIN_SPREAD` (the range follows the data and already fits them).
The scales are chosen on the calibration samples the self-check does not hold back; the equalised
model is then run against the model before the pass on the held-back ones and refused (the pass does
nothing, with a warning) unless every output matches to :data:`TOLERANCE` of its range.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import numpy_helper

if TYPE_CHECKING:
    from trtforge.config import CalibrationConfig

CLIP_MARGIN = 2.0
"""A Clip-bounded channel is scaled up to at most ``hi / CLIP_MARGIN`` over its calibrated maximum."""
MIN_SPREAD = 8.0
"""A pair without a Clip is equalised only when its median channel's largest value is below 1/MIN_SPREAD of the
largest channel's (fewer than 32 of 255 levels): fer's and PP-OCR cls's Relu pairs (spread 1.3-4) equalised
moved top-1 within noise and flipped a held-back answer the self-check fails on, so they are left alone."""
CLIP_FLOOR = 32.0
"""A Clip-bounded channel is scaled as if its calibrated maximum were at least ``hi / CLIP_FLOOR`` (on the hand
landmarker's 296 held-out crops, only channels below ``hi / 64`` went past twice their calibrated maximum,
up to 3x)."""
MAX_SCALE = 128.0
"""The largest factor one channel is scaled by (a channel near zero on every sample stays as it is)."""
TOLERANCE = 1e-4
"""The equalised model's outputs must match the original's within this fraction of each output's range."""
STATS_SAMPLES = 256
"""Calibration samples the per-channel maxima are measured on (at most)."""

NO_PAIRS = "no producer Conv -> depthwise Conv pair to equalise"
_PASS_THROUGH = frozenset({"Relu", "LeakyRelu", "PRelu", "Clip", "Pad"})


@dataclasses.dataclass(frozen=True)
class Pair:
    """A producer Conv and the depthwise Conv that reads its output through ``via`` (node names)."""

    producer: str
    depthwise: str
    via: tuple[str, ...]
    tensor: str
    """The depthwise Conv's input: the tensor whose channels are equalised."""
    clip: float | None
    """The upper bound of a Clip in ``via``, if any (the only op that limits the scale)."""


def find_pairs(model: onnx.ModelProto) -> list[Pair]:
    """Every producer Conv -> pass-through chain -> depthwise Conv where each tensor on the way has one
    reader, is no graph output, and the weights (and biases) are initializers no other node reads."""
    graph = model.graph
    producer = {t: n for n in graph.node for t in n.output}
    readers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    outputs = {o.name for o in graph.output}
    inits = {t.name: t for t in graph.initializer}

    def private(name: str) -> bool:  # an initializer only this node reads
        return name in inits and readers.get(name, 0) == 1 and inits[name].data_type == onnx.TensorProto.FLOAT

    def single(name: str) -> bool:
        return readers.get(name, 0) == 1 and name not in outputs

    pairs = []
    for node in graph.node:
        if not (_is_depthwise(node, inits) and private(node.input[1]) and single(node.input[0])):
            continue
        chain, clip, tensor = [], None, node.input[0]
        step = producer.get(tensor)
        while step is not None and step.op_type in _PASS_THROUGH and single(step.input[0]):
            bound = _clip_bound(step, inits) if step.op_type == "Clip" else None
            if not _commutes(step, inits) or (step.op_type == "Clip" and (bound is None or clip is not None)):
                step = None
                break
            clip = bound if step.op_type == "Clip" else clip
            chain.append(step.name)
            step = producer.get(step.input[0])
        if step is None or step.op_type != "Conv" or not private(step.input[1]) or not single(step.output[0]):
            continue
        if len(step.input) > 2 and step.input[2] and not private(step.input[2]):
            continue
        if numpy_helper.to_array(inits[step.input[1]]).shape[0] != _group(node):
            continue
        pairs.append(Pair(step.name, node.name, tuple(reversed(chain)), tensor, clip))
    return pairs


def _group(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def _is_depthwise(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> bool:
    """A Conv with one input channel per group and more than one group, its weights an initializer."""
    if node.op_type != "Conv" or _group(node) < 2 or len(node.input) < 2 or node.input[1] not in inits:
        return False
    dims = inits[node.input[1]].dims
    return len(dims) >= 3 and dims[1] == 1 and dims[0] % _group(node) == 0


def _constant(name: str, inits: dict[str, onnx.TensorProto]) -> np.ndarray | None:
    return numpy_helper.to_array(inits[name]) if name in inits else None


def _clip_bound(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> float | None:
    """A Clip's upper bound when its lower bound is 0 and both are constants (ReLU6); else None."""
    attrs = {a.name: a.f for a in node.attribute}
    low = _constant(node.input[1], inits) if len(node.input) > 1 and node.input[1] else attrs.get("min")
    high = _constant(node.input[2], inits) if len(node.input) > 2 and node.input[2] else attrs.get("max")
    if low is None or high is None or float(np.asarray(low)) != 0.0 or float(np.asarray(high)) <= 0.0:
        return None
    return float(np.asarray(high))


def _commutes(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> bool:
    """Whether ``node(s * x) == s * node(x)`` for a positive per-channel ``s`` (Clip: up to its bound)."""
    if node.op_type == "PRelu":
        return len(node.input) > 1 and node.input[1] in inits
    if node.op_type == "Pad":
        mode = next((a.s.decode() for a in node.attribute if a.name == "mode"), "constant")
        value = _constant(node.input[2], inits) if len(node.input) > 2 and node.input[2] else np.float32(0)
        pads = _constant(node.input[1], inits) if len(node.input) > 1 else None
        if mode != "constant" or value is None or pads is None or float(np.asarray(value)) != 0.0:
            return False
        rank = len(pads) // 2
        return rank >= 2 and pads[1] == 0 and pads[rank + 1] == 0  # no padding along channels
    return True


def channel_maxima(
    model: onnx.ModelProto, tensors: list[str], batches: Iterable[dict[str, np.ndarray]]
) -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]]]:
    """Each tensor's largest |value| per channel (axis 1) over ``batches``, and the batches fed."""
    from trtforge.graph.verify import session

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    probe.graph.output.extend(
        onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in tensors if t not in known
    )
    run = session(probe)
    maxima: dict[str, np.ndarray] = {}
    fed = []
    for batch in batches:
        fed.append(batch)
        for name, value in zip(tensors, run.run(tensors, batch)):
            axes = tuple(i for i in range(np.ndim(value)) if i != 1)
            peak = np.abs(value).max(axis=axes)
            maxima[name] = peak if name not in maxima else np.maximum(maxima[name], peak)
    return maxima, fed


def scales(pair: Pair, peak: np.ndarray) -> np.ndarray:
    """``s_c``: every channel up to the tensor's largest channel (a Clip's bound over the margin), at most
    :data:`MAX_SCALE`, never below 1; a channel that stayed 0 on every sample is left alone (under a Clip, one
    below its bound over :data:`CLIP_FLOOR` is scaled as if it reached that). Without a Clip, all ones unless
    the channels spread more than :data:`MIN_SPREAD`."""
    if pair.clip is None and spread(peak) < MIN_SPREAD:
        return np.ones_like(peak, dtype=np.float32)
    target = pair.clip / CLIP_MARGIN if pair.clip is not None else float(peak.max())
    floor = np.maximum(peak, pair.clip / CLIP_FLOOR) if pair.clip is not None else peak
    wanted = np.divide(target, floor, out=np.ones_like(peak, dtype=np.float64), where=peak > 0)
    return np.clip(wanted, 1.0, MAX_SCALE).astype(np.float32)


def spread(peak: np.ndarray) -> float:
    """The largest channel's maximum over the median channel's (channels that stayed 0 not counted)."""
    live = peak[peak > 0]
    return float(live.max() / np.median(live)) if live.size else 1.0


def rescaled(model: onnx.ModelProto, pairs: list[Pair], factors: dict[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of ``model`` with each pair's producer channels times ``factors[depthwise]`` and the
    depthwise weights divided by them."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = {n.name: n for n in out.graph.node}
    inits = {t.name: t for t in out.graph.initializer}

    def scale(name: str, by: np.ndarray) -> None:
        array = numpy_helper.to_array(inits[name])
        shaped = by.reshape(-1, *([1] * (array.ndim - 1)))
        inits[name].CopyFrom(numpy_helper.from_array((array * shaped).astype(np.float32), name))

    for pair in pairs:
        s, producer, depthwise = factors[pair.depthwise], nodes[pair.producer], nodes[pair.depthwise]
        scale(producer.input[1], s)
        if len(producer.input) > 2 and producer.input[2]:
            scale(producer.input[2], s)
        per_group = inits[depthwise.input[1]].dims[0] // len(s)  # a channel multiplier > 1 repeats s_c
        scale(depthwise.input[1], 1.0 / np.repeat(s, per_group))
    return out


def largest_drift(before: onnx.ModelProto, after: onnx.ModelProto, fed: list[dict[str, np.ndarray]]) -> float:
    """The largest output change, after vs before, as a fraction of that output's range over ``fed``."""
    from trtforge.graph.verify import session

    first, second = session(before), session(after)
    pairs = [(first.run(None, batch), second.run(None, batch)) for batch in fed]
    worst = 0.0
    for k in range(len(pairs[0][0]) if pairs else 0):
        a = np.concatenate([np.asarray(p[0][k], np.float64).reshape(-1) for p in pairs])
        b = np.concatenate([np.asarray(p[1][k], np.float64).reshape(-1) for p in pairs])
        if a.size:
            span = max(float(np.ptp(a)), float(np.abs(a).max()) * 1e-2, 1e-12)  # a near-constant output: 1% of it
            worst = max(worst, float(np.abs(a - b).max()) / span)
    return worst


def equalize(
    model: onnx.ModelProto, batches: Iterable[dict[str, np.ndarray]], held: list[dict[str, np.ndarray]] | None = None
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """``model`` with its producer/depthwise pairs equalised (or as it was, when nothing needs it or the
    check fails), and the facts the manifest records. The scales come from ``batches``; the check runs
    on ``held`` (samples the scales were not chosen from) when given, else on ``batches``."""
    pairs = find_pairs(model)
    if not pairs:
        return model, {"applied": False, "reason": NO_PAIRS}
    maxima, fed = channel_maxima(model, sorted({p.tensor for p in pairs}), batches)
    if not fed:
        return model, {"applied": False, "reason": "no calibration samples to measure channel ranges on"}
    factors = {p.depthwise: scales(p, maxima[p.tensor]) for p in pairs}
    changed = [p for p in pairs if float(factors[p.depthwise].max()) > 1.0]
    if not changed:
        return model, {
            "applied": False,
            "reason": f"{len(pairs)} pair(s) found; their channels already share one range (spread under "
            f"{MIN_SPREAD:g}x, no Clip)",
        }
    equalised = rescaled(model, changed, factors)
    checked = held or fed
    drift = largest_drift(model, equalised, checked)
    facts: dict[str, Any] = {
        "pairs": len(changed),
        "found": len(pairs),
        "samples": sum(_count(b) for b in fed),
        "checked_on": f"{sum(_count(b) for b in checked)} {'held-back' if held else 'of the same'} samples",
        "largest_output_change": float(f"{drift:.3g}"),
        "clip_margin": CLIP_MARGIN,
        "clip_floor": CLIP_FLOOR,
        "min_spread": MIN_SPREAD,
        "max_scale": MAX_SCALE,
        "scaled": [_pair_facts(p, factors[p.depthwise], maxima[p.tensor]) for p in changed],
    }
    if drift > TOLERANCE:
        return model, {"applied": False, "reason": f"outputs changed by {drift:.2g} of their range", **facts}
    return equalised, {"applied": True, **facts}


def _pair_facts(pair: Pair, s: np.ndarray, peak: np.ndarray) -> dict[str, object]:
    scaled = s > 1.0
    facts: dict[str, object] = {
        "producer": pair.producer,
        "depthwise": pair.depthwise,
        "via": list(pair.via),
        "channels_scaled": int(scaled.sum()),
        "of": len(s),
        "largest_scale": round(float(s.max()), 2),
        "channel_range_spread": round(spread(peak), 2),
    }
    if pair.clip is not None:  # the Clip bound holds exactly up to this many times each channel's calibrated max
        facts["headroom"] = round(float(np.min(np.where(scaled, pair.clip / (s * np.maximum(peak, 1e-30)), np.inf))), 2)
    return facts


def _count(batch: dict[str, np.ndarray]) -> int:
    first = next(iter(batch.values()), None)
    return int(np.shape(first)[0]) if first is not None and np.ndim(first) else 1


def calibration_batches(
    model: onnx.ModelProto, calibration: CalibrationConfig
) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """The first :data:`STATS_SAMPLES` samples of ``calibration``'s data as calibration reads them, in
    batches ``model`` runs (regrouped to its batch when that is static): those the self-check does not
    hold back, and those it does (:class:`~trtforge.precision.check.Holdout`, the same first samples)."""
    from trtforge.data.check import checked_batches
    from trtforge.graph.batch import batch_axes
    from trtforge.graph.model import graph_inputs
    from trtforge.precision.calibrate import _static_batch
    from trtforge.precision.check import Holdout
    from trtforge.precision.sources import rebatch, source_for

    specs = graph_inputs(model)
    source = source_for(specs, calibration, min(calibration.num, STATS_SAMPLES))
    axes = batch_axes(specs)
    holdout = Holdout(axes=axes)
    checked = checked_batches(source.batches(), specs, f"calibration data {source.describe()}")
    batches = list(holdout.split(checked, source.total))
    feeds = holdout.feeds()
    held = [feeds] if holdout.held_back and feeds is not None else []
    static = _static_batch(model)
    if static is not None:
        batches, held = list(rebatch(batches, static, axes)), list(rebatch(held, static, axes))
    return batches, held
