"""The whole path on the digits sample, through the CLI, as `make demo` runs it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import DIGITS, DIGITS_PREPROCESS, run_cli

import trtforge
from trtforge.data.preprocess import Preprocess


def top1(engine: Path) -> float:
    preprocess = Preprocess.parse(DIGITS_PREPROCESS)
    runner = trtforge.load(engine)
    with open(DIGITS / "test" / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    x = np.stack([preprocess.load(DIGITS / "test" / r["file"]) for r in rows])
    labels = np.array([int(r["label"]) for r in rows])
    predictions = [np.argmax(runner.infer({"image": x[i : i + 1]})["output_0"]) for i in range(len(x))]
    return float((np.array(predictions) == labels).mean())


@pytest.fixture(scope="module")
def engines(digits_bs1: Path) -> dict[str, Path]:
    out = digits_bs1.parent
    fp32, int8 = out / "digits-fp32.engine", out / "digits-int8.engine"
    proc = run_cli("build", str(digits_bs1), "-o", str(fp32), "--precision", "fp32")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(
        "build",
        str(digits_bs1),
        "-o",
        str(int8),
        "--precision",
        "int8",
        "--calib-data",
        str(DIGITS / "calib"),
        "--preprocess",
        DIGITS_PREPROCESS,
    )
    assert proc.returncode == 0, proc.stderr
    assert "onnxruntime" not in proc.stderr, proc.stderr  # a failed internal probe is not the user's business
    return {"fp32": fp32, "int8": int8}


def test_reshape_fixes_batch_one(digits_bs1: Path) -> None:
    model = trtforge.reshape  # the API is importable lazily
    assert callable(model)
    from trtforge.graph.model import graph_inputs, graph_outputs, load

    m = load(digits_bs1)
    assert graph_inputs(m)[0].shape == (1, 1, 32, 32)
    assert graph_outputs(m)[0].shape == (1, 10)


def test_int8_top1_within_one_point_of_fp32(engines: dict[str, Path]) -> None:
    fp32, int8 = top1(engines["fp32"]), top1(engines["int8"])
    assert fp32 > 0.95, f"the sample model itself should be accurate, got {fp32:.3f}"
    assert fp32 - int8 <= 0.01, f"INT8 top-1 {int8:.4f} is more than 1 point below FP32 {fp32:.4f}"


def test_int8_engine_holds_qdq_and_records_calibration(engines: dict[str, Path]) -> None:
    import onnx

    model = onnx.load_from_string(engines["int8"].read_bytes())
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    manifest = json.loads(Path(f"{engines['int8']}.json").read_text())
    assert manifest["precision"] == "int8"
    assert manifest["calibration"]["samples"] == 284 and manifest["calibration"]["held_back_for_check"] == 16
    check = manifest["calibration"]["check"]  # the self-check on the 16 held-back images
    assert check["passed"] is True and check["held_back"] is True and check["outputs"][0]["worst_cosine"] > 0.9
    assert manifest["calibration"]["method"] == "mse"  # the default (README, issue 13)
    assert manifest["calibration"]["bias_correction"]["nodes"] >= 4  # every Conv/Gemm with a bias
    assert manifest["calibration"]["flavour"]["activation_type"] == "uint8"


def test_manifest_describes_the_engine(engines: dict[str, Path], digits_bs1: Path) -> None:
    from trtforge._files import sha256_file

    manifest = json.loads(Path(f"{engines['fp32']}.json").read_text())
    assert manifest["backend"] == "onnxruntime"
    assert manifest["source_sha256"] == sha256_file(digits_bs1)
    assert manifest["engine_sha256"] == sha256_file(engines["fp32"])
    assert manifest["inputs"] == [{"name": "image", "dtype": "float32", "shape": [1, 1, 32, 32]}]
    assert manifest["device"]["kind"] == "cpu"
    for key in ("format_version", "trtforge_version", "created", "backend_version", "build"):
        assert key in manifest


def test_bench_prints_trtexec_summary_and_writes_json(engines: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = run_cli(
        "bench", str(engines["fp32"]), "--duration", "0.2", "--iterations", "50", "--warmup", "20", "--json", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    assert "=== Performance summary ===" in proc.stdout
    assert "Throughput:" in proc.stdout and "percentile(99%)" in proc.stdout
    data = json.loads(out.read_text())
    assert data["queries"] >= 50
    assert data["settings"]["iterations"] == 50 and data["settings"]["warmup_ms"] == 20
    assert data["context"]["threads"] >= 1
    lat = data["latency_ms"]
    assert 0 < lat["min"] <= lat["median"] <= lat["max"]


def test_inspect_shows_io_of_model_and_engine(engines: dict[str, Path], digits_bs1: Path) -> None:
    proc = run_cli("inspect", str(digits_bs1))
    assert proc.returncode == 0 and "image: float32 1x1x32x32" in proc.stdout
    proc = run_cli("inspect", str(engines["int8"]))
    assert proc.returncode == 0 and "int8" in proc.stdout
