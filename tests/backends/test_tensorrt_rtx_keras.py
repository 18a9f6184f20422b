"""A keras.applications model (random weights, nothing downloaded) through convert and a TensorRT-RTX build."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import run_cli

pytest.importorskip("tensorrt_rtx")

_EXPORT = """
import sys, keras
model = keras.applications.MobileNetV3Small(weights=None, input_shape=(96, 96, 3), classes=10,
                                            include_preprocessing=False)
model.export(sys.argv[1], verbose=False)
"""


@pytest.mark.slow
def test_mobilenet_v3_small_builds_with_a_batch_profile(tmp_path: Path) -> None:
    saved = tmp_path / "mobilenet"
    proc = subprocess.run([sys.executable, "-c", _EXPORT, str(saved)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    model = tmp_path / "mobilenet.onnx"
    proc = run_cli("convert", str(saved), "-o", str(model))
    assert proc.returncode == 0, proc.stderr[-2000:]
    name = json.loads(run_cli("inspect", str(model), "--json").stdout)["inputs"][0]["name"]
    plan = tmp_path / "mobilenet.plan"
    proc = run_cli(
        "build",
        str(model),
        "-o",
        str(plan),
        "--backend",
        "tensorrt-rtx",
        "--min-shapes",
        f"{name}:1x96x96x3",
        "--opt-shapes",
        f"{name}:4x96x96x3",
        "--max-shapes",
        f"{name}:8x96x96x3",
        "--profiling-verbosity",
        "detailed",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads(Path(f"{plan}.json").read_text())
    assert plan.stat().st_size > 1_000_000  # ~1.5 M parameters in FP32
    assert manifest["build"]["tensorrt"]["profiles"][0][name]["max"] == [8, 96, 96, 3]
