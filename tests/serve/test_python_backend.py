"""The Python-backend repository from ``export triton --backend python`` runs on the bare tritonserver
binary (PyTriton's copy, started here without PyTriton) and answers as the engine's runner does.

Triton's Python stub imports the *installed* trtforge (it ignores PYTHONPATH), so this runs where
trtforge is installed from this checkout (CI, ``make test``) and is skipped in a side worktree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import run_cli
from tests.serve.test_server import _free_ports, _http_infer, _ready

pytriton = pytest.importorskip("pytriton")
httpclient = pytest.importorskip("tritonclient.http")


def _installed_trtforge_has_serve() -> bool:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = subprocess.run(
        [sys.executable, "-c", "import trtforge.serve.batching"], env=env, capture_output=True, cwd="/"
    )
    return probe.returncode == 0


def _tritonserver(workdir: Path) -> Path:
    """PyTriton's tritonserver with the Python stub for this interpreter, as PyTriton lays it out."""
    dist = Path(pytriton.__file__).parent / "tritonserver"
    target = workdir / "tritonserver"
    shutil.copytree(dist, target, ignore=shutil.ignore_patterns("python_backend_stubs"))
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    shutil.copy(dist / "python_backend_stubs" / version / "triton_python_backend_stub", target / "backends" / "python")
    return target


@pytest.mark.skipif(
    not _installed_trtforge_has_serve(),
    reason="the installed trtforge has no trtforge.serve "
    "(a side worktree); Triton's Python stub imports the installed one",
)
def test_exported_python_model_serves_on_the_bare_tritonserver(digits_bs1: Path, tmp_path: Path) -> None:
    engine = tmp_path / "digits.engine"
    assert run_cli("build", str(digits_bs1), "-o", str(engine)).returncode == 0
    assert run_cli("export", "triton", str(engine), "-o", str(tmp_path / "repo"), "--backend", "python").returncode == 0
    server = _tritonserver(tmp_path)
    http, grpc, metrics = _free_ports(3)
    libs = [
        str(sysconfig.get_config_var("LIBDIR")),
        str(Path(pytriton.__file__).parent.parent / "nvidia_pytriton.libs"),
    ]
    env = {
        **os.environ,
        "LD_LIBRARY_PATH": os.pathsep.join(libs),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    cmd = [
        str(server / "bin" / "tritonserver"),
        f"--model-repository={tmp_path / 'repo'}",
        f"--backend-directory={server / 'backends'}",
        f"--http-port={http}",
        f"--grpc-port={grpc}",
        f"--metrics-port={metrics}",
    ]
    log = tmp_path / "tritonserver.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        client = httpclient.InferenceServerClient(f"localhost:{http}")
        deadline = time.monotonic() + 60
        while not _ready(client, {"digits": engine}):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        client.close()
        from trtforge.build import load

        x = np.random.default_rng(3).random((3, 1, 32, 32), dtype=np.float32)  # 3 samples, engine batch 1
        expected = np.concatenate([load(engine).infer({"image": x[i : i + 1]})["output_0"] for i in range(3)])
        np.testing.assert_array_equal(_http_infer(f"localhost:{http}", "digits", x), expected)
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0, log.read_text()[-3000:]
