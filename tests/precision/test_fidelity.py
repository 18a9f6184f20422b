"""INT8 placement rules that keep a model faithful: graph outputs, fixed-range ops, joins, lineage.

Each model here is one where the placement before these rules measurably failed (noted per test).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.precision.models import (
    anchor_scores,
    conv_bn_dense,
    detector_head,
    residual_cnn,
    softmax_classifier,
)
from trtforge.config import CalibMethod
from trtforge.errors import TrtforgeError
from trtforge.precision.calibrate import calibrate
from trtforge.precision.check import compare_output, run
from trtforge.precision.quantize import (
    TENSORRT_FLAVOUR,
    QuantFlavour,
    bake_float_weights,
    bounded_ranges,
    cpu_flavour,
    ensure_opset,
    follow_exclusions,
    kept_float,
    lineage,
    output_carriers,
    prepare,
    quantize,
)

FLAVOURS = [cpu_flavour(), TENSORRT_FLAVOUR]


def _int8(
    model: onnx.ModelProto,
    data: dict[str, np.ndarray],
    flavour: QuantFlavour,
    method: CalibMethod = CalibMethod.ENTROPY,
    **kw,
) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    prepared = prepare(model)
    ranges = calibrate(prepared, [data], method)
    return prepared, quantize(prepared, ranges, flavour, **kw)


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in model.graph.node for o in n.output}


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda f: f.placement)
def test_softmax_output_stays_float_and_keeps_small_probabilities(flavour: QuantFlavour) -> None:
    # before: probs got Q/DQ (scale 1/255, zero point 0): every probability < 0.002 became 0,
    # cosine vs FP32 ~0.2 on this 1000-class model
    x = {"x": np.random.default_rng(0).standard_normal((16, 16)).astype(np.float32)}
    prepared, q = _int8(softmax_classifier(), x, flavour)
    assert _producers(q)["probs"].op_type == "Softmax"
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] == "probs" for n in q.graph.node)
    ref, got = run(prepared, x)["probs"], run(q, x)["probs"]
    assert np.count_nonzero(got) == got.size  # no probability rounds to zero
    assert compare_output("probs", ref, got, _strict()).worst_cosine > 0.95


def test_no_graph_output_is_quantized_even_when_its_producer_is() -> None:
    x = {"x": np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32)}
    _, q = _int8(residual_cnn(), x, cpu_flavour())  # the output Gemm is a quantized op
    out = _producers(q)["y"]
    assert out.op_type == "Gemm" and out.name == "fc"
    assert any(_producers(q)[t].op_type == "DequantizeLinear" for t in out.input[:2])  # its inputs are INT8


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda f: f.placement)
def test_a_float_output_convs_weights_are_baked_to_the_same_values(flavour: QuantFlavour) -> None:
    # ONNX Runtime runs a Conv without a Q after it in float: its weights' DequantizeLinear ran at every
    # inference; baked, the same values are constants. A Gemm keeps them (ONNX Runtime fuses DQ -> Gemm
    # into QGemm writing float); TensorRT keeps every DQ weight.
    x = {"x": np.random.default_rng(0).standard_normal((16, 4, 8, 8)).astype(np.float32)}
    _, q = _int8(anchor_scores(), x, flavour, CalibMethod.MINMAX)
    before = run(q, x)["scores"]
    baked = bake_float_weights(q, flavour)
    conv = next(n for n in q.graph.node if n.name == "classificator")
    if flavour.placement != "onnxruntime":
        assert baked == [] and _producers(q)[conv.input[1]].op_type == "DequantizeLinear"
        return
    assert baked == ["classificator"] and conv.input[1] not in _producers(q) and conv.input[2] not in _producers(q)
    assert _producers(q)[conv.input[0]].op_type == "DequantizeLinear"  # its input stays INT8
    np.testing.assert_allclose(run(q, x)["scores"], before, rtol=1e-6, atol=1e-5)
    _, gemm_model = _int8(residual_cnn(), {"x": x["x"][:, :3]}, flavour)  # its output Gemm writes y in float
    assert bake_float_weights(gemm_model, flavour) == []


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda f: f.placement)
def test_sigmoid_range_is_its_known_range_not_a_clipped_histogram(flavour: QuantFlavour) -> None:
    # before: entropy calibration clipped a sigmoid map to its histogram's bulk (PP-OCR: 0.063)
    model = prepare(detector_head(score_gain=1.0))  # a Mul reads the scores: they keep a Q/DQ on ONNX Runtime
    assert bounded_ranges(model)["scores"] == (0.0, 1.0)
    clipped = {**calibrate(model, [_head_data()], CalibMethod.MINMAX), "scores": (0.0, 0.063)}
    q = quantize(model, clipped, flavour)
    scales = {
        n.input[0]: numpy_helper.to_array(_init(q, n.input[1])) for n in q.graph.node if n.op_type == "QuantizeLinear"
    }
    if "scores" in scales:  # TensorRT places no Q/DQ on a Concat input; ONNX Runtime's CPU flavour does
        assert float(scales["scores"]) == pytest.approx(1 / 255 if flavour.activation_type == "uint8" else 1 / 127)
    ref, got = run(model, _head_data())["preds"], run(q, _head_data())["preds"]
    scores_ref, scores_got = ref[:, 4:].ravel(), got[:, 4:].ravel()
    assert np.max(np.abs(scores_got - scores_ref)) < 0.1  # clipped at 0.063, it was 0.9


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda f: f.placement)
def test_a_concat_of_unlike_ranges_is_not_forced_onto_one_scale(flavour: QuantFlavour) -> None:
    # before: boxes (0..~300) and scores (0..1) shared one scale after the Concat: scores became 0
    data = _head_data()
    prepared, q = _int8(detector_head(), data, flavour, CalibMethod.MINMAX)
    join = next(n for n in q.graph.node if n.name == "join")
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] == join.output[0] for n in q.graph.node)
    ref, got = run(prepared, data)["preds"], run(q, data)["preds"]
    check = compare_output("preds", ref, got, _strict())
    assert check.passed, check
    assert np.max(np.abs(got[:, 4:] - ref[:, 4:])) < 0.1


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda f: f.placement)
def test_logits_carried_to_an_output_by_layout_ops_stay_float(flavour: QuantFlavour) -> None:
    # before (ONNX Runtime's placement): Conv -> Q/DQ -> Transpose -> Q/DQ -> Reshape -> output; one scale
    # over [-400, 3] is ~1.6 wide and the ranking of the N(0, 1) logits was lost (MediaPipe's face detector:
    # 64% of FP32's top-20 anchors kept, 74% with its score heads float)
    model = anchor_scores()
    x = {"x": np.random.default_rng(0).standard_normal((16, 4, 8, 8)).astype(np.float32)}
    prepared, q = _int8(model, x, flavour, CalibMethod.MINMAX)
    assert set(output_carriers(prepared)) == {"scores", "nhwc", "logits"}
    assert not [n.input[0] for n in q.graph.node if n.op_type == "QuantizeLinear" and n.input[0] != "x"]
    conv = next(n for n in q.graph.node if n.name == "classificator")
    assert _producers(q)[conv.input[0]].op_type == "DequantizeLinear"  # its input and weights stay INT8
    ref, got = run(prepared, x)["scores"], run(q, x)["scores"]
    shared = [len(set(np.argsort(-r)[:10]) & set(np.argsort(-g)[:10])) for r, g in zip(ref, got)]
    assert np.mean(shared) >= 9  # of each sample's 10 best anchors (before: 6.6)
    assert np.max(np.abs(got - ref)[ref > -50]) < 0.2  # the anchors that can fire (before: 0.81)
    assert "reaches graph output 'scores' through layout ops" in kept_float(prepared, {})["classificator"]


def test_a_tensor_with_a_computing_reader_keeps_its_qdq_for_that_reader() -> None:
    # only the layout path reads the float tensor: the Mul still reads it through its Q/DQ pair
    model = prepare(detector_head(score_gain=2.0))
    ranges = calibrate(model, [_head_data()], CalibMethod.MINMAX)
    q = quantize(model, ranges, cpu_flavour())
    mul = next(n for n in q.graph.node if n.name == "score_gain")
    assert _producers(q)[mul.input[0]].op_type == "DequantizeLinear"
    assert "scores" not in output_carriers(model) and "gained" in output_carriers(model)


def test_exclusions_follow_fusions_by_source_and_fused_names() -> None:
    # before: --exclude-nodes dense/MatMul was accepted and had no effect; the fused name was refused
    source = conv_bn_dense()
    prepared = prepare(source)
    became = lineage(source, prepared)
    assert became["dense/MatMul"] == ["dense/MatMul/MatMulAddFusion"]
    assert became["dense/BiasAdd"] == ["dense/MatMul/MatMulAddFusion"]
    assert became["bn"] == ["conv"]
    x = {"x": np.random.default_rng(0).standard_normal((8, 3, 4, 4)).astype(np.float32)}
    ranges = calibrate(prepared, [x], CalibMethod.MINMAX)
    for nodes, types in [(("dense/MatMul",), ()), (("dense/MatMul/MatMulAddFusion",), ()), ((), ("MatMul",))]:
        excluded = follow_exclusions(source, prepared, nodes, types)
        assert excluded.nodes == ("dense/MatMul/MatMulAddFusion",)
        q = quantize(prepared, ranges, cpu_flavour(), excluded.nodes, excluded.op_types)
        gemm = next(n for n in q.graph.node if n.op_type == "Gemm")
        assert gemm.input[0] == "f" and gemm.input[1] == "wd"  # float input, float weights
        assert any(_producers(q)[n.input[1]].op_type == "DequantizeLinear" for n in q.graph.node if n.name == "conv")
    bn = follow_exclusions(source, prepared, ("bn",), ())
    assert bn.nodes == ("conv",) and bn.to_json() == {"float_nodes": {"bn": ["conv"]}}
    with pytest.raises(TrtforgeError, match="no node named 'nope'"):
        follow_exclusions(source, prepared, ("nope",), ())


def test_opset_below_13_is_upgraded_and_checked_before_calibration() -> None:
    old = conv_bn_dense(opset=11)
    upgraded, was = ensure_opset(old)
    assert was == 11 and next(o.version for o in upgraded.opset_import if o.domain == "") == 13
    assert ensure_opset(upgraded)[1] is None


def test_an_opset_the_converter_cannot_upgrade_is_refused() -> None:
    model = conv_bn_dense(opset=11)
    model.graph.node[0].op_type = "NoSuchOp"  # the converter has no adapter; nothing is calibrated
    with pytest.raises(TrtforgeError, match="INT8 needs opset 13 or later, the model is opset 11"):
        ensure_opset(model)


def _head_data() -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(1).standard_normal((8, 3, 8, 8)).astype(np.float32)}


def _init(model: onnx.ModelProto, name: str) -> onnx.TensorProto:
    return next(i for i in model.graph.initializer if i.name == name)


def _strict():  # the self-check's default thresholds
    from trtforge.precision.check import Thresholds

    return Thresholds()


def test_a_float_node_reads_the_activation_the_placement_folded() -> None:
    # ONNX Runtime drops a ReLU before its Q (the clamp does its work): an excluded reader would get
    # the values before the ReLU
    x = {"x": np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32)}
    prepared = prepare(residual_cnn())
    ranges = calibrate(prepared, [x], CalibMethod.MINMAX)
    q = quantize(prepared, ranges, cpu_flavour(), ("block_conv2",))
    conv2 = next(n for n in q.graph.node if n.name == "block_conv2")
    assert _producers(q)[conv2.input[0]].op_type == "Relu"
    ref, got = run(prepared, x)["y"], run(q, x)["y"]
    assert compare_output("y", ref, got, _strict()).worst_cosine > 0.95
