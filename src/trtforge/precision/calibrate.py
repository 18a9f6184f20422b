"""Activation ranges from calibration data, with ONNX Runtime's calibrators doing the math.

Batches are fed one at a time: ONNX Runtime's calibrators merge ranges and histograms on
every ``collect_data`` call, so memory holds one batch of activations, not all of them.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import onnx

from trtforge.config import CalibMethod
from trtforge.graph.model import graph_inputs

# Histogram sizes: ONNX Runtime's entropy default (128 bins) is coarse; TensorRT's entropy
# calibrator uses 2048 bins and quantizes to 128 levels.  We follow TensorRT.
_EXTRA = {
    CalibMethod.MINMAX: {},
    CalibMethod.ENTROPY: {"num_bins": 2048, "num_quantized_bins": 128},
    CalibMethod.PERCENTILE: {"num_bins": 2048},
}


class _OneBatch:
    """An ONNX Runtime ``CalibrationDataReader`` over a single batch."""

    def __init__(self, batch: dict[str, np.ndarray]) -> None:
        self._batch: dict[str, np.ndarray] | None = batch

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch, self._batch = self._batch, None
        return batch


def rebatch(batches: Iterable[dict[str, np.ndarray]], size: int) -> Iterator[dict[str, np.ndarray]]:
    """Regroup batches into exactly ``size`` samples (for models with a static batch).

    A final partial group is dropped: a model of static batch cannot run it.
    """
    pending: dict[str, list[np.ndarray]] = {}
    count = 0
    for batch in batches:
        for name, array in batch.items():
            pending.setdefault(name, []).append(array)
        count += len(next(iter(batch.values())))
        while count >= size:
            joined = {k: np.concatenate(v) for k, v in pending.items()}
            yield {k: v[:size] for k, v in joined.items()}
            pending = {k: [v[size:]] for k, v in joined.items()}
            count -= size


def calibrate(
    model: onnx.ModelProto,
    batches: Iterable[dict[str, np.ndarray]],
    method: CalibMethod = CalibMethod.ENTROPY,
    percentile: float = 99.999,
    progress: object | None = None,
) -> dict[str, tuple[float, float]]:
    """Run ``batches`` through ``model`` and return ``{tensor: (min, max)}`` for every float tensor.

    ``progress``, if given, is called with the number of samples in each batch fed.
    """
    from onnxruntime.quantization import CalibrationMethod, create_calibrator

    ort_method = {
        CalibMethod.MINMAX: CalibrationMethod.MinMax,
        CalibMethod.ENTROPY: CalibrationMethod.Entropy,
        CalibMethod.PERCENTILE: CalibrationMethod.Percentile,
    }[method]
    extra = dict(_EXTRA[method])
    if method is CalibMethod.PERCENTILE:
        extra["percentile"] = percentile
    model, static_batch = _calibration_model(model)
    if static_batch is not None:
        batches = rebatch(batches, static_batch)
    with tempfile.TemporaryDirectory(prefix="trtforge-calib-") as tmp:
        model_path = Path(tmp) / "model.onnx"
        onnx.save(model, str(model_path))
        calibrator = create_calibrator(
            model_path, None, augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=ort_method, extra_options=extra,
        )
        # ONNX Runtime's calibrators print progress on stdout, which is our output channel.
        with contextlib.redirect_stdout(io.StringIO()):
            for batch in batches:
                calibrator.collect_data(_OneBatch(batch))
                if callable(progress):
                    progress(len(next(iter(batch.values()))))
            if method is CalibMethod.ENTROPY and getattr(calibrator, "collector", None) is not None:
                calibrator.collector.get_entropy_threshold = entropy_threshold
            tensors = calibrator.compute_data()
    return {name: (float(np.min(data.range_value[0])), float(np.max(data.range_value[1])))
            for name, data in tensors.data.items()}


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
    firsts = {spec.shape[0] for spec in graph_inputs(model) if spec.shape}
    if len(firsts) == 1:
        (first,) = firsts
        if isinstance(first, int) and first > 0:
            return first
    return None
