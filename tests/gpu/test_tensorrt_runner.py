"""The TensorRT runner on a GPU: build with whichever TensorRT package runs here, load, infer, compare to CPU.

Skips unless a real TensorRT (``tensorrt``) or a TensorRT-RTX whose runtime supports this GPU is
installed; TensorRT-RTX does not run on datacenter Hopper/Blackwell parts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from tests.gpu.gpu_models import conv_net, cpu_reference

from trtforge.build import build, load
from trtforge.config import BuildConfig
from trtforge.errors import TrtforgeError
from trtforge.graph.ranges import ShapeRange


def _backend() -> str:
    from trtforge.backends.tensorrt import TensorRTBackend
    from trtforge.backends.tensorrt._trt import _cuda_device

    for name in ("tensorrt", "tensorrt-rtx"):
        try:
            TensorRTBackend(name).module()
        except TrtforgeError:
            continue
        cc = str((_cuda_device() or {}).get("compute_capability", ""))
        if name == "tensorrt-rtx" and cc.split(".")[0] in ("9", "10"):
            continue
        return name
    pytest.skip("no TensorRT package that runs on this GPU")


@pytest.mark.gpu
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_dynamic_plan_matches_cpu_at_two_batches(tmp_path: Path, cuda_graph: bool) -> None:
    backend = _backend()
    model = tmp_path / "conv-dyn.onnx"
    onnx.save(conv_net("N"), model)
    plan = tmp_path / "conv.plan"
    build(
        model,
        plan,
        BuildConfig(backend=backend, profiles=(ShapeRange.parse("x:1x3x16x16", "x:4x3x16x16", "x:8x3x16x16"),)),
    )
    runner = load(plan, cuda_graph=cuda_graph)
    rng = np.random.default_rng(0)
    for batch in (1, 8, 8, 3):
        x = rng.standard_normal((batch, 3, 16, 16)).astype(np.float32)
        got = runner.infer({"x": x})["logits"]
        assert got.shape == (batch, 10)
        np.testing.assert_allclose(got, cpu_reference(model, x), rtol=1e-3, atol=1e-3)


@pytest.mark.gpu
def test_forked_runners_share_the_engine_on_their_own_streams(tmp_path: Path) -> None:
    backend = _backend()
    model = tmp_path / "conv.onnx"
    onnx.save(conv_net(2), model)
    plan = tmp_path / "conv.plan"
    build(model, plan, BuildConfig(backend=backend))
    first = load(plan)
    second = first.fork()  # type: ignore[attr-defined]
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(first.infer({"x": x})["logits"], second.infer({"x": x})["logits"], rtol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("cuda_graph", [False, True])
def test_bench_times_copies_and_compute_with_events_as_for_onnxruntime(tmp_path: Path, cuda_graph: bool) -> None:
    from trtforge.backends.base import is_device_runner
    from trtforge.bench import BenchSettings, bench

    backend = _backend()
    model = tmp_path / "conv.onnx"
    onnx.save(conv_net(2), model)
    plan = tmp_path / "conv.plan"
    build(model, plan, BuildConfig(backend=backend))
    assert is_device_runner(load(plan))
    result = bench(plan, settings=BenchSettings(warmup_ms=50, iterations=50, duration_s=0.2, cuda_graph=cuda_graph))
    assert result.h2d is not None and result.compute is not None and result.d2h is not None
    assert result.enqueue is not None and result.compute.median > 0
    assert not any("--cuda-graph" in n for n in result.notes)  # a graph was captured when asked: no fallback
