"""Ranges: each method on a small model, the fast entropy search, and streaming memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from tests.precision.models import residual_cnn, wide
from trtforge.config import CalibMethod
from trtforge.precision.calibrate import calibrate, entropy_threshold, unused_ranges


def _batches(n: int, shape: tuple[int, ...], seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield {"x": rng.standard_normal(shape).astype(np.float32)}


@pytest.mark.parametrize("method", list(CalibMethod))
def test_each_method_gives_ranges_for_every_activation(method: CalibMethod) -> None:
    model = residual_cnn(channels=4, size=6)
    ranges = calibrate(model, _batches(3, (4, 3, 6, 6)), method, percentile=99.9)
    activations = {o for n in model.graph.node for o in n.output}
    # Conv outputs read only by a ReLU are never quantized themselves: not calibrated
    assert unused_ranges(model) == {"c0", "c1"}
    assert set(ranges) == activations - {"c0", "c1"} | {"x"}
    relu_lo, relu_hi = ranges["r0"]
    assert relu_lo >= 0.0 and relu_hi > 0.0  # ReLU output: nothing below zero was seen
    lo, hi = ranges["x"]
    assert lo < 0.0 < hi


def test_methods_clip_differently() -> None:
    """Minmax keeps the outliers; entropy and percentile clip a long-tailed input."""
    model = wide(features=64)
    rng = np.random.default_rng(0)
    data = rng.standard_normal((64, 64)).astype(np.float32)
    data[0, 0] = 40.0  # one outlier
    batches = [{"x": data[i : i + 16]} for i in range(0, 64, 16)]
    hi = {m: calibrate(model, batches, m, percentile=99.0)["x"][1] for m in CalibMethod}
    assert hi[CalibMethod.MINMAX] == pytest.approx(40.0)
    assert hi[CalibMethod.ENTROPY] < 20.0 and hi[CalibMethod.PERCENTILE] < 20.0


@pytest.mark.parametrize("tail", ["normal", "relu", "heavy"])
def test_entropy_search_matches_onnxruntime(tail: str) -> None:
    from onnxruntime.quantization.calibrate import HistogramCollector

    rng = np.random.default_rng(1)
    data = {
        "normal": rng.standard_normal(40000),
        "relu": np.maximum(rng.standard_normal(40000) * 3, 0),
        "heavy": rng.standard_t(3, 40000),
    }[tail].astype(np.float32)
    collector = HistogramCollector("entropy", True, 512, 128, 99.99, "same")
    for part in np.array_split(data, 4):  # merged batch by batch, so the bins grow as in calibration
        collector.collect_value({"t": part})
    histogram = collector.histogram_dict["t"]
    assert entropy_threshold(histogram, 128) == collector.get_entropy_threshold(histogram, 128)


# --- streaming: a histogram method must not hold every batch's activations ----------------------

FEATURES, BATCH, BATCHES = 16384, 8, 48
BUDGET = 24 << 20
# x, Mul, Relu and Add outputs of every batch, were they all kept:
HELD = BATCHES * 4 * BATCH * FEATURES * 4


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("method", [CalibMethod.ENTROPY, CalibMethod.PERCENTILE])
def test_histogram_calibration_streams(method: CalibMethod) -> None:
    assert HELD > 3 * BUDGET
    model = wide(features=FEATURES)
    peak = _peak_bytes(lambda: calibrate(model, _batches(BATCHES, (BATCH, FEATURES)), method))
    assert peak < BUDGET, f"{method}: peak {peak >> 20} MiB, budget {BUDGET >> 20} MiB (held would be {HELD >> 20})"


def test_memory_probe_sees_activations_held_by_a_calibrator(tmp_path) -> None:
    """The probe above can fail: ONNX Runtime's calibrator fed every batch at once goes over budget."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, create_calibrator

    path = tmp_path / "wide.onnx"
    onnx.save(wide(features=FEATURES), str(path))
    calibrator = create_calibrator(
        path, None, augmented_model_path=str(tmp_path / "aug.onnx"), calibrate_method=CalibrationMethod.Percentile
    )

    class AllAtOnce:
        def __init__(self) -> None:
            self.it = _batches(BATCHES, (BATCH, FEATURES))

        def get_next(self):
            return next(self.it, None)

    peak = _peak_bytes(lambda: calibrator.collect_data(AllAtOnce()))
    assert peak > BUDGET


@pytest.mark.parametrize("method", [CalibMethod.ENTROPY, CalibMethod.PERCENTILE])
def test_histograms_keep_their_bins_as_the_range_grows(method: CalibMethod) -> None:
    # ONNX Runtime added bins whenever a batch reached further (29 s for 20 images, 363 s for 50)
    from types import SimpleNamespace

    from trtforge.precision.calibrate import bounded_collector

    calibrator = SimpleNamespace(
        method=method.value, symmetric=True, num_bins=2048, num_quantized_bins=128, percentile=99.999, scenario="same"
    )  # what bounded_collector reads off ORT's
    collector = bounded_collector(calibrator)
    rng = np.random.default_rng(0)
    total = 0
    for i in range(30):  # each batch twice as wide as the last: 2**29 times the first range
        batch = (rng.standard_normal(1000) * 2.0**i).astype(np.float32)
        total += batch.size
        collector.collect({"t": [batch]})
    hist = collector.histogram_dict["t"][0]
    assert hist.size == 2048 and int(hist.sum()) == total
    low, high = collector.compute_collection_result()["t"][:2]
    assert 2.0**26 < max(abs(float(low)), abs(float(high))) <= 2.0**32


# --- mse: the range with the least expected quantization error -----------------------------------


def _signed_histogram(data: np.ndarray) -> tuple:
    from onnxruntime.quantization.calibrate import HistogramCollector

    collector = HistogramCollector("entropy", True, 2048, 128, 99.99, "same")  # the histogram mse reads
    collector.collect_value({"t": data.astype(np.float32)})
    return collector.histogram_dict["t"]


def _quantization_mse(data: np.ndarray, lo: float, hi: float, symmetric: bool) -> float:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if symmetric:
        hi = max(-lo, hi)
        lo, step = -hi, hi / 127
    else:
        step = (hi - lo) / 255
    zero = np.round(-lo / step)
    levels = (0, 255) if not symmetric else (zero - 127, zero + 127)
    q = (np.clip(np.round(data / step) + zero, *levels) - zero) * step
    return float(np.mean((q - data) ** 2))


@pytest.mark.parametrize(
    ("draw", "symmetric", "optimum"),
    [
        # Laplace(b=1) on 256 levels over [-t, t]: clip 2 e^-t + round t^2 / (3 * 255^2) is least at t e^t = 3 * 255^2
        ("laplace", False, 9.89),
        # Exponential(1), all positive: UINT8 over [0, t] is least at t e^t = 12 * 255^2;
        # symmetric INT8 over [-t, t] at t e^t = 12 * 127^2
        ("exponential", False, 11.19),
        ("exponential", True, 9.88),
    ],
)
def test_mse_range_is_the_analytic_optimum(draw: str, symmetric: bool, optimum: float) -> None:
    from trtforge.precision.calibrate import mse_threshold

    rng = np.random.default_rng(0)
    data = rng.laplace(0, 1, 2_000_000) if draw == "laplace" else rng.exponential(1, 2_000_000)
    lo, hi = (float(v) for v in mse_threshold(_signed_histogram(data), symmetric))
    assert hi == pytest.approx(optimum, rel=0.05)
    assert lo == (pytest.approx(-hi, rel=1e-6) if draw == "laplace" else pytest.approx(0.0, abs=1e-3))
    # and the real quantization error there is within 1% of the best of a fine sweep
    sweep = min(_quantization_mse(data, -t if lo < 0 else 0.0, t, symmetric) for t in np.linspace(6, 14, 81))
    assert _quantization_mse(data, lo, hi, symmetric) < 1.01 * sweep


def test_mse_search_costs_no_more_than_a_few_milliseconds() -> None:
    """Entropy's candidate loop takes ~0.1 s a tensor (the ~40 s constant of a calibration); mse is O(bins)."""
    import time

    from trtforge.precision.calibrate import mse_threshold

    histogram = _signed_histogram(np.random.default_rng(0).standard_normal(100_000))
    started = time.perf_counter()
    for _ in range(20):
        mse_threshold(histogram)
    assert (time.perf_counter() - started) / 20 < 0.02
