"""The search's speed-ups change no answer: variants quantized with a shared :class:`QuantMemo` are the
variants quantized from scratch, node for node and value for value; a timing race settles early and
reuses its sessions."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.precision.models import conv_bn_dense, residual_cnn
from tests.precision.outlier_models import inputs, outlier_channel_model
from trtforge.config import CalibMethod, CalibrationConfig
from trtforge.precision.mixed import Evaluator, Prepared, cosine, prepare_int8
from trtforge.precision.quantize import TENSORRT_FLAVOUR, QuantFlavour, cpu_flavour, openvino_flavour

FLAVOURS = {"onnxruntime-cpu": cpu_flavour(), "openvino-cpu": openvino_flavour(), "tensorrt": TENSORRT_FLAVOUR}


def _prepared(model: onnx.ModelProto, tmp_path: Path, flavour: QuantFlavour, method: CalibMethod) -> Prepared:
    """``model`` calibrated on 16 random samples of its input (bias correction on, as by default)."""
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    shape = [d.dim_value or 16 for d in model.graph.input[0].type.tensor_type.shape.dim]
    data = np.random.default_rng(1).normal(0, 1, shape).astype(np.float32)
    np.savez(tmp_path / "calib.npz", **{model.graph.input[0].name: data})
    return prepare_int8(model, CalibrationConfig(data=tmp_path / "calib.npz", method=method, num=16), flavour)


def big_bias_model() -> onnx.ModelProto:
    """x -> Conv+ReLU -> Conv(weights ~1e-4, biases 1e4)+ReLU -> pool -> Gemm(weights ~1e-4, biases 1e5):
    input scale x weight scale is too small for an int32 bias there, so ONNX Runtime raises those
    weights' scales (per channel, in place) before rounding them."""
    rng = np.random.default_rng(0)
    arrays = {
        "w0": rng.normal(0, 0.3, (8, 3, 3, 3)),
        "b0": rng.normal(0, 0.1, 8),
        "w1": rng.normal(0, 1e-4, (8, 8, 3, 3)),
        "b1": np.full(8, 1e4),
        "w2": rng.normal(0, 1e-4, (4, 8)),
        "b2": np.full(4, 1e5),
    }
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["a"], "conv0", **conv),
        helper.make_node("Relu", ["a"], ["ra"], "relu0"),
        helper.make_node("Conv", ["ra", "w1", "b1"], ["b"], "conv1", **conv),
        helper.make_node("Relu", ["b"], ["rb"], "relu1"),
        helper.make_node("GlobalAveragePool", ["rb"], ["p"], "pool"),
        helper.make_node("Flatten", ["p"], ["f"], "flatten"),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], "dense", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "big_bias",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])],
        [numpy_helper.from_array(a.astype(np.float32), n) for n, a in arrays.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


BUILDS: dict[str, Callable[[Path], onnx.ModelProto]] = {
    "residual_cnn": lambda _: residual_cnn(),
    "conv_bn_dense": lambda _: conv_bn_dense(),
    "big_bias": lambda _: big_bias_model(),
    "outlier_channel": lambda folder: onnx.load(str(outlier_channel_model(folder / "outlier.onnx"))),
}


def _scales(model: onnx.ModelProto, weight: str) -> np.ndarray:
    """The scales of the DequantizeLinear that dequantizes ``weight``'s INT8 copy."""
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    dq = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0].startswith(weight + "_"))
    return inits[dq.input[1]]


def _bytes(model: onnx.ModelProto) -> bytes:
    return model.SerializeToString(deterministic=True)


@pytest.mark.parametrize("flavour", FLAVOURS.values(), ids=FLAVOURS.keys())
@pytest.mark.parametrize("build", BUILDS.values(), ids=BUILDS.keys())
def test_variants_from_the_memo_are_the_variants_from_scratch(
    tmp_path: Path, flavour: QuantFlavour, build: Callable[[Path], onnx.ModelProto]
) -> None:
    """Every kind of variant the search asks for (all INT8, one unit float, one unit alone INT8, float
    units reading INT8 inputs, several float), in an order where each weight is rounded before under
    other exclusions, and all-INT8 again last: ONNX Runtime adjusts a weight's scale in place for its
    int32 bias: the memo hands out copies."""
    memoized = _prepared(build(tmp_path), tmp_path, flavour, CalibMethod.MSE)
    assert memoized.means, "bias correction is part of every variant"
    scratch = dataclasses.replace(memoized, memoize=False)
    units = memoized.units
    assert len(units) >= 2
    asks = [
        {},
        {"float_units": units[1:2]},
        {"only": units[0]},
        {"only": units[-1]},
        {"float_units": units[1:], "borders": {units[-1]}},
        {"float_units": units[:2]},
        {},
    ]
    for ask in asks:
        assert _bytes(memoized.quantized(**ask)) == _bytes(scratch.quantized(**ask)), ask
    assert memoized.memo._params and memoized.memo._rounded, "the memo no longer reaches ONNX Runtime's quantizer"
    assert not scratch.__dict__.get("memo")


def test_weights_whose_scales_onnx_runtime_raises_for_an_int32_bias_come_out_the_same(tmp_path: Path) -> None:
    """ONNX Runtime raises a weight's scales (in place, after computing them) where its int32 bias needs
    it, and only while the node is INT8: variants with the node INT8, alone or not, and float, in turn,
    are the same with the memo as without."""
    memoized = _prepared(big_bias_model(), tmp_path, cpu_flavour(), CalibMethod.MSE)
    scratch = dataclasses.replace(memoized, memoize=False)
    w1 = numpy_helper.to_array(next(i for i in memoized.model.graph.initializer if i.name == "w1"))
    own = np.abs(w1).reshape(8, -1).max(1) * 2 / 255  # symmetric INT8 per channel (ONNX Runtime's grid)
    conv1 = next(u for u in memoized.units if u.name == "conv1")
    asks = [{"only": conv1}, {}, {"float_units": [conv1]}, {"only": conv1}, {}]
    for ask in asks:
        assert _bytes(memoized.quantized(**ask)) == _bytes(scratch.quantized(**ask)), ask
    raised = _scales(memoized.quantized(), "w1")
    assert np.all(raised > own * 10), "the model no longer makes ONNX Runtime raise the scales: the test tests nothing"


def test_a_memo_serves_only_its_model(tmp_path: Path) -> None:
    from trtforge.precision.quantize import quantize

    prepared = _prepared(residual_cnn(), tmp_path, cpu_flavour(), CalibMethod.MINMAX)
    other = onnx.ModelProto()
    other.CopyFrom(prepared.model)
    with pytest.raises(AssertionError, match="serves the one model"):
        quantize(other, prepared.ranges, prepared.flavour, memo=prepared.memo)


def test_a_race_of_a_model_against_itself_settles_early_on_cached_sessions(tmp_path: Path) -> None:
    """Two rounds not won by the margin settle it (a model is never 5% faster than itself in 4 of 5
    rounds), and the sessions are the ones the evaluator already holds."""
    model = onnx.load(str(outlier_channel_model(tmp_path / "m.onnx")))
    evaluator = Evaluator(model, dict(np.load(inputs(tmp_path / "v.npz", 8, 2))), cosine)
    session = evaluator.session(model)
    race = evaluator.race(model, model)
    assert not race.second_faster and race.rounds < 5 and race.second_won <= race.rounds - 2
    assert evaluator.session(model) is session
    evaluator.error(model)
    assert evaluator.session(model) is session  # the reference run's session, not a new one
