"""tests/gpu runs only where CUDA sees a device (the GPU machine); elsewhere every test skips."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from tests.gpu.gpu_models import conv_net


def _cuda_devices() -> int:
    try:
        from trtforge.backends import cuda

        return cuda.device_count()
    except Exception:  # no cuda-python, no driver
        return 0


HAS_GPU = _cuda_devices() > 0


@pytest.fixture(autouse=True)
def _needs_gpu() -> None:
    if not HAS_GPU:
        pytest.skip("needs an NVIDIA GPU and cuda-python (run tests/gpu on the device machine)")


@pytest.fixture(scope="session")
def conv_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gpu") / "convnet-bs2.onnx"
    onnx.save(conv_net(2), path)
    return path


@pytest.fixture(scope="session")
def cuda_engine(conv_onnx: Path) -> Path:
    """The conv net built for the CUDA provider (options timed and recorded)."""
    if not HAS_GPU:
        pytest.skip("needs an NVIDIA GPU")
    from trtforge.build import build
    from trtforge.config import BuildConfig

    engine = conv_onnx.with_name("convnet-cuda.engine")
    build(conv_onnx, engine, BuildConfig(device="cuda"))
    return engine
