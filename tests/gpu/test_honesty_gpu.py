"""Issue 14 item 11 on the GPU: no ONNX Runtime plugin-EP line on a CUDA bench, and deploy saying
why INT8 lost on a GPU (its DequantizeLinear nodes on the CPU provider, no CUDA graph)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from tests.conftest import run_cli_subprocess
from tests.gpu.gpu_models import conv_net

PLUGIN_LINE = "No registered plugin EP device found"


def test_bench_on_cuda_prints_no_plugin_ep_line(cuda_engine: Path) -> None:
    """ORT >= 1.26 logs it for every CUDA session whose options name device_id; trtforge leaves the
    default device 0 out of the options it hands ORT (backends.onnxruntime.session_provider_options)."""
    proc = run_cli_subprocess("bench", str(cuda_engine), "--duration", "0.3", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "GPU Compute Time" in proc.stdout  # it ran on the CUDA provider
    assert PLUGIN_LINE not in proc.stderr, proc.stderr
    assert PLUGIN_LINE not in proc.stdout


def test_the_runner_still_runs_on_device_0_without_naming_it(cuda_engine: Path) -> None:
    from trtforge.backends.onnxruntime import session_provider_options
    from trtforge.build import load

    runner = load(cuda_engine)
    assert runner.provider_options["device_id"] == "0"  # recorded in the manifest as built
    assert "device_id" not in session_provider_options(runner.provider_options)
    assert runner.session.get_providers()[0] == "CUDAExecutionProvider"
    assert runner.session.get_provider_options()["CUDAExecutionProvider"]["device_id"] == "0"
    assert session_provider_options({"device_id": "1"}) == {"device_id": "1"}  # another GPU is still named


@pytest.fixture(scope="module")
def gpu_deploy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """``deploy --device cuda --precision fp32,fp16,int8 --select fastest`` on a dynamic-batch conv net."""
    from tests.gpu.conftest import HAS_GPU

    if not HAS_GPU:
        pytest.skip("needs an NVIDIA GPU")
    folder = tmp_path_factory.mktemp("gpu-deploy")
    model = folder / "convnet.onnx"
    onnx.save(conv_net("N"), model)
    rng = np.random.default_rng(0)
    np.savez(folder / "calib.npz", x=rng.uniform(-1, 1, (32, 3, 16, 16)).astype(np.float32))
    np.savez(folder / "val.npz", x=rng.uniform(-1, 1, (24, 3, 16, 16)).astype(np.float32))
    out = folder / "out"
    proc = run_cli_subprocess(
        "deploy",
        str(model),
        "-o",
        str(out),
        "--device",
        "cuda",
        "--precision",
        "fp32,fp16,int8",
        "--calib-data",
        str(folder / "calib.npz"),
        "--calib-method",
        "minmax",
        "--val-data",
        str(folder / "val.npz"),
        "--select",
        "fastest",
        "--duration",
        "0.3",
        "--warmup",
        "50",
        "--iterations",
        "50",
    )
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout, proc.stderr


def test_deploy_on_a_gpu_says_why_int8_was_not_selected(gpu_deploy: tuple[Path, str, str]) -> None:
    out, stdout, stderr = gpu_deploy
    report = json.loads((out / "report.json").read_text())
    engines = {e["precision"]: e for e in report["engines"]}
    int8 = engines["int8"]
    build = json.loads((out / "model-int8.engine.json").read_text())["build"]
    # seen on the H200 with onnxruntime-gpu 1.31.1: bias DequantizeLinear nodes stay on the CPU provider
    assert build["cpu_nodes"], "expected nodes on the CPU provider (the reason item 11 exists)"
    assert f"{len(build['cpu_nodes'])} node(s) placed on the CPU by ONNX Runtime" in int8["why"]
    assert "no CUDA graph" in int8["why"]
    if report["selected"] != int8["engine"]:  # slower, or refused by its self-check (random weights)
        assert int8["why"].startswith(("not selected: slower (", "not selected: refused by its INT8 self-check"))
    for e in engines.values():  # the same line in the summary and the report
        assert f"{e['precision']}: {e['why']}" in stdout
        assert e["why"] in (out / "report.md").read_text()
    assert PLUGIN_LINE not in stderr
