"""The budgeted INT8 build on ONNX Runtime CUDA: kept units go FP16 (the GPU runs FP16 fast), the
engine builds and runs on the CUDA provider, and the mix meets its budget there (issue 13)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from tests.conftest import run_cli_subprocess
from tests.precision.outlier_models import OUTLIER_UNIT, inputs, outlier_channel_model


def test_budgeted_int8_on_cuda_keeps_the_culprit_in_fp16_and_runs(tmp_path: Path) -> None:
    model = outlier_channel_model(tmp_path / "model.onnx")
    calib, val = inputs(tmp_path / "calib.npz", 32, 1), inputs(tmp_path / "val.npz", 32, 2)
    engine = tmp_path / "mixed.onnx"
    args = ["--precision", "int8", "--device", "cuda", "--calib-data", str(calib), "--calib-method", "minmax"]
    args += ["--max-accuracy-drop", "0.01", "--metric", "cosine", "--val-data", str(val)]
    proc = run_cli_subprocess("build", str(model), "-o", str(engine), *args)
    assert proc.returncode == 0, proc.stderr
    mixed = json.loads(Path(f"{engine}.json").read_text())["build"]["mixed"]
    assert mixed["kept_precision"] == "fp16", mixed
    assert [u["name"] for u in mixed["kept_float"]] == [OUTLIER_UNIT]
    assert mixed["error"]["mixed"] <= 0.01

    from trtforge.build import load

    runner = load(engine)
    assert runner.session.get_providers()[0] == "CUDAExecutionProvider"
    feeds = dict(np.load(val))
    first = {name: array[:1] for name, array in feeds.items()}
    reference = onnx.load(str(model))
    import onnxruntime as ort

    want = ort.InferenceSession(reference.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, first)[0]
    got = next(iter(runner.infer(first).values()))
    cos = float(np.dot(want.ravel(), got.ravel()) / (np.linalg.norm(want) * np.linalg.norm(got)))
    assert cos > 0.99, cos
