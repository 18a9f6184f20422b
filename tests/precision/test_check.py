"""The INT8 self-check: per output, per sample, per field; a far-off model is refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.precision.models import conv_bn_dense, outlier_input
from trtforge.config import BuildConfig, CalibMethod, CalibrationConfig
from trtforge.errors import VerificationError
from trtforge.precision import apply as apply_module
from trtforge.precision.apply import apply
from trtforge.precision.check import Holdout, Thresholds, compare_output
from trtforge.precision.quantize import cpu_flavour


def test_an_all_zero_answer_never_passes() -> None:
    ref = np.random.default_rng(0).standard_normal((4, 10)).astype(np.float32)
    check = compare_output("y", ref, np.zeros_like(ref), Thresholds())
    assert not check.passed and check.worst_cosine == 0.0 and check.worst_error > Thresholds().max_error
    assert compare_output("y", ref, ref, Thresholds()).passed


def test_a_wiped_out_field_fails_though_the_whole_tensor_cosine_is_high() -> None:
    rng = np.random.default_rng(0)
    ref = np.concatenate([rng.uniform(0, 320, (4, 4, 100)), rng.uniform(0, 1, (4, 2, 100))], axis=1)
    got = ref.copy()
    got[:, 4:] = 0.0  # YOLO's scores after one Q/DQ scale shared with the boxes
    check = compare_output("preds", ref, got, Thresholds())
    assert check.worst_cosine > 0.99 and not check.passed
    assert check.field_axis == 1 and check.worst_field in (4, 5) and check.worst_error == pytest.approx(1.0, abs=0.02)


def test_a_confidently_changed_answer_fails_where_cosine_and_error_pass() -> None:
    ref = np.zeros((4, 10), np.float32)
    ref[:, 0], ref[:, 1] = 5.0, 3.5  # FP32 prefers class 0 by 30% of the sample's score range
    got = ref.copy()
    got[0, :2] = 3.6, 4.0  # INT8 answers class 1 on sample 0 (error 28% of range, cosine 0.975)
    check = compare_output("scores", ref, got, Thresholds())
    assert check.worst_cosine > Thresholds().min_cosine and check.worst_error < Thresholds().max_error
    assert not check.passed and check.top1_agreement == 0.75 and check.worst_flip == pytest.approx(0.3)


def test_a_near_tie_may_change_its_answer() -> None:
    ref = np.zeros((4, 10), np.float32)
    ref[:, 0], ref[:, 1] = 4.0, 3.9
    got = ref.copy()
    got[0, :2] = 3.9, 4.0
    check = compare_output("scores", ref, got, Thresholds())
    assert check.passed and check.top1_agreement == 0.75 and check.worst_flip == pytest.approx(0.025)
    assert compare_output("scores", ref, ref, Thresholds()).worst_flip is None
    assert compare_output("map", ref[:, None, :, None], got[:, None, :, None], Thresholds()).top1_agreement is None


def _outlier_data(path: Path, n: int = 40) -> Path:
    x = np.random.default_rng(0).standard_normal((n, 8)).astype(np.float32)
    x[:, 0] *= 1000.0  # one feature with a huge range: a per-tensor scale crushes the rest
    np.save(path, x)
    return path


def _config(data: Path, **kw) -> BuildConfig:
    return BuildConfig(precision="int8", calibration=CalibrationConfig(data=data, method=CalibMethod.MINMAX), **kw)


def test_a_far_off_int8_model_is_refused_naming_output_and_node(tmp_path: Path) -> None:
    data = _outlier_data(tmp_path / "x.npy")
    with pytest.raises(
        VerificationError, match=r"far from FP32 on 8 samples.*: y \(worst cosine.*suspected nodes: proj"
    ):
        apply(outlier_input(), _config(data), cpu_flavour())
    _, facts = apply(outlier_input(), _config(data, allow_inaccurate=True), cpu_flavour())
    check = facts["calibration"]["check"]
    assert check["passed"] is False and check["allowed_inaccurate"] is True and check["held_back"] is True
    assert check["outputs"][0]["name"] == "y" and check["suspects"][0]["nodes"] == ["proj"]
    assert facts["calibration"]["samples"] == 32 and facts["calibration"]["held_back_for_check"] == 8


def test_a_faithful_model_passes_and_records_the_check(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((40, 3, 4, 4)).astype(np.float32))
    _, facts = apply(conv_bn_dense(), _config(tmp_path / "x.npy"), cpu_flavour())
    check = facts["calibration"]["check"]
    assert check["passed"] is True and check["samples"] == 8 and check["outputs"][0]["worst_cosine"] > 0.99


def test_few_samples_are_checked_and_also_calibrate() -> None:
    holdout = Holdout()
    batches = list(holdout.split(iter([{"x": np.arange(3.0)}]), total=3))
    assert not holdout.held_back and holdout.count() == 3 and len(batches) == 1
    holdout = Holdout()
    rest = list(holdout.split(iter([{"x": np.arange(8.0)}, {"x": np.arange(8.0, 40.0)}]), total=40))
    assert holdout.held_back and holdout.count() == 8 and sum(len(b["x"]) for b in rest) == 32


def test_calibration_says_where_it_is_when_stderr_is_not_a_terminal(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(apply_module, "_PROGRESS_EVERY_S", 0.0)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((40, 3, 4, 4)).astype(np.float32))
    config = BuildConfig(precision="int8", calibration=CalibrationConfig(data=tmp_path / "x.npy", batch_size=8))
    apply(conv_bn_dense(), config, cpu_flavour())
    assert "calibrating (mse): 32/40 samples" in capsys.readouterr().err


def test_cli_exits_1_unless_allow_inaccurate(tmp_path: Path) -> None:
    import onnx

    onnx.save(outlier_input(), str(tmp_path / "m.onnx"))
    data = _outlier_data(tmp_path / "x.npy")
    args = (
        "build",
        str(tmp_path / "m.onnx"),
        "--precision",
        "int8",
        "--calib-data",
        str(data),
        "--calib-method",
        "minmax",
    )
    bad = run_cli(*args, "-o", str(tmp_path / "a.onnx"))
    assert bad.returncode == 1 and "suspected nodes: proj" in bad.stderr and "--allow-inaccurate" in bad.stderr
    assert not (tmp_path / "a.onnx").exists()
    ok = run_cli(*args, "-o", str(tmp_path / "b.onnx"), "--allow-inaccurate")
    assert ok.returncode == 0, ok.stderr
    assert "FAIL" in ok.stderr and "WARNING" in ok.stderr
    manifest = json.loads((tmp_path / "b.onnx.json").read_text())
    assert manifest["calibration"]["check"]["allowed_inaccurate"] is True


def test_a_static_batch_model_is_checked_on_a_held_back_sample_fewer_than_its_batch(tmp_path: Path) -> None:
    """8 samples hold back 1; a model of static batch 2 runs it padded to a whole batch (found on the H200)."""
    import onnx

    from tests.precision.models import residual_cnn
    from trtforge.build import build
    from trtforge.config import BuildConfig, CalibrationConfig

    model = tmp_path / "b2.onnx"
    onnx.save(residual_cnn(batch=2), model)
    data = tmp_path / "calib.npz"
    np.savez(data, x=np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32))
    calibration = CalibrationConfig(data=data, method="minmax", num=8, batch_size=2)
    manifest = build(
        model, tmp_path / "b2.engine", BuildConfig(precision="int8", calibration=calibration, allow_inaccurate=True)
    )
    check = manifest.calibration["check"]
    assert check["samples"] >= 1


def _gap_model(folder: Path) -> tuple[Path, Path]:
    """GlobalAveragePool of a checkerboard (mean ~1e-5 of its range) into a MatMul: the pool's output
    range is ~1e-6 of its input's, which ONNX Runtime's fused QLinearGlobalAveragePool refuses (trtforge's
    ONNX Runtime placement widens that range)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32), "w")
    axes = numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes")
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["g"]),
        helper.make_node("Squeeze", ["g", "axes"], ["f"]),
        helper.make_node("MatMul", ["f", "w"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph(nodes, "gap", [x], [y], [w, axes])
    model = folder / "gap.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    board = np.where(np.indices((8, 8)).sum(0) % 2, 1.0, -1.0 + 1e-5).astype(np.float32)
    np.savez(folder / "calib.npz", x=np.broadcast_to(board, (8, 4, 8, 8)).copy())
    return model, folder / "calib.npz"


def test_another_backends_flavour_is_checked_as_written_not_with_onnxruntimes_fused_kernels(tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    model, calib = _gap_model(tmp_path)
    common = ("--precision", "int8", "--calib-data", str(calib), "--calib-method", "minmax")
    proc = run_cli("build", str(model), "-o", str(tmp_path / "m.ov"), "--backend", "openvino", *common)
    assert proc.returncode == 0, proc.stderr  # was a traceback from QLinearGlobalAveragePool
    proc = run_cli("build", str(model), "-o", str(tmp_path / "m.engine"), *common)
    # ONNX Runtime's placement widens the pool's output range to what its QLinearGlobalAveragePool takes, so
    # the model runs; the input's INT8 step (2/255) loses the checkerboard's 1e-5 offset, and the self-check
    # refuses the engine (before the widening: "ONNX Runtime cannot run the INT8 model", exit 2)
    assert proc.returncode == 1 and "the INT8 model is far from FP32" in proc.stderr, proc.stderr
    assert not (tmp_path / "m.engine").exists()
