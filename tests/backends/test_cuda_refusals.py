"""Without a GPU stack, the CUDA path refuses in one line that names what to install."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import onnx
import pytest
from tests.conftest import run_cli
from tests.gpu.gpu_models import conv_net


def _has_cuda_provider() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.skipif(importlib.util.find_spec("cuda") is not None, reason="cuda-python is installed here")
def test_cuda_layer_without_cuda_python_names_the_pip_command() -> None:
    from trtforge.backends import cuda
    from trtforge.errors import MissingDependencyError

    cuda.runtime.cache_clear()
    with pytest.raises(MissingDependencyError, match=r"pip install 'trtforge\[gpu\]'"):
        cuda.device_count()


@pytest.mark.skipif(_has_cuda_provider(), reason="this onnxruntime has the CUDA provider")
def test_build_device_cuda_without_the_cuda_provider_is_one_line(tmp_path: Path) -> None:
    source = tmp_path / "m.onnx"
    onnx.save(conv_net(2), source)
    engine = tmp_path / "m.engine"
    proc = run_cli("build", str(source), "-o", str(engine), "--device", "cuda")
    assert proc.returncode == 2
    assert "CUDAExecutionProvider" in proc.stderr and "onnxruntime-gpu" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not engine.exists()


@pytest.mark.skipif(_has_cuda_provider(), reason="this onnxruntime has the CUDA provider")
def test_candidate_timing_process_reports_its_failure_as_one_line(tmp_path: Path) -> None:
    """build --device cuda times each candidate in a child process; when one cannot run, the
    build gets the child's reason back (here: no CUDA provider), not a hang or a traceback."""
    from trtforge.backends.onnxruntime import _time_in_child, cuda_provider_options

    source = tmp_path / "m.onnx"
    onnx.save(conv_net(2), source)
    result = _time_in_child(source, cuda_provider_options(), graph=True)
    assert set(result) == {"error"}
    assert "CUDAExecutionProvider" in str(result["error"]) and "\n" not in str(result["error"])
