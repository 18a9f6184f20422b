"""Sensitivity ranking and the budgeted INT8 build, on models where plain INT8 measurably fails."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.conftest import run_cli
from tests.precision.outlier_models import OUTLIER_UNIT, inputs, outlier_channel_model
from trtforge.config import BuildConfig, CalibMethod, CalibrationConfig, Precision
from trtforge.errors import TrtforgeError
from trtforge.precision.quantize import TENSORRT_FLAVOUR, cpu_flavour
from trtforge.sensitivity import Evaluator, cosine, layer_of, prepare_int8, sensitivity, units


@pytest.fixture(scope="module")
def outlier(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("outlier")
    return (
        outlier_channel_model(folder / "model.onnx"),
        inputs(folder / "calib.npz", 32, 1),
        inputs(folder / "val.npz", 32, 2),
    )


def _calibration(path: Path) -> CalibrationConfig:
    return CalibrationConfig(data=path, method=CalibMethod.MINMAX, num=32)


@pytest.mark.parametrize("backend", ["onnxruntime", "tensorrt"])
def test_ranking_names_the_conv_reading_the_outlier_channel_first(
    outlier: tuple[Path, Path, Path], backend: str
) -> None:
    model, calib, val = outlier
    result = sensitivity(model, _calibration(calib), val, backend=backend, metric="cosine")
    first, second = result.ranked[:2]
    assert first.unit.name == OUTLIER_UNIT and first.unit.layer == "conv_b"
    assert first.error > 0.5 and result.all_int8 > 0.5  # plain INT8 measurably fails
    assert second.error < 0.01  # every other unit alone is harmless
    assert first.unit.nodes == (OUTLIER_UNIT, "model/conv_b/Relu")  # the fused ReLU is part of the unit
    assert json.loads(json.dumps(result.to_json()))["ranked"][0]["name"] == OUTLIER_UNIT


def test_units_follow_the_flavour(outlier: tuple[Path, Path, Path]) -> None:
    model = onnx.load(str(outlier[0]))
    trt = [u.op_type for u in units(model, TENSORRT_FLAVOUR)]
    ort = [u.op_type for u in units(model, cpu_flavour())]
    assert "Flatten" not in trt and "Flatten" in ort  # TensorRT puts no Q/DQ around a reshape
    assert trt.count("Conv") == 3 and all(u.nodes[0] == u.name for u in units(model, TENSORRT_FLAVOUR))


def test_a_float_node_after_a_quantized_conv_reads_the_relu_output(outlier: tuple[Path, Path, Path]) -> None:
    """ONNX Runtime's placement drops the ReLU before a Q; a float reader must not see pre-ReLU values."""
    model, calib, val = outlier
    prepared = prepare_int8(onnx.load(str(model)), _calibration(calib), cpu_flavour())
    conv_c = next(u for u in prepared.units if u.layer == "conv_c")
    only_c = prepared.quantized(only=conv_c)  # conv_c INT8, the pool after it float
    assert [n.op_type for n in only_c.graph.node].count("Relu") == 3
    evaluator = Evaluator(onnx.load(str(model)), dict(np.load(val)), cosine)
    assert evaluator.error(only_c) < 1e-3


def test_layer_names_from_converters() -> None:
    assert layer_of("model/conv2d_1/BiasAdd") == "conv2d_1"
    assert layer_of("/layer1/layer1.0/conv1/Conv") == "conv1"
    assert layer_of("sequential/dense/MatMul/MatMulAddFusion") == "dense"
    assert layer_of("Conv_12") is None


def test_budgeted_build_keeps_the_culprit_float_and_meets_the_budget(
    outlier: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    model, calib, val = outlier
    engine = tmp_path / "mixed.onnx"
    proc = run_cli(
        "build",
        str(model),
        "-o",
        str(engine),
        "--precision",
        "int8",
        "--calib-data",
        str(calib),
        "--calib-method",
        "minmax",
        "--max-accuracy-drop",
        "0.01",
        "--metric",
        "cosine",
        "--val-data",
        str(val),
    )
    assert proc.returncode == 0, proc.stderr
    mixed = json.loads(Path(f"{engine}.json").read_text())["build"]["mixed"]
    assert [u["name"] for u in mixed["kept_float"]] == [OUTLIER_UNIT]
    # conv_a's only reader is now float: ONNX Runtime could not fuse it, so it goes float with conv_b
    assert mixed["kept_float"][0]["with"] == ["model/conv_a/Conv2D"]
    assert mixed["error"]["int8"] > 0.5 and mixed["error"]["mixed"] <= 0.01
    assert mixed["kept_float"][0]["gain"] > 0.5 and mixed["int8_fraction"] > 0.5
    assert set(mixed["latency_ms"]) == set(mixed["onnx_bytes"]) == {"fp32", "int8", "mixed"}
    assert "mixed precision: 2 unit(s) kept FP32" in proc.stdout
    # the engine itself (not only the search's copy) is within the budget
    from trtforge.build import load

    feeds = dict(np.load(val))
    reference = Evaluator(onnx.load(str(model)), feeds, cosine).reference
    assert cosine(load(engine).infer(feeds), reference) <= 0.01


def test_budget_out_of_reach_exits_1_with_the_table(outlier: tuple[Path, Path, Path], tmp_path: Path) -> None:
    model, calib, val = outlier
    engine = tmp_path / "never.onnx"
    proc = run_cli(
        "build",
        str(model),
        "-o",
        str(engine),
        "--precision",
        "int8",
        "--calib-data",
        str(calib),
        "--calib-method",
        "minmax",
        "--max-accuracy-drop",
        "0",
        "--metric",
        "max-abs",
        "--val-data",
        str(val),
    )
    assert proc.returncode == 1
    assert "misses --max-accuracy-drop 0" in proc.stderr and OUTLIER_UNIT in proc.stderr
    assert not engine.exists() and not Path(f"{engine}.json").exists()


def test_budget_needs_validation_data_and_int8() -> None:
    with pytest.raises(TrtforgeError, match="--val-data"):
        BuildConfig(precision=Precision.INT8, calibration=CalibrationConfig(data=Path("x.npz")), max_accuracy_drop=1)
    with pytest.raises(TrtforgeError, match="INT8"):
        BuildConfig(precision=Precision.FP16, max_accuracy_drop=1, validation=Path("v.npz"))


def test_sensitivity_cli_writes_json_and_plot(outlier: tuple[Path, Path, Path], tmp_path: Path) -> None:
    model, calib, val = outlier
    out, png = tmp_path / "s.json", tmp_path / "s.png"
    proc = run_cli(
        "sensitivity",
        str(model),
        "--calib-data",
        str(calib),
        "--calib-method",
        "minmax",
        "--val-data",
        str(val),
        "--metric",
        "top1",
        "--json",
        str(out),
        "--plot",
        str(png),
    )
    assert proc.returncode == 0, proc.stderr
    first_row = next(line for line in proc.stdout.splitlines() if line.strip().startswith("1 "))
    assert OUTLIER_UNIT in first_row and "conv_b" in first_row
    assert json.loads(out.read_text())["ranked"][0]["name"] == OUTLIER_UNIT
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_sensitivity_cli_custom_metric_and_bad_metric(outlier: tuple[Path, Path, Path], tmp_path: Path) -> None:
    model, calib, val = outlier
    metric = tmp_path / "m.py"
    metric.write_text(
        "import numpy as np\ndef worst(out, ref):\n    return float(np.abs(out['logits'] - ref['logits']).max())\n"
    )
    proc = run_cli(
        "sensitivity",
        str(model),
        "--calib-data",
        str(calib),
        "--calib-method",
        "minmax",
        "--val-data",
        str(val),
        "--metric",
        f"{metric}:worst",
    )
    assert proc.returncode == 0, proc.stderr
    assert OUTLIER_UNIT in next(line for line in proc.stdout.splitlines() if line.strip().startswith("1 "))
    bad = run_cli("sensitivity", str(model), "--calib-data", str(calib), "--val-data", str(val), "--metric", "nope")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "top1" in bad.stderr


@pytest.mark.parametrize("backend", ["onnxruntime", "tensorrt"])
def test_ranking_names_the_layer_fed_by_an_outlier_input(tmp_path: Path, backend: str) -> None:
    from tests.precision.outlier_models import OUTLIER_INPUT_UNIT, outlier_input_model, outlier_inputs

    model = outlier_input_model(tmp_path / "mlp.onnx")
    calibration = _calibration(outlier_inputs(tmp_path / "calib.npz", 64, 1))
    result = sensitivity(
        model, calibration, outlier_inputs(tmp_path / "val.npz", 64, 2), backend=backend, metric="top1"
    )
    assert result.all_int8 > 20  # plain INT8 changes over a fifth of the answers
    assert result.ranked[0].unit.name == OUTLIER_INPUT_UNIT and result.ranked[0].unit.layer == "dense_1"
    assert result.ranked[1].error < result.ranked[0].error / 4


def test_plain_build_excluding_a_reader_of_a_quantized_relu_stays_faithful(tmp_path: Path) -> None:
    """--exclude-nodes on the pool after a quantized Conv+ReLU: before the fix the pool read the
    Conv's output before the ReLU (cosine error 0.036 against 2e-5 without the exclusion)."""
    from trtforge.build import build

    model = outlier_channel_model(tmp_path / "plain.onnx", scale=1.0)
    calibration = _calibration(inputs(tmp_path / "calib.npz", 32, 1))
    val = dict(np.load(inputs(tmp_path / "val.npz", 32, 2)))
    build(
        model,
        tmp_path / "e.onnx",
        BuildConfig(precision=Precision.INT8, calibration=calibration, exclude_nodes=("model/pool/Mean",)),
    )
    assert Evaluator(onnx.load(str(model)), val, cosine).error(onnx.load(str(tmp_path / "e.onnx"))) < 1e-3
