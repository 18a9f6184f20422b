"""``deploy --serve``: one command from an ONNX model to a model answering on Triton; SIGTERM stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import DIGITS, DIGITS_PREPROCESS, ROOT, run_cli
from tests.serve.test_server import _free_ports, _http_infer, _ready

httpclient = pytest.importorskip("tritonclient.http")
pytest.importorskip("pytriton")


def test_deploy_serve_ends_with_the_selected_engine_served(digits_bs1: Path, tmp_path: Path) -> None:
    (port,) = _free_ports(1)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    cmd = [
        sys.executable,
        "-m",
        "trtforge",
        "deploy",
        str(digits_bs1),
        "-o",
        str(tmp_path / "digits"),
        "--precision",
        "fp32",
        "--calib-data",
        str(DIGITS / "calib"),
        "--preprocess",
        DIGITS_PREPROCESS,
        "--select",
        "fastest",
        "--duration",
        "0.2",
        "--warmup",
        "20",
        "--iterations",
        "20",
        "--serve",
        "--serve-port",
        str(port),
    ]
    log = tmp_path / "deploy.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        client = httpclient.InferenceServerClient(f"localhost:{port}")
        deadline = time.monotonic() + 120
        while not _ready(client, {"digits": Path()}):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        client.close()
        x = np.zeros((1, 1, 32, 32), np.float32)
        assert _http_infer(f"localhost:{port}", "digits", x).shape == (1, 10)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=45) == 0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_deploy_triton_or_serve_without_select_is_refused_before_the_work(digits_bs1: Path, tmp_path: Path) -> None:
    proc = run_cli("deploy", str(digits_bs1), "-o", str(tmp_path / "out"), "--serve")
    assert proc.returncode == 2 and "--select fastest" in proc.stderr and not (tmp_path / "out").exists()
