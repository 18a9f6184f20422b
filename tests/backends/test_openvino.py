"""The openvino backend on the digits model: build, run, bench, compare, refusals (real OpenVINO, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import DIGITS, DIGITS_PREPROCESS, run_cli

pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def engines(digits_bs1: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("openvino")
    built = {}
    for precision in ("fp32", "int8"):
        out = folder / f"digits-{precision}.ov"
        calib = ("--calib-data", str(DIGITS / "calib"), "--preprocess", DIGITS_PREPROCESS, "--calib-num", "100")
        proc = run_cli("build", str(digits_bs1), "-o", str(out), "--backend", "openvino", "--precision", precision,
                       *(calib if precision == "int8" else ()))
        assert proc.returncode == 0, proc.stderr
        built[precision] = out
    return built


def _manifest(engine: Path) -> dict:
    return json.loads(Path(f"{engine}.json").read_text())


def test_manifest_records_openvino_properties_and_int8_layers(engines: dict[str, Path]) -> None:
    fp32, int8 = _manifest(engines["fp32"]), _manifest(engines["int8"])
    assert fp32["backend"] == "openvino" and fp32["backend_version"].startswith("20")
    assert fp32["build"]["properties"]["INFERENCE_PRECISION_HINT"] == "f32"
    assert fp32["build"]["properties"]["PERFORMANCE_HINT"] == "LATENCY"
    assert "i8" not in fp32["build"]["layer_precisions"] and "u8" not in fp32["build"]["layer_precisions"]
    counts = int8["build"]["layer_precisions"]
    assert counts.get("u8", 0) + counts.get("i8", 0) >= 2, counts  # the convolutions run in INT8
    assert int8["calibration"]["flavour"]["name"] == "openvino-cpu"


def test_outputs_close_to_onnxruntime_fp32(engines: dict[str, Path], digits_bs1: Path) -> None:
    import onnxruntime

    import trtforge

    x = np.random.default_rng(0).random((1, 1, 32, 32), dtype=np.float32)
    (reference,) = onnxruntime.InferenceSession(str(digits_bs1), providers=["CPUExecutionProvider"]).run(
        ["output_0"], {"image": x})
    fp32 = trtforge.load(engines["fp32"]).infer({"image": x})["output_0"]
    int8 = trtforge.load(engines["int8"]).infer({"image": x})["output_0"]
    np.testing.assert_allclose(fp32, reference, atol=1e-4)
    assert np.abs(int8 - reference).max() < 0.1 * np.abs(reference).max() + 1e-3
    assert not np.array_equal(int8, fp32)  # INT8 really ran


def test_compare_against_the_onnx(engines: dict[str, Path], digits_bs1: Path, tmp_path: Path) -> None:
    proc = run_cli("compare", str(engines["fp32"]), str(digits_bs1), "--random", "4", "--atol", "1e-4")
    assert proc.returncode == 0 and "PASSED" in proc.stdout, proc.stdout + proc.stderr
    proc = run_cli("compare", str(engines["int8"]), str(digits_bs1), "--inputs", str(DIGITS / "test"),
                   "--preprocess", DIGITS_PREPROCESS, "--json", str(tmp_path / "c.json"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (o,) = json.loads((tmp_path / "c.json").read_text())["outputs"]
    assert o["top1_agreement"] >= 0.98 and o["top1_accuracy"] >= o["reference_top1_accuracy"] - 0.02, o


def test_bench_and_streams(engines: dict[str, Path], tmp_path: Path) -> None:
    report = tmp_path / "b.json"
    proc = run_cli("bench", str(engines["int8"]), "--warmup", "20", "--duration", "0.2", "--streams", "2",
                   "--json", str(report))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(report.read_text())
    assert data["context"]["backend"] == "openvino" and data["settings"]["streams"] == 2
    assert data["context"]["runtime_settings"]["INFERENCE_NUM_THREADS"] == str(data["context"]["threads"])


def test_onnxruntime_cpu_sessions_block_instead_of_spinning(digits_bs1: Path, tmp_path: Path) -> None:
    engine, report = tmp_path / "d.engine", tmp_path / "b.json"
    assert run_cli("build", str(digits_bs1), "-o", str(engine)).returncode == 0
    assert _manifest(engine)["build"]["session_config"]["session.intra_op.allow_spinning"] == "0"
    proc = run_cli("bench", str(engine), "--warmup", "0", "--duration", "0.1", "--json", str(report))
    assert proc.returncode == 0, proc.stderr
    settings = json.loads(report.read_text())["context"]["runtime_settings"]
    assert settings["session.intra_op.allow_spinning"] == settings["session.inter_op.allow_spinning"] == "0"


@pytest.mark.parametrize("args, words", [
    (("--device", "cuda"), "CPU only"),
    (("--input-format", "fp16:hwc"), "linear"),
    (("--workspace", "64"), "TensorRT builder options"),
])
def test_refusals_are_one_line_exit_2(digits_bs1: Path, tmp_path: Path, args: tuple[str, ...], words: str) -> None:
    out = tmp_path / "x.ov"
    proc = run_cli("build", str(digits_bs1), "-o", str(out), "--backend", "openvino", *args)
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()


def test_auto_on_cpu_times_both_and_keeps_the_faster(digits_bs1: Path, tmp_path: Path) -> None:
    engine = tmp_path / "auto.engine"
    proc = run_cli("build", str(digits_bs1), "-o", str(engine), "--backend", "auto")
    assert proc.returncode == 0, proc.stderr
    manifest = _manifest(engine)
    auto = manifest["build"]["auto"]
    assert set(auto["median_ms"]) == {"onnxruntime", "openvino"} and all(v > 0 for v in auto["median_ms"].values())
    assert manifest["backend"] == auto["chosen"] == min(auto["median_ms"], key=auto["median_ms"].get)
    assert run_cli("run", str(engine), "--random", "1").returncode == 0


def test_exec_builds_and_benches_with_openvino(digits_bs1: Path, tmp_path: Path) -> None:
    engine = tmp_path / "e.ov"
    proc = run_cli("exec", f"--onnx={digits_bs1}", "--backend=openvino", f"--saveEngine={engine}",
                   "--duration=0.1", "--warmUp=0")
    assert proc.returncode == 0 and "PASSED" in proc.stdout, proc.stdout + proc.stderr
    assert _manifest(engine)["backend"] == "openvino"


def test_without_openvino_one_line_names_the_pip_command(digits_bs1: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)  # what `import openvino` meets when it is not installed
    proc = run_cli("build", str(digits_bs1), "-o", str(tmp_path / "x.ov"), "--backend", "openvino")
    assert proc.returncode == 2 and "pip install 'trtforge[openvino]'" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
