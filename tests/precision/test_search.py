"""The budgeted search's steps: border Q/DQ on ONNX Runtime CPU, the cumulative step, pruning, and the
INT8 share by compute; on small models built in code where each step is needed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.precision.outlier_models import (
    SPREAD_UNITS,
    WEIGHT_UNIT,
    dead_weight_model,
    inputs,
    spread_fp16_model,
)
from trtforge.config import BuildConfig, CalibMethod, CalibrationConfig, Precision
from trtforge.precision.mixed import (
    Evaluator,
    UnitError,
    apply_budget,
    compute_fraction,
    cosine,
    node_macs,
    prepare_half,
    rank,
    search,
)
from trtforge.precision.quantize import TENSORRT_FLAVOUR, cpu_flavour, openvino_flavour


def _int8_budget(tmp_path: Path, backend: str = "onnxruntime") -> BuildConfig:
    calib = CalibrationConfig(data=inputs(tmp_path / "c.npz", 32, 1), method=CalibMethod.MINMAX, num=32)
    return BuildConfig(
        precision=Precision.INT8,
        backend=backend,
        calibration=calib,
        max_accuracy_drop=0.01,
        metric="cosine",
        validation=inputs(tmp_path / "v.npz", 32, 2),
        drop_slow_units=False,
    )


def _fused_kernels(model: onnx.ModelProto, tmp_path: Path) -> list[str]:
    """The op types ONNX Runtime CPU runs ``model`` with, after its own graph optimizations."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]


def test_a_float_culprit_reads_int8_input_so_its_producer_stays_an_integer_kernel(tmp_path: Path) -> None:
    """conv_w's own weights are the problem (one huge weight per channel on a dead input channel): kept
    FP32, it still reads conv_a's output through a Q/DQ pair, so ONNX Runtime fuses conv_a into a
    QLinearConv instead of taking it float too (the old rule: its only reader is float, so unfusable)."""
    model = onnx.load(str(dead_weight_model(tmp_path / "dead.onnx")))
    mixed, facts = apply_budget(model, _int8_budget(tmp_path), cpu_flavour())
    record = facts["mixed"]
    assert record["error"]["int8"] > 0.5 and record["error"]["mixed"] <= 0.01
    [kept] = record["kept_float"]
    assert kept["name"] == WEIGHT_UNIT and kept["with"] == [] and kept["reads_int8_input"] is True
    assert any(t["step"] == "border" and t["kept"] for t in record["tried"])
    assert _fused_kernels(mixed, tmp_path).count("QLinearConv") == 2  # conv_a and conv_c; conv_w float
    macs = node_macs(model)
    share = 1 - macs[WEIGHT_UNIT] / sum(macs.values())
    assert record["int8_compute_fraction"] == round(share, 4) and share > 0.5
    facts["mixed"]["latency_is_target"] = False  # the table, not the timing, is under test here
    from trtforge.precision.mixed import render_mixed

    assert "reads its input through the Q/DQ of its INT8 producer" in render_mixed(record)
    assert f"INT8 share of the mix: {share:.0%} of the Conv/Gemm/MatMul" in render_mixed(record)


def test_a_culprit_whose_input_is_the_problem_still_takes_its_producer_float(tmp_path: Path) -> None:
    """The outlier-channel model: conv_b's quantized input is what fails, so the Q/DQ at its border is
    tried and refused (over the budget), and conv_a goes float with it as before."""
    from tests.precision.outlier_models import OUTLIER_UNIT, outlier_channel_model

    model = onnx.load(str(outlier_channel_model(tmp_path / "outlier.onnx")))
    _, facts = apply_budget(model, _int8_budget(tmp_path), cpu_flavour())
    [kept] = facts["mixed"]["kept_float"]
    assert kept["name"] == OUTLIER_UNIT and kept["with"] == ["model/conv_a/Conv2D"] and not kept["reads_int8_input"]
    assert [t["kept"] for t in facts["mixed"]["tried"] if t["step"] == "border"] == [False]


@pytest.mark.parametrize("backend", ["tensorrt-rtx", "openvino"])
def test_tensorrt_placement_needs_no_border(tmp_path: Path, backend: str) -> None:
    """TensorRT and OpenVINO (same placement) put no Q after a Conv: a float reader never takes its
    producer along, so nothing is tried at the border."""
    model = onnx.load(str(dead_weight_model(tmp_path / "dead.onnx")))
    flavour = TENSORRT_FLAVOUR if backend == "tensorrt-rtx" else openvino_flavour()
    _, facts = apply_budget(model, _int8_budget(tmp_path, backend), flavour)
    [kept] = facts["mixed"]["kept_float"]
    assert kept["name"] == WEIGHT_UNIT and kept["with"] == [] and not kept["reads_int8_input"]
    assert not any(t["step"] == "border" for t in facts["mixed"]["tried"])


def _spread(tmp_path: Path) -> tuple[Evaluator, object, object]:
    model = onnx.load(str(spread_fp16_model(tmp_path / "spread.onnx")))
    prepared = prepare_half(model)
    evaluator = Evaluator(model, dict(np.load(inputs(tmp_path / "v.npz", 32, 2))), cosine)
    return evaluator, prepared, rank(prepared, evaluator, "cosine", progress=False)


def test_an_error_spread_over_units_falls_in_the_cumulative_step(tmp_path: Path) -> None:
    """Two identical FP16 branches, one output each: keeping either alone FP32 leaves the other output
    as bad (no gain, the greedy step keeps neither); together they meet the budget."""
    evaluator, prepared, ranking = _spread(tmp_path)
    assert ranking.all_int8 > 0.01  # all-FP16 fails a budget of 0.001
    found = search(prepared, evaluator, ranking, 0.001, max_float=2)  # type: ignore[arg-type]
    alone = [t for t in found.tries if t.step == "alone"]
    assert [t.unit.name for t in alone[:2]] == list(SPREAD_UNITS) and not any(t.kept for t in alone)
    assert found.error <= 0.001 and {u.name for u in found.mix.chosen} == set(SPREAD_UNITS)
    assert [t.step for t in found.tries if t.kept] == ["cumulative", "cumulative"]
    assert compute_fraction(prepared, found.mix.floating) < 0.5  # type: ignore[arg-type]


def test_pruning_puts_back_a_unit_kept_needlessly(tmp_path: Path) -> None:
    """A ranking that puts the harmless stem first (as a one-at-a-time estimate can mislead when errors
    interact): the cumulative step keeps it FP32 on the way; once the budget holds, pruning puts it back
    to FP16 and the budget still holds."""
    evaluator, prepared, ranking = _spread(tmp_path)
    stem = next(e for e in ranking.errors if e.unit.name == "model/stem/Conv2D")
    misled = tuple(UnitError(e.unit, 1.0 if e is stem else e.error) for e in ranking.errors)
    found = search(prepared, evaluator, dataclasses.replace(ranking, errors=misled), 0.001, max_float=3)  # type: ignore[arg-type]
    assert any(t.unit is stem.unit and t.step == "cumulative" and t.kept for t in found.tries)
    assert any(t.unit is stem.unit and t.step == "pruned" and t.kept for t in found.tries)
    assert stem.unit not in found.mix.floating and found.error <= 0.001
    assert {u.name for u in found.mix.chosen} == set(SPREAD_UNITS)


def test_pruning_never_trades_a_faithful_mix_for_one_the_self_check_refuses(tmp_path: Path) -> None:
    """Outlier-channel model, top1 budget of 5 points: with conv_b reading its crushed input through a
    Q/DQ pair, few of 32 answers change (top1 holds) but the logits drift (cosine 0.75): the border is
    refused, conv_a goes float with conv_b, and the self-check passes."""
    from tests.precision.outlier_models import OUTLIER_UNIT, outlier_channel_model

    model = onnx.load(str(outlier_channel_model(tmp_path / "outlier.onnx")))
    config = dataclasses.replace(_int8_budget(tmp_path), max_accuracy_drop=5.0, metric="top1")
    _, facts = apply_budget(model, config, cpu_flavour())
    [kept] = facts["mixed"]["kept_float"]
    assert kept["name"] == OUTLIER_UNIT and kept["with"] == ["model/conv_a/Conv2D"]
    [border] = [t for t in facts["mixed"]["tried"] if t["step"] == "border"]
    assert border["error_after"] <= 5.0 and border["kept"] is False  # the metric alone would have taken it
    assert facts["calibration"]["check"]["passed"] is True


def test_fp16_digits_meets_a_budget_no_single_unit_meets(digits_onnx: Path, tmp_path: Path) -> None:
    """The trained digits CNN in FP16: its worst-case probability error (0.0012) is spread so that no
    unit kept FP32 alone lowers it (the old greedy search exited 1); the cumulative step meets 0.0008,
    and pruning then tries each kept unit back in FP16."""
    from tests.conftest import DIGITS, DIGITS_PREPROCESS, run_cli

    engine = tmp_path / "digits-fp16.onnx"
    proc = run_cli(
        "build",
        str(digits_onnx),
        "-o",
        str(engine),
        "--precision",
        "fp16",
        "--max-accuracy-drop",
        "0.0008",
        "--metric",
        "max-abs",
        "--val-data",
        str(DIGITS / "test"),
        "--val-num",
        "360",
        "--preprocess",
        DIGITS_PREPROCESS,
    )
    assert proc.returncode == 0, proc.stderr
    import json

    mixed = json.loads(Path(f"{engine}.json").read_text())["build"]["mixed"]
    assert not any(t["kept"] for t in mixed["tried"] if t["step"] == "alone")
    assert {u["step"] for u in mixed["kept_float"]} == {"cumulative"} and mixed["error"]["mixed"] <= 0.0008
    assert mixed["error"]["fp16"] > 0.001 and any(t["step"] == "pruned" for t in mixed["tried"])
    assert 0.5 < mixed["fp16_compute_fraction"] < 1.0


def test_a_mix_with_no_int8_compute_says_so() -> None:
    from trtforge.precision.mixed import render_mixed

    facts = {
        "metric": "max-abs",
        "budget": 0.2,
        "units": 3,
        "kept_float": [],
        "error": {"fp32": 0.0, "int8": 0.6, "mixed": 0.0},
        "latency_ms": {"fp32": 0.05, "int8": 0.05, "mixed": 0.05},
        "onnx_bytes": {"fp32": 1024, "int8": 512, "mixed": 1024},
        "latency_is_target": True,
        "latency_measured": "here",
        "int8_fraction": 0.5,
        "int8_compute_fraction": 0.0,
        "compute_macs": 1000,
    }
    assert "no Conv/Gemm/MatMul is left INT8 in this mix" in render_mixed(facts)
    assert "no Conv/Gemm/MatMul" not in render_mixed({**facts, "int8_compute_fraction": 0.4})
