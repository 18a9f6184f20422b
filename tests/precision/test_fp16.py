"""FP16/BF16 casts checked against FP32, and IO formats at the graph's edges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import trtforge
from tests.conftest import run_cli
from trtforge.config import BuildConfig, Precision
from trtforge.errors import TrtforgeError
from trtforge.precision.fp16 import cast
from trtforge.precision.ioformat import parse_formats


def _scale_chain() -> onnx.ModelProto:
    """x * 300 * 300 / 90000: the middle tensor reaches 9e4 for |x| near 1, past FP16's 65504."""
    consts = [
        numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("k300", 300.0), ("k_inv", 1.0 / 90000.0))
    ]
    nodes = [
        helper.make_node("Mul", ["x", "k300"], ["a"], name="up1"),
        helper.make_node("Mul", ["a", "k300"], ["b"], name="up2"),
        helper.make_node("Mul", ["b", "k_inv"], ["c"], name="down"),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "overflow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        consts,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _run_half(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """Evaluate with real FP16 arithmetic (ONNX Runtime's CPU provider computes FP16 Mul in FP32)."""
    from onnx.reference import ReferenceEvaluator

    with np.errstate(over="ignore"):
        return ReferenceEvaluator(model).run(None, feeds)[0]


FEEDS = {"x": np.linspace(-1, 1, 64, dtype=np.float32).reshape(1, 64)}


def test_unchecked_cast_overflows_and_checked_cast_keeps_the_overflowing_nodes_fp32() -> None:
    model = _scale_chain()
    expected = _run(model, FEEDS)
    naive, _ = cast(model, Precision.FP16)
    assert not np.all(np.isfinite(_run_half(naive, FEEDS))), "the model must overflow when cast blindly"

    checked, report = cast(model, Precision.FP16, FEEDS, "test data")
    for got in (_run(checked, FEEDS), _run_half(checked, FEEDS)):
        np.testing.assert_allclose(got, expected, rtol=1e-2, atol=1e-3)
    assert "up2" in report.kept and "FP16 range" in report.kept["up2"]
    assert "down" in report.kept  # its FP16 input would be inf: found by the drift check
    assert "up1" not in report.kept and "relu" not in report.kept
    assert report.output_error["y"] <= 1e-2


def test_user_exclusions_stay_fp32_and_are_reported() -> None:
    casted, report = cast(_scale_chain(), Precision.FP16, exclude_nodes=("relu",), exclude_op_types=("Mul",))
    assert report.kept == {"relu": "excluded by the user"} and "Mul" in report.blocked_op_types
    graph = onnx.shape_inference.infer_shapes(casted).graph
    kinds = {v.name: v.type.tensor_type.elem_type for v in list(graph.value_info) + list(graph.output)}
    assert kinds["b"] == TensorProto.FLOAT and kinds["y"] == TensorProto.FLOAT
    assert not [n for n in casted.graph.node if n.op_type == "Cast"], "an all-FP32 graph needs no casts"
    np.testing.assert_array_equal(_run(casted, FEEDS), _run(_scale_chain(), FEEDS))


def test_bf16_cast_rounds_weights_from_fp32() -> None:
    import ml_dtypes

    casted, _ = cast(_scale_chain(), Precision.BF16)
    weights = {t.name: t for t in casted.graph.initializer}
    assert weights["k_inv__bf16"].data_type == TensorProto.BFLOAT16
    value = np.frombuffer(weights["k_inv__bf16"].raw_data, dtype=ml_dtypes.bfloat16).astype(np.float32)[0]
    assert value == np.float32(1.0 / 90000.0).astype(ml_dtypes.bfloat16).astype(np.float32)
    assert {v.type.tensor_type.elem_type for v in casted.graph.input} == {TensorProto.FLOAT}


def test_fp16_digits_engine_keeps_accuracy(digits_bs1: Path, tmp_path: Path) -> None:
    from tests.e2e.test_digits_path import top1

    fp32, fp16 = tmp_path / "fp32.engine", tmp_path / "fp16.engine"
    trtforge.build(digits_bs1, fp32)
    manifest = trtforge.build(digits_bs1, fp16, BuildConfig(precision=Precision.FP16))
    assert manifest.precision == "fp16" and manifest.build["cast"]["checked_on"].startswith("seeded random")
    model = onnx.load(str(fp16))
    assert any(t.data_type == TensorProto.FLOAT16 for t in model.graph.initializer)
    assert abs(top1(fp32) - top1(fp16)) <= 0.001  # the goal: within 0.1 point


def test_fp16_io_formats_give_fp16_boundaries_without_edge_casts(digits_bs1: Path, tmp_path: Path) -> None:
    engine = tmp_path / "io.engine"
    config = BuildConfig(
        precision=Precision.FP16, input_formats=parse_formats("fp16:chw"), output_formats=parse_formats("fp16:chw")
    )
    manifest = trtforge.build(digits_bs1, engine, config)
    assert manifest.inputs[0].dtype == "float16" and manifest.outputs[0].dtype == "float16"
    assert manifest.build["io_formats"]["retyped"] == {"image": "float16", "output_0": "float16"}
    model = onnx.load(str(engine))
    float_casts = [
        n
        for n in model.graph.node
        if n.op_type == "Cast" and n.attribute[0].i in (TensorProto.FLOAT, TensorProto.FLOAT16)
    ]
    assert not float_casts, [n.name for n in float_casts]
    runner = trtforge.load(engine)
    x = np.random.default_rng(0).uniform(0, 1, (1, 1, 32, 32)).astype(np.float16)
    out = runner.infer({"image": x})["output_0"]
    reference = trtforge.load(_fp32(digits_bs1, tmp_path)).infer({"image": x.astype(np.float32)})["output_0"]
    assert out.dtype == np.float16
    np.testing.assert_allclose(out.astype(np.float32), reference, atol=2e-2)


def _fp32(onnx_path: Path, tmp_path: Path) -> Path:
    engine = tmp_path / "ref.engine"
    trtforge.build(onnx_path, engine)
    return engine


def test_fp32_engine_with_fp16_io_casts_at_the_edges(digits_bs1: Path, tmp_path: Path) -> None:
    engine = tmp_path / "io32.engine"
    trtforge.build(digits_bs1, engine, BuildConfig(input_formats=parse_formats("fp16:chw")))
    model = onnx.load(str(engine))
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT16
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert model.graph.node[0].op_type == "Cast"


def test_formats_onnxruntime_cannot_honour_are_refused(digits_bs1: Path, tmp_path: Path) -> None:
    proc = run_cli("build", str(digits_bs1), "-o", str(tmp_path / "x.engine"), "--input-format", "fp16:hwc8")
    assert proc.returncode == 2 and "linear (chw)" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.engine").exists()
    with pytest.raises(TrtforgeError, match="2 input IO formats given for 1 inputs"):
        trtforge.build(digits_bs1, tmp_path / "y.engine", BuildConfig(input_formats=parse_formats("fp16:chw,fp32:chw")))


def test_bf16_on_onnxruntime_cpu_says_which_backend_to_use(digits_bs1: Path, tmp_path: Path) -> None:
    proc = run_cli("build", str(digits_bs1), "-o", str(tmp_path / "b.engine"), "--precision", "bf16")
    if proc.returncode == 0:  # a future ONNX Runtime with BF16 CPU kernels: then the engine must be BF16
        assert onnx.load(str(tmp_path / "b.engine")).graph.initializer[0].data_type == TensorProto.BFLOAT16
    else:
        assert proc.returncode == 2 and "--backend tensorrt-rtx" in proc.stderr and "Traceback" not in proc.stderr


def test_build_config_takes_precision_words() -> None:
    from trtforge.config import CalibMethod, CalibrationConfig

    assert BuildConfig(precision="fp16").precision is Precision.FP16  # type: ignore[arg-type]
    calibration = CalibrationConfig(data="calib", method="minmax")  # type: ignore[arg-type]
    assert calibration.method is CalibMethod.MINMAX and calibration.data == Path("calib")
    with pytest.raises(TrtforgeError, match="unknown precision 'fp12'"):
        BuildConfig(precision="fp12")  # type: ignore[arg-type]
