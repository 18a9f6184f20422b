"""Sensitivity ranking and the budgeted INT8 build, on models where plain INT8 measurably fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.conftest import run_cli
from tests.precision.outlier_models import OUTLIER_UNIT, inputs, outlier_channel_model
from trtforge.config import BuildConfig, CalibMethod, CalibrationConfig, Precision
from trtforge.errors import TrtforgeError
from trtforge.precision.mixed import Evaluator, cosine, layer_of, prepare_int8, sensitivity, units
from trtforge.precision.quantize import TENSORRT_FLAVOUR, cpu_flavour


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
    proc, manifest = _budget_build(
        model,
        engine,
        *_budget_args(calib, val, "0.01", "cosine"),
        "--keep-slow-int8",  # the accuracy search alone (test_slow_int8_units_go_float pins the speed step)
    )
    assert proc.returncode == 0, proc.stderr
    mixed = manifest["build"]["mixed"]
    assert mixed["kept_precision"] == "fp32" and "no fast FP16" in mixed["kept_precision_why"]  # a CPU target
    assert mixed["speed"] == {"measured": False, "how": "not checked (--keep-slow-int8)", "dropped": []}
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
    proc, _ = _budget_build(model, engine, *_budget_args(calib, val, "0", "max-abs"))
    assert proc.returncode == 1
    assert "misses --max-accuracy-drop 0" in proc.stderr and OUTLIER_UNIT in proc.stderr
    assert not engine.exists() and not Path(f"{engine}.json").exists()


def test_budget_needs_validation_data_and_int8() -> None:
    with pytest.raises(TrtforgeError, match="--val-data"):
        BuildConfig(precision=Precision.INT8, calibration=CalibrationConfig(data=Path("x.npz")), max_accuracy_drop=1)
    with pytest.raises(TrtforgeError, match="fp32"):
        BuildConfig(precision=Precision.FP32, max_accuracy_drop=1, validation=Path("v.npz"))


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


def _budget_args(calib: Path, val: Path, budget: str, metric: str) -> list[str]:
    """An INT8 build on minmax ranges from ``calib``, within ``budget`` of ``metric`` on ``val``."""
    args = ["--precision", "int8", "--calib-data", str(calib), "--calib-method", "minmax"]
    return [*args, "--max-accuracy-drop", budget, "--metric", metric, "--val-data", str(val)]


def _budget_build(model: Path, engine: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    proc = run_cli("build", str(model), "-o", str(engine), *args)
    manifest = json.loads(Path(f"{engine}.json").read_text()) if Path(f"{engine}.json").exists() else {}
    return proc, manifest


def test_budgeted_int8_runs_the_self_check(outlier: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """A budget loose enough for plain INT8 (100 points of top-1) still gets the INT8 self-check: this
    INT8 model is far from FP32, so the build exits 1 unless --allow-inaccurate, which records the check."""
    model, calib, val = outlier
    args = [*_budget_args(calib, val, "100", "top1"), "--keep-slow-int8"]
    proc, _ = _budget_build(model, tmp_path / "refused.onnx", *args)
    assert proc.returncode == 1 and "INT8 self-check" in proc.stderr and "logits" in proc.stderr.splitlines()[-1]
    assert not (tmp_path / "refused.onnx").exists()
    proc, manifest = _budget_build(model, tmp_path / "kept.onnx", *args, "--allow-inaccurate")
    assert proc.returncode == 0 and "WARNING" in proc.stderr
    check = manifest["calibration"]["check"]
    assert check["passed"] is False and check["held_back"] is True
    assert manifest["build"]["mixed"]["kept_float"] == []  # the budget held: the check, not the search, warns


def test_fp16_budget_keeps_the_cancelling_unit_fp32(tmp_path: Path) -> None:
    from tests.precision.outlier_models import FP16_UNIT, fp16_cancellation_model

    model = fp16_cancellation_model(tmp_path / "offset.onnx")
    val = inputs(tmp_path / "val.npz", 32, 2)
    result = sensitivity(model, None, val, metric="cosine", precision="fp16")
    assert result.precision == "fp16" and result.ranked[0].unit.name == FP16_UNIT
    assert result.ranked[0].unit.nodes == (FP16_UNIT, "model/conv_offset/Sub")
    assert result.all_int8 > 0.005 and result.ranked[1].error < 1e-5  # all-FP16 fails; the others are harmless
    engine = tmp_path / "mixed-fp16.onnx"
    proc, manifest = _budget_build(
        model,
        engine,
        "--precision",
        "fp16",
        "--max-accuracy-drop",
        "0.001",
        "--metric",
        "cosine",
        "--val-data",
        str(val),
    )
    assert proc.returncode == 0, proc.stderr
    mixed, cast = manifest["build"]["mixed"], manifest["build"]["cast"]
    assert [u["name"] for u in mixed["kept_float"]] == [FP16_UNIT] and mixed["fp16_fraction"] > 0.7
    assert mixed["error"]["fp16"] > 0.005 and mixed["error"]["mixed"] <= 0.001
    assert set(cast["kept"]) == {FP16_UNIT, "model/conv_offset/Sub"}
    built = onnx.load(str(engine))
    types = {t.name: t.data_type for t in built.graph.initializer}
    assert types["wb"] == onnx.TensorProto.FLOAT and types["wc__fp16"] == onnx.TensorProto.FLOAT16
    from trtforge.build import load

    feeds = dict(np.load(val))
    assert cosine(load(engine).infer(feeds), Evaluator(onnx.load(str(model)), feeds, cosine).reference) <= 0.001


def test_fp16_sensitivity_cli(tmp_path: Path) -> None:
    from tests.precision.outlier_models import FP16_UNIT, fp16_cancellation_model

    model = fp16_cancellation_model(tmp_path / "offset.onnx")
    val = inputs(tmp_path / "val.npz", 16, 2)
    proc = run_cli("sensitivity", str(model), "--precision", "fp16", "--val-data", str(val), "--metric", "cosine")
    assert proc.returncode == 0, proc.stderr
    assert "(all FP16)" in proc.stdout and "simulated cast" in proc.stdout
    assert FP16_UNIT in next(line for line in proc.stdout.splitlines() if line.strip().startswith("1 "))


def test_kept_int8_units_go_fp16_on_tensorrt_targets(outlier: tuple[Path, Path, Path]) -> None:
    """TensorRT-family targets: the kept unit's nodes are cast to FP16 in the graph (its weights FP16,
    Casts at its borders); the unit that went along because its reader is float stays INT8 there."""
    from trtforge.precision.mixed import apply_budget

    model, calib, val = outlier
    config = BuildConfig(
        precision=Precision.INT8,
        backend="tensorrt-rtx",
        calibration=_calibration(calib),
        max_accuracy_drop=0.01,
        metric="cosine",
        validation=val,
    )
    mixed, facts = apply_budget(onnx.load(str(model)), config, TENSORRT_FLAVOUR)
    record = facts["mixed"]
    assert record["kept_precision"] == "fp16" and "tensorrt-rtx runs FP16" in record["kept_precision_why"]
    assert [u["name"] for u in record["kept_float"]] == [OUTLIER_UNIT] and record["error"]["mixed"] <= 0.01
    assert record["speed"]["measured"] is False and "placement rules" in record["speed"]["how"]
    conv = next(n for n in mixed.graph.node if n.name == OUTLIER_UNIT)
    half = {t.name for t in mixed.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16}
    assert conv.input[1] in half and conv.input[0].endswith("__fp16")  # FP16 weights, a Cast before it
    others = [n for n in mixed.graph.node if n.op_type == "Conv" and n.name != OUTLIER_UNIT]
    assert all(n.input[1] not in half for n in others)  # the rest stay INT8 (Q/DQ weights)
    assert facts["calibration"]["check"]["passed"] is True  # the self-check ran on the final graph


def test_slow_int8_units_go_float_on_the_cpu_target(tmp_path: Path) -> None:
    """A 1x1 Conv from 1 to 1 channel on a 128 x 128 map runs about 2x slower in INT8 than in float on
    ONNX Runtime CPU (the Q/DQ costs more than the convolution): the budgeted build drops it, measured."""
    from tests.precision.outlier_models import THIN_UNIT, thin_conv_model, thin_inputs

    model = thin_conv_model(tmp_path / "thin.onnx")
    args = ["--precision", "int8", "--calib-data", str(thin_inputs(tmp_path / "c.npz", 8, 1)), "--calib-method"]
    args += ["minmax", "--max-accuracy-drop", "0.05", "--metric", "cosine"]
    args += ["--val-data", str(thin_inputs(tmp_path / "v.npz", 4, 2))]
    proc, manifest = _budget_build(model, tmp_path / "fast.onnx", *args)
    assert proc.returncode == 0, proc.stderr
    speed = manifest["build"]["mixed"]["speed"]
    assert speed["measured"] is True
    dropped = {d["name"]: d for d in speed["dropped"]}
    assert THIN_UNIT in dropped and dropped[THIN_UNIT]["float_ms"] < dropped[THIN_UNIT]["int8_ms"]
    assert f"float for speed: {THIN_UNIT}" in proc.stderr
    proc, manifest = _budget_build(model, tmp_path / "asked.onnx", *args, "--keep-slow-int8")
    assert proc.returncode == 0 and manifest["build"]["mixed"]["speed"]["dropped"] == []


def test_library_names_from_the_issue() -> None:
    import trtforge.precision
    from trtforge.backends.base import get_backend
    from trtforge.precision import mixed

    assert trtforge.precision.sensitivity is mixed.sensitivity
    code = "import trtforge; print(trtforge.precision.sensitivity.__module__)"  # from the root alone
    env = {**os.environ, "PYTHONPATH": str(Path(trtforge.precision.__file__).parents[2])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.stdout.strip() == "trtforge.precision.mixed", proc.stderr
    config = BuildConfig(precision=Precision.INT8, calibration=CalibrationConfig(data=Path("c.npz")))
    for backend in ("onnxruntime", "openvino", "tensorrt-rtx"):
        assert mixed.flavour_for(backend) == get_backend(backend).quant_flavour(config)
    with pytest.raises(TrtforgeError, match="unknown backend"):
        mixed.flavour_for("nope")


@pytest.mark.parametrize(
    ("backend", "device", "kept"),
    [("tensorrt", "cuda", "fp16"), ("tensorrt-rtx", "cuda", "fp16"), ("onnxruntime", "cuda", "fp16")]
    + [("onnxruntime", "cpu", "fp32"), ("openvino", "cpu", "fp32")],
)
def test_kept_units_are_fp16_only_where_the_target_runs_fp16_fast(backend: str, device: str, kept: str) -> None:
    from trtforge.precision.mixed import kept_precision

    assert str(kept_precision(backend, device)[0]) == kept


def test_kept_units_stay_fp32_when_fp16_would_break_the_budget(tmp_path: Path) -> None:
    """conv_a's channel 0 scaled by 1e5: conv_b's input passes FP16's 65504, so the kept unit cannot be
    FP16 even on TensorRT; the build keeps it FP32 and says why."""
    from trtforge.precision.mixed import apply_budget

    model = outlier_channel_model(tmp_path / "huge.onnx", scale=1e5)
    config = BuildConfig(
        precision=Precision.INT8,
        backend="tensorrt-rtx",
        calibration=_calibration(inputs(tmp_path / "c.npz", 32, 1)),
        max_accuracy_drop=0.01,
        metric="cosine",
        validation=inputs(tmp_path / "v.npz", 32, 2),
    )
    mixed, facts = apply_budget(onnx.load(str(model)), config, TENSORRT_FLAVOUR)
    record = facts["mixed"]
    assert [u["name"] for u in record["kept_float"]] == [OUTLIER_UNIT] and record["error"]["mixed"] <= 0.01
    assert (
        record["kept_precision"] == "fp32"
        and "FP16 rounding of the kept units gave error" in record["kept_precision_why"]
    )
    assert not any(n.op_type == "Cast" for n in mixed.graph.node)
