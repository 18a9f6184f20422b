"""The ONNX Runtime CUDA path: build records its provider options and the GPU, the IO-bound
runner matches the CPU provider, and CUDA graph replay follows new inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from tests.gpu.gpu_models import conv_net, cpu_reference

from trtforge.build import build, load
from trtforge.config import BuildConfig
from trtforge.errors import TrtforgeError

ATOL = 2e-3  # TF32 convolutions on the GPU against FP32 on the CPU


def _x(seed: int, batch: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (batch, 3, 16, 16)).astype(np.float32)


def test_manifest_records_gpu_and_provider_options(cuda_engine: Path) -> None:
    manifest = json.loads(Path(f"{cuda_engine}.json").read_text())
    device = manifest["device"]
    assert device["kind"] == "cuda" and device["name"] and device["compute_capability"]
    build_facts = manifest["build"]
    assert build_facts["device"] == "cuda"
    assert build_facts["providers"][0] == "CUDAExecutionProvider"
    options = build_facts["provider_options"]
    # exhaustive search unless the timed candidate with cuDNN's heuristic pick won (it did on the H200 once)
    assert options["cudnn_conv_algo_search"] in ("EXHAUSTIVE", "HEURISTIC")
    assert options["prefer_nhwc"] in ("0", "1") and options["enable_cuda_graph"] in ("0", "1")
    timed = [v for v in build_facts["tuning_compute_ms"].values() if isinstance(v, float)]
    assert timed and all(v > 0 for v in timed)
    # every node of this net runs on the CUDA provider, so CUDA graphs are allowed and chosen when fastest
    assert any(
        k.endswith("enable_cuda_graph=1") and isinstance(v, float) for k, v in build_facts["tuning_compute_ms"].items()
    )


def test_cuda_runner_matches_cpu_provider(cuda_engine: Path, conv_onnx: Path) -> None:
    runner = load(cuda_engine)
    for seed in (0, 1, 2):  # new data each time: a replayed graph must read the bound buffers
        x = _x(seed)
        got = runner.infer({"x": x})["logits"]
        np.testing.assert_allclose(got, cpu_reference(conv_onnx, x), atol=ATOL, rtol=1e-3)


def test_device_runner_steps_are_separate_and_agree_with_infer(cuda_engine: Path, conv_onnx: Path) -> None:
    runner = load(cuda_engine)
    x = _x(5)
    runner.set_inputs({"x": x})
    runner.h2d()
    runner.enqueue()
    runner.d2h()
    runner.stream.synchronize()
    stepped = runner.outputs_host()["logits"]
    np.testing.assert_allclose(stepped, cpu_reference(conv_onnx, x), atol=ATOL, rtol=1e-3)
    np.testing.assert_array_equal(stepped, runner.infer({"x": x})["logits"])


def test_cuda_graph_flag(cuda_engine: Path) -> None:
    manifest = json.loads(Path(f"{cuda_engine}.json").read_text())
    assert manifest["build"]["cuda_graph"] is True  # every node is on the CUDA provider
    plain = load(cuda_engine)  # bench without --cuda-graph: no replay, but it could
    assert plain.supports_cuda_graph is True and plain.cuda_graph is False
    with_graph = load(cuda_engine, cuda_graph=True)
    assert with_graph.cuda_graph is True
    without = load(cuda_engine, cuda_graph=False)
    assert without.supports_cuda_graph is False
    with pytest.raises(TrtforgeError, match="CUDA graph"):
        without.use_cuda_graph()
    x = _x(3)
    expected = without.infer({"x": x})["logits"]
    np.testing.assert_allclose(with_graph.infer({"x": x})["logits"], expected, atol=ATOL, rtol=1e-3)
    plain.infer({"x": _x(4)})
    plain.use_cuda_graph()  # what bench --cuda-graph calls: a new session, the same buffers
    assert plain.cuda_graph is True
    for _ in range(3):  # capture, then replay
        np.testing.assert_allclose(plain.infer({"x": x})["logits"], expected, atol=ATOL, rtol=1e-3)


def test_graph_runner_refuses_a_new_shape(tmp_path: Path) -> None:
    source = tmp_path / "dyn.onnx"
    onnx.save(conv_net("N"), source)
    engine = tmp_path / "dyn.engine"
    build(source, engine, BuildConfig(device="cuda"))
    graph_runner = load(engine, cuda_graph=True)
    graph_runner.infer({"x": _x(0, batch=2)})
    with pytest.raises(TrtforgeError, match="CUDA graph"):
        graph_runner.infer({"x": _x(0, batch=4)})
    plain = load(engine, cuda_graph=False)  # without a graph, shapes may change between queries
    for batch in (2, 4):
        x = _x(batch, batch=batch)
        np.testing.assert_allclose(plain.infer({"x": x})["logits"], cpu_reference(source, x), atol=ATOL, rtol=1e-3)


def test_fp16_engine_runs_close_to_fp32(tmp_path: Path, conv_onnx: Path) -> None:
    from trtforge.config import Precision

    engine = tmp_path / "half.engine"
    manifest = build(conv_onnx, engine, BuildConfig(precision=Precision.FP16, device="cuda"))
    assert manifest.precision == "fp16" and manifest.device["kind"] == "cuda"
    x = _x(9)
    got = load(engine).infer({"x": x})["logits"]
    assert got.dtype == np.float32  # the cast keeps the model's IO types
    np.testing.assert_allclose(got, cpu_reference(conv_onnx, x), atol=3e-2, rtol=3e-2)


def test_an_int8_build_names_the_nodes_that_left_the_gpu(conv_onnx: Path, tmp_path: Path) -> None:
    """Issue 14: Q/DQ nodes the CUDA provider does not take run on the CPU; the build says which."""
    import warnings

    from trtforge.config import BuildConfig, CalibrationConfig

    data = tmp_path / "calib.npz"
    x = np.random.default_rng(0).standard_normal((8, *_x(2).shape[1:])).astype(np.float32)
    np.savez(data, x=x)
    engine = tmp_path / "int8.engine"
    calibration = CalibrationConfig(data=data, method="minmax", num=8, batch_size=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build(
            conv_onnx,
            engine,
            BuildConfig(device="cuda", precision="int8", calibration=calibration, allow_inaccurate=True),
        )
    manifest = json.loads(Path(f"{engine}.json").read_text())
    off_gpu = manifest["build"]["cpu_nodes"]
    said = [str(w.message) for w in caught if "run on the CPU provider" in str(w.message)]
    assert bool(off_gpu) == bool(said)  # the manifest and the warning agree
    # seen on the H200 (onnxruntime-gpu 1.31.1): the bias DequantizeLinear nodes (int32) stay on the CPU
    assert any(n.startswith("DequantizeLinear (") for n in off_gpu)
    if off_gpu:
        assert str(len(off_gpu)) in said[0] and off_gpu[0] in said[0]
