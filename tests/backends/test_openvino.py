"""The openvino backend on the digits sample: real OpenVINO builds, runs, benches and compares."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import DIGITS, DIGITS_PREPROCESS, run_cli, run_cli_subprocess

pytest.importorskip("openvino")

INT8 = (
    "--precision",
    "int8",
    "--calib-data",
    str(DIGITS / "calib"),
    "--preprocess",
    DIGITS_PREPROCESS,
    "--calib-num",
    "40",
)
FAST_BENCH = ("--duration", "0.2", "--warmup", "20", "--iterations", "20")


@pytest.fixture(scope="module")
def engines(digits_bs1: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """FP32 and INT8 engines, built from a copy of the ONNX that is deleted afterwards."""
    folder = tmp_path_factory.mktemp("openvino")
    onnx_copy = folder / "digits.onnx"
    shutil.copy(digits_bs1, onnx_copy)
    out = {}
    for name, extra in (("fp32", ()), ("int8", INT8)):
        out[name] = folder / f"{name}.ov"
        proc = run_cli("build", str(onnx_copy), "-o", str(out[name]), "--backend", "openvino", *extra)
        assert proc.returncode == 0, proc.stderr
    onnx_copy.unlink()  # an engine loads without its ONNX
    return out


def _manifest(engine: Path) -> dict:
    return json.loads(Path(f"{engine}.json").read_text())


@pytest.mark.parametrize("precision, atol", [("fp32", 1e-5), ("int8", 0.05)])
def test_outputs_on_digit_images_are_close_to_onnxruntime_fp32(
    engines: dict[str, Path], digits_bs1: Path, precision: str, atol: float
) -> None:
    import onnxruntime as ort

    from trtforge.build import load
    from trtforge.data.preprocess import Preprocess
    from trtforge.data.samples import load_samples

    runner = load(engines[precision])
    session = ort.InferenceSession(str(digits_bs1), providers=["CPUExecutionProvider"])
    images = load_samples(DIGITS / "test", runner.inputs, Preprocess.parse(DIGITS_PREPROCESS), limit=16).feeds
    for x in images["image"]:
        got = runner.infer({"image": x[None]})["output_0"]
        want = session.run(None, {"image": x[None]})[0]
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=atol)
        assert got.argmax() == want.argmax()


def test_inputs_are_read_in_place_and_outputs_belong_to_the_caller(engines: dict[str, Path], digits_bs1: Path) -> None:
    """The runner hands its inputs to OpenVINO without a copy (share_inputs): read-only, float64 and
    strided arrays still give ONNX Runtime's outputs, and an output kept from one call is not
    overwritten by the next call (outputs are copied out of the request)."""
    import onnxruntime as ort

    from trtforge.build import load

    runner = load(engines["fp32"])
    session = ort.InferenceSession(str(digits_bs1), providers=["CPUExecutionProvider"])
    shape = tuple(int(d) for d in runner.inputs[0].shape)
    rng = np.random.default_rng(0)
    a, b = rng.random(shape, dtype=np.float32), rng.random(shape, dtype=np.float32)
    a.flags.writeable = False
    first = runner.infer({"image": a})["output_0"]
    kept = first.copy()
    runner.infer({"image": b})
    np.testing.assert_array_equal(first, kept)
    np.testing.assert_allclose(first, session.run(None, {"image": a})[0], atol=1e-5)
    wide = np.zeros((*shape[:-1], shape[-1] * 2), np.float64)
    wide[..., ::2] = b
    got = runner.infer({"image": wide[..., ::2]})["output_0"]
    np.testing.assert_allclose(got, session.run(None, {"image": b})[0], atol=1e-5)


def test_manifest_records_version_properties_and_layer_precisions(engines: dict[str, Path]) -> None:
    import openvino

    fp32, int8 = _manifest(engines["fp32"]), _manifest(engines["int8"])
    for m in (fp32, int8):
        assert m["backend"] == "openvino" and m["backend_version"] == openvino.__version__
        assert m["device"]["kind"] == "cpu" and m["device"]["openvino_device"]
        props = m["build"]["properties"]
        assert props["INFERENCE_PRECISION_HINT"] == "f32"  # asked for, not the CPU plugin's BF16 default
        assert props["PERFORMANCE_HINT"] == "LATENCY" and props["NUM_STREAMS"] == 1
        assert props["INFERENCE_NUM_THREADS"] >= 1
    int8_layers = {k: v for k, v in int8["build"]["layers_by_precision"].items() if k in ("u8", "i8")}
    assert sum(int8_layers.values()) >= 4, int8["build"]["layers_by_precision"]
    assert int8["build"]["int8_layers_by_type"].get("Convolution") == 2
    assert int8["calibration"]["flavour"]["name"] == "openvino-cpu"
    assert not {"u8", "i8"} & set(fp32["build"]["layers_by_precision"])


def test_run_compare_and_bench_from_the_cli(engines: dict[str, Path], digits_bs1: Path, tmp_path: Path) -> None:
    images = ("--inputs", str(DIGITS / "test"), "--preprocess", DIGITS_PREPROCESS, "--limit", "40")
    proc = run_cli("run", str(engines["int8"]), *images, "-o", str(tmp_path / "out.npz"))
    assert proc.returncode == 0, proc.stderr
    assert np.load(tmp_path / "out.npz")["output_0"].shape == (40, 10)
    proc = run_cli("compare", str(engines["int8"]), str(digits_bs1), *images, "--min-cosine", "0.999")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run_cli("bench", str(engines["fp32"]), *FAST_BENCH, "--threads", "1", "--json", str(tmp_path / "b.json"))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "b.json").read_text())
    text = json.dumps(result)
    assert '"backend": "openvino"' in text and '"threads": 1' in text


def test_bench_streams_run_openvinos_own_streams_in_one_compiled_model(
    engines: dict[str, Path], tmp_path: Path
) -> None:
    from trtforge.build import load_runners

    runners, _ = load_runners(engines["fp32"], streams=2, threads=1)
    assert len(runners) == 2 and runners[0].compiled is runners[1].compiled  # type: ignore[attr-defined]
    compiled = runners[0].compiled  # type: ignore[attr-defined]
    assert compiled.get_property("NUM_STREAMS") == 2 and compiled.get_property("INFERENCE_NUM_THREADS") == 2
    assert str(compiled.get_property("PERFORMANCE_HINT")).endswith("THROUGHPUT")
    x = np.zeros((1, 1, 32, 32), np.float32)
    assert np.array_equal(runners[0].infer({"image": x})["output_0"], runners[1].infer({"image": x})["output_0"])
    out = tmp_path / "b.json"
    proc = run_cli("bench", str(engines["int8"]), *FAST_BENCH, "--streams", "2", "--no-progress", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    reported = json.loads(out.read_text())["context"]["runtime_properties"]
    assert reported["NUM_STREAMS"] == 2 and reported["PERFORMANCE_HINT"] == "THROUGHPUT", reported
    assert reported["INFERENCE_PRECISION_HINT"] == "f32" and reported["OPTIMAL_NUMBER_OF_INFER_REQUESTS"] >= 2
    assert "'NUM_STREAMS': 2" in proc.stdout  # printed on the Settings line
    single = load_runners(engines["fp32"])[0][0].compiled  # type: ignore[attr-defined]
    assert single.get_property("NUM_STREAMS") == 1  # one stream keeps the latency settings


def test_threads_asked_at_load_reach_the_compiled_model(engines: dict[str, Path]) -> None:
    from trtforge.build import load

    runner = load(engines["fp32"], threads=1)
    assert runner.compiled.get_property("INFERENCE_NUM_THREADS") == 1  # type: ignore[attr-defined]


def test_deploy_and_exec_build_with_openvino(digits_bs1: Path, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    proc = run_cli(
        "deploy",
        str(digits_bs1),
        "-o",
        str(out),
        "--backend",
        "openvino",
        "--precision",
        "fp32",
        "--val-data",
        str(DIGITS / "test"),
        "--preprocess",
        DIGITS_PREPROCESS,
        *FAST_BENCH,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["backend"] == "openvino"
    assert report["engines"][0]["accuracy"]["top1_agreement"] == 1.0
    shutil.copy(digits_bs1, tmp_path / "m.onnx")
    proc = run_cli(
        "exec",
        "--onnx=m.onnx",
        "--saveEngine=m.ov",
        "--backend=openvino",
        "--duration=0.2",
        "--warmUp=10",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "&&&& PASSED" in proc.stdout and _manifest(tmp_path / "m.ov")["backend"] == "openvino"


def test_deploy_with_auto_lists_both_cpu_backends_times_and_the_one_kept(digits_bs1: Path, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    calib = ("--calib-data", str(DIGITS / "calib"), "--preprocess", DIGITS_PREPROCESS, "--calib-num", "40")
    proc = run_cli(
        "deploy", str(digits_bs1), "-o", str(out), "--backend", "auto", "--precision", "fp32,int8", *calib, *FAST_BENCH
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    text = (out / "report.md").read_text()
    assert "## --backend auto" in text and "| precision | onnxruntime | openvino | kept |" in text
    for engine in report["engines"]:
        manifest = _manifest(out / engine["engine"])
        assert engine["auto_ms"] == manifest["build"]["auto"]["median_ms"]
        assert set(engine["auto_ms"]) == {"onnxruntime", "openvino"}
        assert engine["backend"] == manifest["backend"] == manifest["build"]["auto"]["chosen"]
        ms = engine["auto_ms"]
        row = f"| {engine['precision']} | {ms['onnxruntime']:.3f} | {ms['openvino']:.3f} | {engine['backend']} |"
        assert row in text and row in proc.stdout


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--device", "cuda"), "runs on the CPU only"),
        (("--input-format", "fp32:hwc8"), "linear (chw) tensors only"),
        (("--workspace", "64"), "TensorRT builder options were given, but the backend is openvino"),
    ],
)
def test_what_openvino_cannot_do_is_refused_in_one_line(
    digits_bs1: Path, tmp_path: Path, extra: tuple[str, ...], message: str
) -> None:
    engine = tmp_path / "m.ov"
    proc = run_cli("build", str(digits_bs1), "-o", str(engine), "--backend", "openvino", *extra)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir())


def test_a_blob_from_another_openvino_version_is_refused(engines: dict[str, Path], tmp_path: Path) -> None:
    engine = tmp_path / "old.ov"
    shutil.copy(engines["fp32"], engine)
    manifest = _manifest(engines["fp32"])
    manifest["backend_version"] = "2024.0.0"
    Path(f"{engine}.json").write_text(json.dumps(manifest))
    proc = run_cli("run", str(engine), "--random", "1")
    assert proc.returncode == 2 and "compiled by openvino 2024.0.0" in proc.stderr and "rebuild" in proc.stderr


def test_an_engine_compiled_for_another_instruction_set_is_refused_in_one_line(
    engines: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compiled blob runs only on the ISA it was compiled for: on a CPU with less (here this CPU with
    OpenVINO's kernels capped to SSE4.1 by ONEDNN_MAX_CPU_ISA) ``run`` says both ISAs and what to do."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "SSE41")
    proc = run_cli_subprocess("bench", str(engines["fp32"]), *FAST_BENCH)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "compiled for Intel" in proc.stderr and "this CPU offers Intel SSE4.1" in proc.stderr, proc.stderr
    assert "rebuild it on this machine" in proc.stderr and "Traceback" not in proc.stderr


def test_without_openvino_the_error_names_the_pip_command(
    digits_bs1: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # what an environment without it imports
    proc = run_cli("build", str(digits_bs1), "-o", str(tmp_path / "m.ov"), "--backend", "openvino")
    assert proc.returncode == 2 and "pip install 'trtforge[openvino]'" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_auto_on_the_cpu_measures_both_backends_and_keeps_the_faster(digits_bs1: Path, tmp_path: Path) -> None:
    engine = tmp_path / "m.engine"
    proc = run_cli("build", str(digits_bs1), "-o", str(engine), "--backend", "auto")
    assert proc.returncode == 0, proc.stderr
    manifest = _manifest(engine)
    auto = manifest["build"]["auto"]
    assert set(auto["median_ms"]) == {"onnxruntime", "openvino"} and all(v > 0 for v in auto["median_ms"].values())
    assert auto["chosen"] == manifest["backend"] == min(auto["median_ms"], key=auto["median_ms"].get)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.engine", "m.engine.json"]  # no scratch left
    proc = run_cli("run", str(engine), "--random", "2")
    assert proc.returncode == 0, proc.stderr


def test_auto_needs_the_shapes_it_times_and_says_so_before_building(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, "h", "w"])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
    model = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    proc = run_cli("build", str(model), "-o", str(tmp_path / "m.engine"), "--backend", "auto")
    assert proc.returncode == 2 and "--opt-shapes" in proc.stderr and "dynamic dimension 'h'" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["relu.onnx"]
    proc = run_cli(
        "build", str(model), "-o", str(tmp_path / "m.engine"), "--backend", "auto", "--opt-shapes", "x:1x3x8x8"
    )
    assert proc.returncode == 0, proc.stderr
    assert _manifest(tmp_path / "m.engine")["build"]["profiles"]


def _save_block(
    folder: Path,
    name: str,
    nodes: list,
    weights: list,
    x_shape: list[int],
    y_shape: list[int],
    rng: np.random.Generator,
) -> tuple[Path, Path]:
    """``folder/NAME.onnx`` (x -> nodes -> y, opset 17) and ``folder/calib.npz`` with 16 seeded samples of x."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)
    model = folder / f"{name}.onnx"
    graph = helper.make_graph(nodes, name, [x], [y], weights)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    np.savez(folder / "calib.npz", x=rng.standard_normal((16, *x_shape[1:])).astype(np.float32))
    return model, folder / "calib.npz"


def _strided_block(folder: Path) -> tuple[Path, Path]:
    """ResNet's downsampling block: two strided 1x1 convolutions reading one ReLU, one through a 3x3."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    shapes = {"w0": (8, 8, 3, 3), "w1": (16, 8, 1, 1), "w2": (16, 16, 3, 3), "w3": (16, 8, 1, 1)}
    weights = [numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32), n) for n, s in shapes.items()]
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["c0"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"]),
        helper.make_node("Conv", ["r0", "w1"], ["c1"], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["r0", "w3"], ["c3"], strides=[2, 2]),
        helper.make_node("Add", ["c2", "c3"], ["y"]),
    ]
    return _save_block(folder, "strided", nodes, weights, [1, 8, 16, 16], [1, 16, 8, 8], rng)


def test_strided_1x1_convolutions_run_in_int8_as_with_nncf(tmp_path: Path) -> None:
    """OpenVINO read trtforge's Q/DQ pairs as chains that its strides pass split: the strided 1x1
    convolutions ran in FP32 with weights dequantized at every call (ResNet-50: 6 of 53)."""
    import onnxruntime as ort

    from trtforge.build import load

    model, calib = _strided_block(tmp_path)
    engine = tmp_path / "m.ov"
    calib_args = ("--calib-data", str(calib), "--calib-method", "minmax")
    proc = run_cli("build", str(model), "-o", str(engine), "--backend", "openvino", "--precision", "int8", *calib_args)
    assert proc.returncode == 0, proc.stderr
    build = _manifest(engine)["build"]
    assert build["int8_layers_by_type"]["Convolution"] == 4, build
    assert "dynamic" not in build["layers_by_precision"] and build["qdq_folded"].startswith(
        "5 "
    )  # x, r0, r1 and both Add inputs
    x = np.random.default_rng(1).standard_normal((1, 8, 16, 16)).astype(np.float32)
    want = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = load(engine).infer({"x": x})["y"]
    assert float((got * want).sum() / (np.linalg.norm(got) * np.linalg.norm(want))) > 0.99


def test_the_openvino_flavour_keeps_7_bit_weights_only_without_vnni() -> None:
    from trtforge.precision.quantize import openvino_flavour

    vnni, avx2 = openvino_flavour(frozenset({"avx2", "avx512_vnni"})), openvino_flavour(frozenset({"avx2"}))
    assert not vnni.reduce_range and avx2.reduce_range
    for f in (vnni, avx2):
        assert (f.activation_type, f.activation_symmetric, f.placement, f.quantize_bias) == (
            "uint8",
            False,
            "tensorrt",
            False,
        )


def _residual_block(folder: Path) -> tuple[Path, Path]:
    """ResNet's identity block: the last convolution's output added to the block's input, then ReLU."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    shapes = {"w0": (16, 8, 3, 3), "w1": (16, 16, 1, 1), "w2": (16, 16, 3, 3), "w3": (16, 16, 1, 1)}
    weights = [numpy_helper.from_array((rng.standard_normal(s) * 0.2).astype(np.float32), n) for n, s in shapes.items()]
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["c0"], pads=[1, 1, 1, 1], name="conv0"),
        helper.make_node("Relu", ["c0"], ["r0"], name="relu0"),
        helper.make_node("Conv", ["r0", "w1"], ["c1"], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Add", ["c2", "r0"], ["s"], name="residual_add"),
        helper.make_node("Relu", ["s"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w3"], ["y"], name="conv3"),
    ]
    return _save_block(folder, "residual", nodes, weights, [1, 8, 16, 16], [1, 16, 16, 16], rng)


def test_residual_adds_run_inside_an_int8_convolution_as_with_nncf(tmp_path: Path) -> None:
    """With Q/DQ on the skip input only (TensorRT's placement), OpenVINO ran ResNet's identity-block
    Adds as separate layers after convolutions that wrote FP32 (12 of ResNet-50's 16 Adds); with Q/DQ on
    both inputs, as NNCF places them, it fuses the Add into the u8 convolution as a sum."""
    import onnx

    from trtforge.precision.quantize import TENSORRT_FLAVOUR, openvino_flavour, quantize

    model, calib = _residual_block(tmp_path)
    ranges = {t: (-4.0, 4.0) for t in ("x", "c0", "r0", "c1", "r1", "c2", "s", "r2", "y")}
    for flavour, quantized_inputs in ((openvino_flavour(), 2), (TENSORRT_FLAVOUR, 1)):
        graph = quantize(onnx.load(str(model)), ranges, flavour).graph
        writer = {out: node.op_type for node in graph.node for out in node.output}
        add = next(n for n in graph.node if n.op_type == "Add")
        assert sum(writer.get(t) == "DequantizeLinear" for t in add.input) == quantized_inputs, flavour.name

    engine = tmp_path / "m.ov"
    calib_args = ("--calib-data", str(calib), "--calib-method", "minmax")
    proc = run_cli("build", str(model), "-o", str(engine), "--backend", "openvino", "--precision", "int8", *calib_args)
    assert proc.returncode == 0, proc.stderr
    layers = _runtime_layers(engine)
    with_add = [(kind, precision) for kind, precision, fused in layers if "residual_add" in fused]
    assert with_add == [("Convolution", "u8")], layers
    assert _manifest(engine)["build"]["int8_layers_by_type"]["Convolution"] == 4, layers


def _runtime_layers(engine: Path) -> list[tuple[str, str, list[str]]]:
    """(layer type, runtime precision, original layers fused into it) of the compiled engine."""
    from trtforge.build import load

    layers = []
    for op in load(engine).compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        fused = info["originalLayersNames"].astype(str).split(",") if "originalLayersNames" in info else []
        layers.append((info["layerType"].astype(str), info["runtimePrecision"].astype(str), fused))
    return layers


def _stem_block(folder: Path, relu: bool = True) -> tuple[Path, Path]:
    """ResNet's stem as Keras writes it: Conv, ReLU, zero Pad, MaxPool without padding, then a 1x1 Conv."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array((rng.standard_normal((16, 8, 3, 3)) * 0.2).astype(np.float32), "w0"),
        numpy_helper.from_array((rng.standard_normal((16, 16, 1, 1)) * 0.2).astype(np.float32), "w1"),
        numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["c0"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu" if relu else "Identity", ["c0"], ["r0"]),
        helper.make_node("Pad", ["r0", "pads"], ["p0"], name="stem_pad"),
        helper.make_node("MaxPool", ["p0"], ["m0"], kernel_shape=[3, 3], strides=[2, 2], name="stem_pool"),
        helper.make_node("Conv", ["m0", "w1"], ["y"]),
    ]
    return _save_block(folder, "stem", nodes, weights, [1, 8, 32, 32], [1, 16, 8, 8], rng)


def test_a_stems_max_pool_runs_in_u8_and_pads_by_itself(tmp_path: Path) -> None:
    """ResNet's stem (Conv, ReLU, Pad, MaxPool): without Q/DQ on the Pad's input the convolution wrote
    FP32 and Pad and MaxPool ran in FP32 (ResNet-50: 2-6% slower); with it, both ran u8, as in NNCF's
    engine. The Pad's zeros now go into the MaxPool's own padding (exact: the padded values are >= 0),
    so no Pad layer is left (ResNet-50's ran as a reference kernel, ~0.07-0.15 ms of ~11 ms)."""
    model, calib = _stem_block(tmp_path)
    engine = tmp_path / "m.ov"
    calib_args = ("--calib-data", str(calib), "--calib-method", "minmax")
    proc = run_cli("build", str(model), "-o", str(engine), "--backend", "openvino", "--precision", "int8", *calib_args)
    assert proc.returncode == 0, proc.stderr
    layers = _runtime_layers(engine)
    stem = [(kind, precision) for kind, precision, fused in layers if {"stem_pad", "stem_pool"} & set(fused)]
    assert stem == [("Pooling", "u8")], layers
    assert not [kind for kind, _, _ in layers if kind == "Pad"], layers
    assert _manifest(engine)["build"]["pads_folded"].startswith("1 "), _manifest(engine)["build"]


@pytest.mark.parametrize("relu, folded", [(True, True), (False, False)])
def test_a_pad_folds_into_a_max_pool_only_where_the_outputs_stay_the_same(
    tmp_path: Path, relu: bool, folded: bool
) -> None:
    """Max over a window with zeros added equals the max without them only when the values are >= 0:
    after a ReLU the fold is made and the FP32 engine equals ONNX Runtime; without it the Pad stays."""
    import onnxruntime as ort

    from trtforge.build import load

    model, _ = _stem_block(tmp_path, relu=relu)
    engine = tmp_path / "m.ov"
    proc = run_cli("build", str(model), "-o", str(engine), "--backend", "openvino")
    assert proc.returncode == 0, proc.stderr
    x = np.random.default_rng(1).standard_normal((4, 1, 8, 32, 32)).astype(np.float32)
    session, runner = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]), load(engine)
    for sample in x:
        np.testing.assert_allclose(runner.infer({"x": sample})["y"], session.run(None, {"x": sample})[0], atol=1e-5)
    assert ("pads_folded" in _manifest(engine)["build"]) is folded
    assert bool([kind for kind, _, _ in _runtime_layers(engine) if kind == "Pad"]) is not folded


def test_a_classifiers_pool_squeeze_and_gemm_run_in_u8_as_with_nncf(tmp_path: Path) -> None:
    """A classifier's tail (GlobalAveragePool, Squeeze, MatMul): with Q/DQ on the MatMul's input only,
    the pool wrote FP32 and a Reorder, the Squeeze and the FakeQuantize ran in FP32 (ResNet-50); with
    Q/DQ on the pool's output too, as NNCF places it, the pool writes u8 and the Squeeze runs in u8."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array((rng.standard_normal((32, 8, 3, 3)) * 0.2).astype(np.float32), "w0"),
        numpy_helper.from_array((rng.standard_normal((32, 10)) * 0.2).astype(np.float32), "w1"),
        numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["c0"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"]),
        helper.make_node("GlobalAveragePool", ["r0"], ["g0"], name="tail_pool"),
        helper.make_node("Squeeze", ["g0", "axes"], ["s0"], name="tail_squeeze"),
        helper.make_node("MatMul", ["s0", "w1"], ["y"], name="tail_fc"),
    ]
    model, _ = _save_block(tmp_path, "tail", nodes, weights, [1, 8, 16, 16], [1, 10], rng)
    engine = tmp_path / "m.ov"
    calib_args = ("--calib-data", str(tmp_path / "calib.npz"), "--calib-method", "minmax")
    proc = run_cli("build", str(model), "-o", str(engine), "--backend", "openvino", "--precision", "int8", *calib_args)
    assert proc.returncode == 0, proc.stderr
    layers = _runtime_layers(engine)
    tail = [(kind, precision) for kind, precision, fused in layers if {"tail_pool", "tail_squeeze"} & set(fused)]
    assert tail and all(precision == "u8" for _, precision in tail), layers
    assert not [kind for kind, precision, _ in layers if kind == "Reorder" and precision == "f32"], layers
