"""TensorRT 10's INT8 calibrator feed: the parts that run without a GPU (batching, the shared cache).

The calibrator classes themselves need full TensorRT (type-checked in test_tensorrt_types.py);
device uploads need a GPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trtforge.backends.tensorrt.calibrator import _CalibrationFeed, check_cache
from trtforge.config import CalibMethod, CalibrationConfig, TensorSpec
from trtforge.errors import TrtforgeError
from trtforge.precision.cache import read_cache, read_facts
from trtforge.precision.sources import rebatch

TRT_TEXT = "TRT-100300-MinMaxCalibration\na: 3c010a14\nb: 3d8b4c2a\n"
INPUTS = [TensorSpec("a", "float32", (4, 3)), TensorSpec("b", "float32", (4, 2))]


def test_rebatch_regroups_every_input_into_the_networks_batch() -> None:
    a = np.arange(27, dtype=np.float32).reshape(9, 3)
    b = np.arange(18, dtype=np.float32).reshape(9, 2)
    source = ({"a": a[i : i + 3], "b": b[i : i + 3]} for i in range(0, 9, 3))
    batches = list(rebatch(source, 4))
    assert [len(x["a"]) for x in batches] == [4, 4]  # the ninth sample cannot fill a batch: dropped
    np.testing.assert_array_equal(np.concatenate([x["a"] for x in batches]), a[:8])
    np.testing.assert_array_equal(np.concatenate([x["b"] for x in batches]), b[:8])


def test_feed_reads_every_input_from_an_npz(tmp_path: Path) -> None:
    data = tmp_path / "calib.npz"
    np.savez(data, a=np.ones((10, 3), np.float32), b=np.zeros((10, 2), np.float32))
    feed = _CalibrationFeed(CalibrationConfig(data=data, batch_size=3), INPUTS, 4, "0" * 64)
    first = next(feed.batches)
    assert set(first) == {"a", "b"} and first["a"].shape == (4, 3) and first["b"].shape == (4, 2)
    assert feed.get_batch_size() == 4


def test_cache_written_by_tensorrt_is_shared_with_the_precision_stage(tmp_path: Path) -> None:
    cache = tmp_path / "model.cache"
    config = CalibrationConfig(data=None, cache=cache, method=CalibMethod.MINMAX)
    feed = _CalibrationFeed(config, INPUTS, 4, "a" * 64)
    assert feed.read_calibration_cache() is None  # nothing yet: TensorRT calibrates
    feed.write_calibration_cache(TRT_TEXT.encode("ascii"))
    assert read_cache(cache).header == "TRT-100300-MinMaxCalibration"
    assert set(read_cache(cache).scales) == {"a", "b"}
    facts = read_facts(cache)
    assert facts is not None and facts.model_sha256 == "a" * 64 and facts.method == "minmax"
    assert json.loads(Path(f"{cache}.json").read_text())["model_sha256"] == "a" * 64
    assert feed.read_calibration_cache() == TRT_TEXT.encode("ascii")  # the next build reuses it


def test_a_cache_for_another_model_is_refused_unless_forced(tmp_path: Path) -> None:
    cache = tmp_path / "model.cache"
    _CalibrationFeed(CalibrationConfig(cache=cache), INPUTS, 4, "a" * 64).write_calibration_cache(TRT_TEXT.encode())
    check_cache(CalibrationConfig(cache=cache), "a" * 64)  # same model: fine
    with pytest.raises(TrtforgeError, match="calibrated for another model.*--calib-cache-force"):
        check_cache(CalibrationConfig(cache=cache), "b" * 64)
    check_cache(CalibrationConfig(cache=cache, cache_force=True), "b" * 64)


@pytest.mark.parametrize("method", [CalibMethod.MSE, CalibMethod.PERCENTILE])
def test_methods_tensorrt_lacks_are_calibrated_by_trtforge_and_handed_over(tmp_path: Path, method) -> None:
    """TensorRT 10 has entropy and min-max calibrators only: for mse/percentile the calibrator hands TensorRT
    trtforge's ranges (one calibration, every backend), under the header TensorRT's entropy calibrator reads,
    and --calib-cache gets them for the Q/DQ path too."""
    from tests.precision.models import residual_cnn

    from trtforge.backends.tensorrt.calibrator import trtforge_ranges
    from trtforge.precision.cache import CalibrationCache

    data, cache = tmp_path / "calib.npz", tmp_path / "m.cache"
    np.savez(data, x=np.random.default_rng(0).standard_normal((16, 3, 8, 8)).astype(np.float32))
    model = residual_cnn(channels=4, size=8)
    text = trtforge_ranges(CalibrationConfig(data=data, method=method, cache=cache), model, "c" * 64)
    assert text is not None
    handed = CalibrationCache.from_text(text)
    assert handed.header == "TRT-100300-EntropyCalibration2"
    assert handed.scales == read_cache(cache).scales and "x" in handed.scales  # the same ranges, written once
    facts = read_facts(cache)
    assert facts is not None and facts.method == str(method)
    feed = _CalibrationFeed(CalibrationConfig(cache=cache, method=method), INPUTS, 4, "c" * 64)
    feed.computed = text
    assert feed.read_calibration_cache() == text.encode("ascii")
    assert trtforge_ranges(CalibrationConfig(data=data, method=CalibMethod.ENTROPY), model, "c" * 64) is None
