"""`trtforge exec`: trtexec's flags, and the three tutorial commands verbatim."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.conftest import run_cli

TUTORIAL = [
    "--onnx=model-bs1.onnx --saveEngine=model.trt --workspace=3200",
    "--onnx=model-bs1.onnx --saveEngine=xxx-fp16.trt --fp16 --workspace=3200",
    "--onnx=model-bs1.onnx --saveEngine=xxx-fp16.trt --explicitBatch --inputIOFormats=fp16:chw "
    "--outputIOFormats=fp16:chw --fp16 --workspace=3200",
]


@pytest.fixture()
def workdir(digits_bs1: Path, tmp_path: Path) -> Path:
    shutil.copy(digits_bs1, tmp_path / "model-bs1.onnx")
    return tmp_path


@pytest.mark.parametrize("command", TUTORIAL)
def test_tutorial_commands_work_verbatim(workdir: Path, command: str) -> None:
    args = command.split() + ["--duration=0.2", "--warmUp=10"]
    proc = run_cli("exec", *args, cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "=== Performance summary ===" in proc.stdout and "&&&& PASSED" in proc.stdout
    engine = workdir / args[1].split("=", 1)[1]
    manifest = json.loads(Path(f"{engine}.json").read_text())
    assert manifest["precision"] == ("fp16" if "--fp16" in command else "fp32")
    if "--inputIOFormats=fp16:chw" in command:
        assert manifest["inputs"][0]["dtype"] == "float16"
        assert manifest["outputs"][0]["dtype"] == "float16"


def test_unknown_flag_is_refused_by_name(workdir: Path) -> None:
    proc = run_cli("exec", "--onnx=model-bs1.onnx", "--saveEngine=m.trt", "--noSuchFlag=3", cwd=workdir)
    assert proc.returncode == 2 and "--noSuchFlag" in proc.stderr and "Traceback" not in proc.stderr
    assert not (workdir / "m.trt").exists()


def test_flag_values_are_checked(workdir: Path) -> None:
    proc = run_cli("exec", "--onnx=model-bs1.onnx", "--iterations=many", cwd=workdir)
    assert proc.returncode == 2 and "--iterations" in proc.stderr
    proc = run_cli("exec", "--onnx=model-bs1.onnx", "--fp16=yes", cwd=workdir)
    assert proc.returncode == 2 and "takes no value" in proc.stderr


def test_skip_inference_builds_only_and_load_engine_benches(workdir: Path) -> None:
    proc = run_cli("exec", "--onnx=model-bs1.onnx", "--saveEngine=m.trt", "--skipInference", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "Performance summary" not in proc.stdout and (workdir / "m.trt").exists()
    proc = run_cli(
        "exec",
        "--loadEngine=m.trt",
        "--iterations=20",
        "--duration=0",
        "--warmUp=0",
        "--exportTimes=times.json",
        cwd=workdir,
    )
    assert proc.returncode == 0, proc.stderr
    times = json.loads((workdir / "times.json").read_text())
    assert len(times) >= 20 and {"startHostMs", "latencyMs"} <= set(times[0])


def test_int8_without_calibration_is_refused(workdir: Path) -> None:
    proc = run_cli("exec", "--onnx=model-bs1.onnx", "--saveEngine=m.trt", "--int8", cwd=workdir)
    assert proc.returncode == 2 and "--calib-data" in proc.stderr
    assert not (workdir / "m.trt").exists()
