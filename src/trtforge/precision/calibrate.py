"""Activation ranges from calibration data, with ONNX Runtime's calibrators doing the math.

Batches are fed one at a time: ONNX Runtime's calibrators merge ranges and histograms on
every ``collect_data`` call, so memory holds one batch of activations, not all of them.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from trtforge.config import CalibMethod
from trtforge.graph.batch import batch_axes
from trtforge.graph.model import graph_inputs
from trtforge.precision.sources import (
    rebatch,  # lives with the data sources; used below and by TensorRT 10's calibrator
)

# Histogram sizes: ONNX Runtime's entropy default (128 bins) is coarse; TensorRT's entropy
# calibrator uses 2048 bins and quantizes to 128 levels.  We follow TensorRT.  Percentile keeps
# ONNX Runtime's default of a histogram of |x|.
_EXTRA: dict[CalibMethod, dict[str, object]] = {
    CalibMethod.MINMAX: {},
    CalibMethod.ENTROPY: {"num_bins": 2048, "num_quantized_bins": 128},
    CalibMethod.PERCENTILE: {"num_bins": 2048, "symmetric": True},
    CalibMethod.MSE: {"num_bins": 2048, "num_quantized_bins": 128},  # the entropy histogram, another search
}
# An op's output read only by one of these activations is never quantized itself: ONNX Runtime's
# CPU placement moves the Q/DQ past the activation, TensorRT's quantizes op inputs only.
_FOLDED_ACTIVATIONS = frozenset({"Relu", "Clip"})
_ACTIVATION_PRODUCERS = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})


class _OneBatch:
    """An ONNX Runtime ``CalibrationDataReader`` over a single batch."""

    def __init__(self, batch: dict[str, np.ndarray]) -> None:
        self._batch: dict[str, np.ndarray] | None = batch

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch, self._batch = self._batch, None
        return batch


def calibrate(
    model: onnx.ModelProto,
    batches: Iterable[dict[str, np.ndarray]],
    method: CalibMethod = CalibMethod.ENTROPY,
    percentile: float = 99.999,
    progress: object | None = None,
    symmetric: bool = False,
    channel_means: dict[str, np.ndarray] | None = None,
) -> dict[str, tuple[float, float]]:
    """Run ``batches`` through ``model`` and return ``{tensor: (min, max)}`` for its float tensors
    (all but those :func:`unused_ranges` names).

    ``progress``, if given, is called with the number of samples in each batch fed. ``symmetric``:
    the activations will be quantized symmetric INT8 (the TensorRT flavours), which the ``mse``
    search takes into account. ``channel_means``, if given (histogram methods only), receives the
    mean over samples of each Conv/Gemm input (one value per channel and position), for
    :func:`trtforge.precision.biascorrect.correct_biases`.
    """
    from onnxruntime.quantization.calibrate import EntropyCalibrater, MinMaxCalibrater, PercentileCalibrater

    calibrator_class = {
        CalibMethod.MINMAX: MinMaxCalibrater,
        CalibMethod.ENTROPY: EntropyCalibrater,
        CalibMethod.PERCENTILE: PercentileCalibrater,
        CalibMethod.MSE: EntropyCalibrater,  # its signed histogram; the threshold search is ours
    }[method]
    extra = dict(_EXTRA[method])
    if method is CalibMethod.PERCENTILE:
        extra["percentile"] = percentile
    model, static_batch = _calibration_model(model)
    axes = batch_axes(graph_inputs(model))
    if static_batch is not None:
        batches = rebatch(batches, static_batch, axes)
    with tempfile.TemporaryDirectory(prefix="trtforge-calib-") as tmp:
        model_path = Path(tmp) / "model.onnx"
        onnx.save(model, str(model_path))
        calibrator = calibrator_class(model_path, None, str(Path(tmp) / "augmented.onnx"), **extra)
        skip = unused_ranges(model)
        select = calibrator.select_tensors_to_calibrate

        def selected(m: onnx.ModelProto) -> tuple[set[str], dict]:
            tensors, value_infos = select(m)
            return tensors - skip, value_infos

        calibrator.select_tensors_to_calibrate = selected  # read by augment_graph
        calibrator.augment_graph()
        calibrator.create_inference_session()
        if method is not CalibMethod.MINMAX:
            readers = {n.input[0] for n in model.graph.node if n.op_type in ("Conv", "Gemm")}
            calibrator.collector = bounded_collector(calibrator, readers if channel_means is not None else set())
        # ONNX Runtime's calibrators print progress on stdout, which is our output channel.
        with contextlib.redirect_stdout(io.StringIO()):
            for batch in batches:
                calibrator.collect_data(_OneBatch(batch))
                if callable(progress):
                    progress(len(next(iter(batch.values()))))
            if method is CalibMethod.ENTROPY and getattr(calibrator, "collector", None) is not None:
                calibrator.collector.get_entropy_threshold = entropy_threshold
            if method is CalibMethod.MSE and getattr(calibrator, "collector", None) is not None:
                calibrator.collector.get_entropy_threshold = lambda hist, _: mse_threshold(hist, symmetric)
            tensors = calibrator.compute_data()
    collector = getattr(calibrator, "collector", None)  # min-max has none: no means
    if channel_means is not None and collector is not None:
        channel_means.update(collector.channel_means())
    return {
        name: (float(np.min(data.range_value[0])), float(np.max(data.range_value[1])))
        for name, data in tensors.data.items()
    }


def bounded_collector(calibrator: Any, summed: set[str] | frozenset[str] = frozenset()) -> Any:
    """ONNX Runtime's histogram collector with a fixed number of bins, keeping running sums over
    samples of the ``summed`` tensors (for their means; a tensor whose shape changes is dropped).

    ONNX Runtime widens a histogram by adding bins of the first batch's width whenever a later
    batch reaches further, so bins (and the quadratic entropy search over them) grow with the
    number of samples: 29 s for 20 images and 363 s for 50 on a small face detector. Here a wider
    batch doubles the bin width instead (power-of-two merges of whole bins, exact), so every
    histogram keeps ``num_bins`` bins and calibration time is linear in the number of samples.
    """
    from onnxruntime.quantization.calibrate import HistogramCollector

    class Bounded(HistogramCollector):  # type: ignore[misc]
        sums: dict[str, tuple[np.ndarray, int] | None]  # sum over samples and their count; None: shapes differ

        def collect(self, name_to_arr: dict[str, Any]) -> None:
            for tensor in summed & set(name_to_arr):
                arrays = name_to_arr[tensor]
                for a in arrays if isinstance(arrays, list) else [arrays]:
                    self._add_sums(tensor, np.asarray(a))
            super().collect(name_to_arr)

        def _add_sums(self, tensor: str, a: np.ndarray) -> None:
            if a.ndim < 2 or not np.issubdtype(a.dtype, np.floating) or self.sums.get(tensor, ()) is None:
                return
            total, count = self.sums.get(tensor) or (np.zeros(a.shape[1:], np.float32), 0)
            self.sums[tensor] = (total + a.sum(axis=0), count + len(a)) if total.shape == a.shape[1:] else None

        def channel_means(self) -> dict[str, np.ndarray]:
            return {t: total / count for t, kept in self.sums.items() if kept for total, count in [kept] if count}

        def merge_histogram(
            self, old: tuple, data: np.ndarray, new_min: Any, new_max: Any, new_threshold: Any
        ) -> tuple:
            hist, edges, old_min, old_max, threshold = old
            if new_threshold <= threshold or threshold == 0:
                return super().merge_histogram(old, data, new_min, new_max, new_threshold)
            wider = threshold * 2.0 ** np.ceil(np.log2(new_threshold / threshold))
            merged, edges = _rebin(hist, edges, data, (-wider, wider))
            return merged, edges, min(old_min, new_min), max(old_max, new_max), np.array(wider, dtype=data.dtype)

        def collect_absolute_value(self, name_to_arr: dict[str, Any]) -> None:
            for tensor, arrays in name_to_arr.items():
                data = (
                    np.concatenate([np.asarray(a).ravel() for a in arrays])
                    if isinstance(arrays, list)
                    else np.asarray(arrays).ravel()
                )
                low, high = (np.nanmin(data), np.nanmax(data)) if data.size else (data.dtype.type(0),) * 2
                data = np.abs(data)
                top = np.nanmax(data) if data.size else data.dtype.type(0)
                if tensor not in self.histogram_dict:
                    hist, edges = np.histogram(data, bins=self.num_bins, range=(0, max(float(top), 1e-12)))
                    self.histogram_dict[tensor] = (hist, edges.astype(data.dtype), low, high)
                    continue
                hist, edges, old_low, old_high = self.histogram_dict[tensor]
                if top > edges[-1]:
                    wider = edges[-1] * 2.0 ** np.ceil(np.log2(top / edges[-1]))
                    hist, edges = _rebin(hist, edges, data, (0, wider))
                else:
                    hist = hist + np.histogram(data, bins=edges)[0]
                self.histogram_dict[tensor] = (hist, edges, min(old_low, low), max(old_high, high))

    collector = Bounded(
        method=calibrator.method,
        symmetric=calibrator.symmetric,
        num_bins=calibrator.num_bins,
        num_quantized_bins=calibrator.num_quantized_bins,
        percentile=calibrator.percentile,
        scenario=calibrator.scenario,
    )
    collector.sums = {}
    return collector


def _rebin(
    hist: np.ndarray, edges: np.ndarray, data: np.ndarray, span: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """``hist`` (over ``edges``) moved onto ``len(hist)`` bins over the wider ``span``, plus ``data``."""
    centres = (edges[:-1].astype(np.float64) + edges[1:]) / 2
    moved, new_edges = np.histogram(centres, bins=hist.size, range=span, weights=hist)
    fresh, _ = np.histogram(data, bins=hist.size, range=span)
    return np.rint(moved).astype(hist.dtype) + fresh, new_edges.astype(edges.dtype)


def folded_activations(model: onnx.ModelProto) -> dict[str, str]:
    """``{op output: activation output}`` for each Conv/Gemm/MatMul output whose only reader is a
    ReLU or Clip.  No Q/DQ placement reads a range for the op output itself."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    outputs = {o.name for o in model.graph.output}
    return {
        node.output[0]: readers[node.output[0]][0].output[0]
        for node in model.graph.node
        if node.op_type in _ACTIVATION_PRODUCERS
        and node.output[0] not in outputs
        and len(readers.get(node.output[0], [])) == 1
        and readers[node.output[0]][0].op_type in _FOLDED_ACTIVATIONS
    }


def unused_ranges(model: onnx.ModelProto) -> set[str]:
    """Tensors calibration skips (see :func:`folded_activations`): about 40% of ResNet-50's histograms."""
    return set(folded_activations(model))


def mse_threshold(histogram: tuple, symmetric: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The range whose INT8 quantization has the least expected squared error on the histogram.

    Candidates are the entropy search's: a threshold ``t`` at every bin edge above zero, giving
    ``[max(min, -t), min(max, t)]``. The error of a candidate is the clipping error of the values
    outside it (at bin centres) plus the rounding error inside: ``step**2 / 12`` per value, or
    ``c**2 + w**2 / 12`` when smaller (a value near zero rounds to the exact zero). The step is the
    range over 255 levels (asymmetric UINT8: ONNX Runtime CPU, OpenVINO) or its larger end over
    127 (symmetric INT8: TensorRT). Prefix sums make it O(bins) per tensor, with no search loop.
    """
    hist, edges = np.asarray(histogram[0], np.float64), np.asarray(histogram[1], np.float64)
    lowest, highest = float(histogram[2]), float(histogram[3])
    centres, width = (edges[:-1] + edges[1:]) / 2, float(edges[1] - edges[0])
    count, first, second = (np.concatenate(([0.0], np.cumsum(hist * centres**p))) for p in (0, 1, 2))
    t = edges[hist.size // 2 + 1 :]  # the histogram spans [-T, T]: every edge above zero
    lo, hi = np.minimum(np.maximum(lowest, -t), 0.0), np.maximum(np.minimum(highest, t), 0.0)
    if symmetric:
        hi = np.maximum(-lo, hi)
        lo, step = -hi, hi / 127
    else:
        step = (hi - lo) / 255
    below, above = np.searchsorted(centres, lo, "left"), np.searchsorted(centres, hi, "right")
    clipped = (second[below] - 2 * lo * first[below] + lo**2 * count[below]) + (
        (second[-1] - second[above]) - 2 * hi * (first[-1] - first[above]) + hi**2 * (count[-1] - count[above])
    )
    near = np.sqrt(np.maximum(step**2 - width**2, 0.0) / 12)  # |c| below this: rounding to zero costs less
    start = np.maximum(np.searchsorted(centres, -near, "right"), below)
    stop = np.maximum(np.minimum(np.searchsorted(centres, near, "left"), above), start)
    inside = count[above] - count[below]
    rounded = (second[stop] - second[start]) + width**2 / 12 * (count[stop] - count[start])
    rounded += step**2 / 12 * (inside - (count[stop] - count[start]))
    best = int(np.argmin(clipped + rounded))
    dtype = np.asarray(histogram[1]).dtype
    return np.asarray(max(lowest, -t[best]), dtype), np.asarray(min(highest, t[best]), dtype)


def entropy_threshold(histogram: tuple, num_quantized_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """ONNX Runtime's ``HistogramCollector.get_entropy_threshold``, with its inner loops in numpy.

    Same candidates, same integer arithmetic, same smoothing and KL divergence (ONNX Runtime's
    own helpers), so the same threshold; ONNX Runtime's version sums with Python's ``sum`` over
    numpy arrays and takes about a second and a half per tensor at 2048 bins, which is minutes
    for a ResNet-50.  ``tests/precision/test_calibrate.py`` checks the two agree.
    """
    from onnxruntime.quantization.calibrate import entropy
    from onnxruntime.quantization.quant_utils import smooth_distribution

    hist, edges = histogram[0], histogram[1]
    n = hist.size
    zero, half, qbins = n // 2, num_quantized_bins // 2, num_quantized_bins
    below = np.concatenate(([0], np.cumsum(hist)))  # below[k] == sum(hist[:k])
    kl = np.zeros(zero - half + 1)
    for i in range(half, zero + 1):
        start, end = zero - i, min(zero + i + 1, n)
        sliced = hist[start:end]
        p = sliced.copy()
        p[0] += below[start]
        p[-1] += below[-1] - below[end]
        nonzeros = (p != 0).astype(np.int64)
        merged = sliced.size // qbins
        body = qbins * merged
        quantized = sliced[:body].reshape(qbins, merged).sum(axis=1)
        quantized[-1] += sliced[body:].sum()
        norm = nonzeros[:body].reshape(qbins, merged).sum(axis=1)
        spread = np.where(norm != 0, (quantized / np.where(norm == 0, 1, norm)), 0).astype(np.int64)
        q = np.zeros(p.size, dtype=np.int64)
        q[:body] = np.repeat(spread, merged)
        ps, qs = smooth_distribution(p), smooth_distribution(q)
        kl[i - half] = np.inf if ps is None or qs is None else np.array(entropy(ps, qs), dtype=edges.dtype)
    best = int(np.argmin(kl)) + half
    start, end = zero - best, min(zero + best + 1, n)
    low, high = edges[start], edges[end]
    if low < histogram[2]:
        low = histogram[2]
    if high > histogram[3]:
        high = histogram[3]
    return low, high


def _calibration_model(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int | None]:
    """A copy of ``model`` with a dynamic batch, so calibration runs whole batches.

    A model exported at batch 1 would otherwise be calibrated one sample per run.  If
    the batch cannot be freed safely, the model is kept and data is regrouped to its batch.
    """
    static = _static_batch(model)
    if static is None:
        return model, None
    from trtforge.errors import TrtforgeError
    from trtforge.graph.shapes import Batch, set_batch

    try:
        return set_batch(model, Batch(None, "calibration_batch"), verify=True), None
    except TrtforgeError:
        return model, static


def _static_batch(model: onnx.ModelProto) -> int | None:
    """The batch every batched input has (on its own batch axis), when it is static."""
    specs = graph_inputs(model)
    axes = batch_axes(specs)
    firsts = {spec.shape[axis] for spec in specs if (axis := axes[spec.name]) is not None}
    if len(firsts) == 1:
        (first,) = firsts
        if isinstance(first, int) and first > 0:
            return first
    return None
