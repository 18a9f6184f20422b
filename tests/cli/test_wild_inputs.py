"""run / compare / bench on a model whose inputs are not a batch of images (issue 15, class 3).

Like silero-vad: x [N, 4], a state [2, N, 3] batched on axis 1, and a scalar ``sr`` that picks
an If branch.  Nothing may split the state along axis 0 or the scalar at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from tests.conftest import run_cli, run_cli_subprocess
from tests.graph.wild_models import stateful


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wild")
    onnx.save(stateful(), folder / "vad.onnx")
    done = run_cli("reshape", str(folder / "vad.onnx"), "-o", str(folder / "vad-b1.onnx"), "--batch", "1")
    assert done.returncode == 0, done.stderr
    done = run_cli("build", str(folder / "vad-b1.onnx"), "-o", str(folder / "vad.engine"), "--precision", "fp32")
    assert done.returncode == 0, done.stderr
    return folder / "vad.engine"


def _samples(folder: Path, sr: int = 16000) -> Path:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    state = np.arange(18, dtype=np.float32).reshape(2, 3, 3)  # three samples along axis 1
    np.savez(folder / "samples.npz", x=x, state=state, sr=np.array(sr, np.int64))
    return folder / "samples.npz"


def test_run_cuts_the_state_on_its_batch_axis_and_keeps_the_scalar(engine: Path) -> None:
    out = engine.parent / "out.npz"
    done = run_cli("run", str(engine), "--inputs", str(_samples(engine.parent)), "-o", str(out))
    assert done.returncode == 0, done.stderr
    got = np.load(out)
    np.testing.assert_allclose(got["y"][:, 0], 2 * np.arange(12).reshape(3, 4).sum(1))  # the sr == 16000 branch
    np.testing.assert_allclose(got["stateN"], np.arange(18).reshape(2, 3, 3) + 1)


def test_compare_feeds_both_sides_the_same_samples(engine: Path) -> None:
    done = run_cli("compare", str(engine), str(engine.parent / "vad.onnx"), "--inputs", str(_samples(engine.parent)))
    assert done.returncode == 0, done.stderr
    assert "top-1" not in done.stdout  # regression outputs, no classes


def test_bench_takes_fixed_values_for_some_inputs_and_random_for_the_rest(engine: Path) -> None:
    np.savez(engine.parent / "sr.npz", sr=np.array(16000, np.int64))
    done = run_cli(
        "bench",
        str(engine),
        "--inputs",
        str(engine.parent / "sr.npz"),
        "--duration",
        "0.05",
        "--warmup",
        "5",
        "--iterations",
        "3",
        "--no-progress",
    )
    assert done.returncode == 0, done.stderr
    assert "x, state: not in" in done.stdout + done.stderr


def test_a_cosine_next_to_an_all_zero_output_says_so() -> None:
    from trtforge.compare import Thresholds, output_metrics

    zero, ones = np.zeros((2, 3)), np.ones((2, 3))
    assert output_metrics("o", "o", zero, ones, Thresholds()).cosine_text().endswith("(engine all zero)")
    assert output_metrics("o", "o", zero, zero, Thresholds()).cosine_text() == "n/a / n/a (both all zero)"
    assert output_metrics("o", "o", ones, ones, Thresholds()).cosine_text() == "1.000000 / 1.000000"


def test_fp16_says_the_if_subgraphs_stay_fp32_and_checks_on_the_tested_branch(engine: Path) -> None:
    out = engine.parent / "vad-fp16.engine"
    done = run_cli("build", str(engine.parent / "vad-b1.onnx"), "-o", str(out), "--precision", "fp16")
    assert done.returncode == 0, done.stderr
    line = next(text for text in done.stdout.splitlines() if text.startswith("cast to"))
    assert "checked on seeded random inputs in [-1, 1); sr=16000; 1 node(s) kept in FP32: If_1" in line
    kept = json.loads(Path(f"{out}.json").read_text())["build"]["cast"]["kept"]
    assert "stay FP32 (subgraphs are not cast)" in kept["If_1"] and len(kept) == 1
    assert "If with subgraphs" in done.stderr


def test_agreement_is_chosen_by_output_kind() -> None:
    from trtforge.compare import accuracy

    rng = np.random.default_rng(0)
    boxes = [[rng.uniform(0, 1, (1, 16, 4))] for _ in range(6)]  # a detector's regression output
    near = [[b[0] + 1e-4] for b in boxes]  # numerically close, argmax flips
    auto = accuracy(near, boxes, None, ["boxes"])
    assert auto["agreement"] == 1.0 and auto["agreement[boxes]"] == 1.0 and auto["top1_agreement"] is None
    logits = [[rng.normal(0, 1, (1, 5))] for _ in range(6)]
    flipped = [[-scores[0]] for scores in logits]
    assert accuracy(flipped, logits, None, ["logits"])["agreement"] == 0.0  # class scores: top-1
    forced = accuracy(near, boxes, None, metric="top1")  # the old measure, when asked for
    assert forced["agreement"] == forced["top1_agreement"] is not None and "agreement[boxes]" not in forced


def test_deploy_judges_a_regression_model_by_cosine(tmp_path: Path, engine: Path) -> None:
    x = np.random.default_rng(1).uniform(-1, 1, (4, 4)).astype(np.float32)
    np.savez(tmp_path / "val.npz", x=x, state=np.zeros((2, 4, 3), np.float32), sr=np.array(16000, np.int64))
    done = run_cli(
        "deploy",
        str(engine.parent / "vad-b1.onnx"),
        "-o",
        str(tmp_path / "out"),
        "--precision",
        "fp32,fp16",
        "--val-data",
        str(tmp_path / "val.npz"),
        "--max-accuracy-drop",
        "1",
        "--duration",
        "0.05",
        "--warmup",
        "5",
        "--iterations",
        "3",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    fp16 = report["engines"][1]["accuracy"]
    assert fp16["agreement[y]"] == 1.0 and fp16["agreement[stateN]"] == 1.0 and report["engines"][1]["passed"]


def test_int8_calibrates_from_an_npz_with_a_state_and_a_scalar(engine: Path) -> None:
    out = engine.parent / "vad-int8.engine"
    done = run_cli(
        "build",
        str(engine.parent / "vad-b1.onnx"),
        "-o",
        str(out),
        "--precision",
        "int8",
        "--calib-data",
        str(_samples(engine.parent)),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(Path(f"{out}.json").read_text())["calibration"]["samples"] == 3


def test_bench_on_inputs_the_engine_refuses_is_one_line_with_the_fix(tmp_path: Path) -> None:
    from tests.graph.wild_models import valid_convs

    onnx.save(valid_convs(fixed_size=100), tmp_path / "m.onnx")
    done = run_cli("build", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.engine"), "--precision", "fp32")
    assert done.returncode == 0, done.stderr
    done = run_cli_subprocess(
        "bench", str(tmp_path / "m.engine"), "--shapes", "raw:1x3x64x64", "--duration", "0.05", "--no-progress"
    )  # a subprocess: ORT's own log lines show
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("trtforge: error: the engine fails on random (seed 0) at raw:1x3x64x64")
    assert "--inputs FILE.npz" in done.stderr
