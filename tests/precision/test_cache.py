"""TensorRT's calibration cache text format, and trtforge's sidecar facts beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trtforge.errors import TrtforgeError
from trtforge.precision.cache import (
    CacheFacts,
    CalibrationCache,
    cache_ranges,
    mismatches,
    read_cache,
    read_facts,
    sidecar_path,
    write_cache,
    write_cache_with_facts,
)

# Lines in the forms TensorRT writes: tf2onnx names holding ':', numbered ONNX tensors, TensorRT's
# own unnamed layers, and a zero scale printed as a bare "0" (TensorRT prints hex without padding).
TRT_TEXT = """TRT-8401-EntropyCalibration2
input_1: 3c010a14
conv1/Relu:0: 3d8b4c2a
371: 3caa54fc
(Unnamed Layer* 64) [Shuffle]_output: 0
(Unnamed Layer* 85) [Shuffle]_output: 3b1d2336
"""


def test_known_tensorrt_cache_parses() -> None:
    cache = CalibrationCache.from_text(TRT_TEXT)
    assert cache.header == "TRT-8401-EntropyCalibration2" and cache.calibrator == "EntropyCalibration2"
    assert list(cache.scales) == [
        "input_1",
        "conv1/Relu:0",
        "371",
        "(Unnamed Layer* 64) [Shuffle]_output",
        "(Unnamed Layer* 85) [Shuffle]_output",
    ]
    assert cache.scales["(Unnamed Layer* 64) [Shuffle]_output"] == 0.0
    # 0x3c010a14 is the float32 0.0078748...: an input scaled to [-1, 1] has range 127 * scale ~ 1.0
    assert cache.dynamic_range("input_1") == pytest.approx(1.0, abs=1e-3)
    lo, hi = cache.ranges()["conv1/Relu:0"]
    assert lo == -hi and hi == pytest.approx(127 * np.float32(0.06801636), rel=1e-5)


def test_round_trip_keeps_ranges(tmp_path: Path) -> None:
    ranges = {"x": (-2.5, 3.0), "a:0": (0.0, 7.25), "tiny": (-1e-8, 1e-8)}
    cache = CalibrationCache.from_ranges("minmax", ranges)
    write_cache(tmp_path / "c.cache", cache)
    back = read_cache(tmp_path / "c.cache")
    assert back == cache and back.header.endswith("-MinMaxCalibration")
    for name, (lo, hi) in ranges.items():
        r = max(abs(lo), abs(hi))
        assert back.ranges()[name] == pytest.approx((-r, r), rel=1e-6)
    # TensorRT's unpadded "0" comes back as 8 digits, which TensorRT reads the same
    assert CalibrationCache.from_text(TRT_TEXT).to_text() == TRT_TEXT.replace("_output: 0\n", "_output: 00000000\n")


@pytest.mark.parametrize(
    "text, line",
    [
        ("", 1),
        ("EntropyCalibration2\nx: 3c010a14\n", 1),
        ("TRT-8601-EntropyCalibration2\nx 3c010a14\n", 2),
        ("TRT-8601-EntropyCalibration2\nx: 3c010a14\ny: 3c01zz14\n", 3),
        ("TRT-8601-MinMax\nx: 3c0100001\n", 2),
        ("TRT-8601-MinMax\nx: 3c01\ny:\n", 3),
        ("TRT-8601-MinMax\nx: 0x3c01\n", 2),
    ],
)
def test_malformed_cache_names_the_line(tmp_path: Path, text: str, line: int) -> None:
    (tmp_path / "bad.cache").write_text(text)
    with pytest.raises(TrtforgeError, match=f"line {line}"):
        read_cache(tmp_path / "bad.cache")


def _facts(**changes) -> CacheFacts:
    base = dict(
        model_sha256="a" * 64,
        method="entropy",
        samples=10,
        data="imgs",
        preprocess={"spec": "scale=1/255", "color": "rgb", "size": [8, 8], "scale": 1 / 255},
        ranges={"x": (0.0, 2.0)},
    )
    base.update(changes)
    return CacheFacts(**base)


def test_sidecar_round_trip_and_exact_ranges(tmp_path: Path) -> None:
    path = tmp_path / "m.cache"
    facts = _facts()
    write_cache_with_facts(path, CalibrationCache.from_ranges("entropy", {"x": (0.0, 2.0)}), facts)
    assert sidecar_path(path).exists()
    back = read_facts(path)
    assert back == facts
    # the text keeps only the symmetric range; the sidecar restores (0, 2)
    assert read_cache(path).ranges()["x"][0] == pytest.approx(-2.0)
    assert cache_ranges(read_cache(path), back)["x"] == (0.0, 2.0)
    # a hand-edited cache no longer agrees with the sidecar: the cache's scale wins
    write_cache(path, CalibrationCache.from_ranges("entropy", {"x": (-5.0, 5.0)}))
    assert cache_ranges(read_cache(path), back)["x"] == pytest.approx((-5.0, 5.0))


def test_no_sidecar_reads_as_none(tmp_path: Path) -> None:
    (tmp_path / "trt.cache").write_text(TRT_TEXT)
    assert read_facts(tmp_path / "trt.cache") is None


def test_mismatches_name_model_and_preprocessing() -> None:
    facts = _facts()
    assert mismatches(facts, "a" * 64, facts.preprocess) == []
    assert mismatches(facts, "a" * 64, None) == []  # no preprocessing given now: nothing to compare
    why = mismatches(facts, "b" * 64, {**facts.preprocess, "spec": "other", "color": "bgr"})
    assert len(why) == 2 and "another model" in why[0] and "other preprocessing" in why[1]
    # a size left to the model's input matches the size it resolved to
    assert mismatches(facts, "a" * 64, {**facts.preprocess, "size": None}) == []
    # the same preprocessing spelled differently matches
    assert mismatches(facts, "a" * 64, {**facts.preprocess, "spec": "scale=0.00392156862745098"}) == []
