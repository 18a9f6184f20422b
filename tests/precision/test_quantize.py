"""Q/DQ flavours: TensorRT's (symmetric, inputs of fusable ops, residual Adds) and the CPU's."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.precision.models import residual_cnn, separable_cnn, weight_bits
from trtforge.config import CalibMethod
from trtforge.errors import TrtforgeError
from trtforge.precision.calibrate import calibrate
from trtforge.precision.quantize import (
    TENSORRT_FLAVOUR,
    _shape_inferred,
    cpu_flavour,
    depthwise_weights,
    pool_output_ranges,
    quantize,
)
from trtforge.precision.quantmemo import QuantMemo


@pytest.fixture(scope="module")
def model_and_ranges() -> tuple[onnx.ModelProto, dict[str, tuple[float, float]]]:
    model = residual_cnn()
    rng = np.random.default_rng(0)
    batches = [{"x": rng.standard_normal((4, 3, 8, 8)).astype(np.float32)} for _ in range(4)]
    return model, calibrate(model, batches, CalibMethod.MINMAX)


def _consts(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in model.graph.node for o in n.output}


def test_tensorrt_flavour_is_symmetric_int8(model_and_ranges) -> None:
    model, ranges = model_and_ranges
    q = quantize(model, ranges, TENSORRT_FLAVOUR)
    consts = _consts(q)
    qdq = [n for n in q.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq, "no Q/DQ nodes were inserted"
    for node in qdq:
        zero_point = consts[node.input[2]]
        assert zero_point.dtype == np.int8 and not zero_point.any(), f"{node.name}: zero point {zero_point}"
    # per-channel weights: the Conv weights' scales have one entry per output channel
    weight_dq = [n for n in qdq if n.op_type == "DequantizeLinear" and n.input[0] in consts]
    assert any(consts[n.input[1]].shape == (8,) for n in weight_dq)
    # no INT32 bias: TensorRT has no DequantizeLinear from INT32
    assert all(consts[n.input[0]].dtype == np.int8 for n in weight_dq)


def test_tensorrt_flavour_places_qdq_for_fusions(model_and_ranges) -> None:
    model, ranges = model_and_ranges
    q = quantize(model, ranges, TENSORRT_FLAVOUR)
    producers = _producers(q)
    nodes = {n.name: n for n in q.graph.node}
    # inputs of the weighted ops are quantized...
    for name in ("stem", "block_conv1", "block_conv2", "fc"):
        assert producers[nodes[name].input[0]].op_type == "DequantizeLinear", name
    # ...their outputs are not (TensorRT fuses a following Q itself)
    assert producers[nodes["block_relu1"].input[0]].op_type == "Conv"
    # the residual Add: the Conv branch fuses into the Conv, the skip branch is quantized
    add = nodes["residual_add"]
    assert producers[add.input[0]].op_type == "Conv"
    assert producers[add.input[1]].op_type == "DequantizeLinear"


def test_cpu_flavour_differs_from_tensorrt(model_and_ranges) -> None:
    model, ranges = model_and_ranges
    q = quantize(model, ranges, cpu_flavour())
    consts = _consts(q)
    activation_zps = [consts[n.input[2]] for n in q.graph.node if n.op_type == "QuantizeLinear"]
    assert activation_zps and all(z.dtype == np.uint8 for z in activation_zps)


def test_excluded_nodes_and_op_types_stay_float(model_and_ranges) -> None:
    model, ranges = model_and_ranges
    q = quantize(model, ranges, TENSORRT_FLAVOUR, exclude_nodes=("block_conv1",), exclude_op_types=("Gemm",))
    producers = _producers(q)
    nodes = {n.name: n for n in q.graph.node}
    assert producers[nodes["block_conv1"].input[0]].op_type == "Relu"
    assert nodes["block_conv1"].input[1] == "w1"  # float weights, no DQ
    assert producers[nodes["fc"].input[0]].op_type == "Flatten"
    assert producers[nodes["stem"].input[0]].op_type == "DequantizeLinear"


def test_unknown_exclusions_are_user_errors(model_and_ranges) -> None:
    model, ranges = model_and_ranges
    with pytest.raises(TrtforgeError, match="no node named 'nope'"):
        quantize(model, ranges, TENSORRT_FLAVOUR, exclude_nodes=("nope",))
    with pytest.raises(TrtforgeError, match="no 'Softmax' node"):
        quantize(model, ranges, TENSORRT_FLAVOUR, exclude_op_types=("Softmax",))


def test_tensorrt_flavour_builds_with_tensorrt_rtx(model_and_ranges) -> None:
    trt = pytest.importorskip("tensorrt_rtx")
    model, ranges = model_and_ranges
    q = quantize(model, ranges, TENSORRT_FLAVOUR)
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # strongly typed: the graph's Q/DQ decide the precision
    parser = trt.OnnxParser(network, logger)
    ok = parser.parse(q.SerializeToString())
    assert ok, [str(parser.get_error(i)) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8))
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    assert engine is not None and engine.nbytes > 0
    layers = [network.get_layer(i).type for i in range(network.num_layers)]
    assert trt.LayerType.QUANTIZE in layers and trt.LayerType.DEQUANTIZE in layers


def test_prepare_fuses_folded_batchnorm_so_no_qdq_splits_it() -> None:
    """Conv -> Mul(constant), as tf2onnx writes a folded BN: prepare() fuses the Mul into the Conv."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from trtforge.precision.quantize import prepare

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.uniform(0.5, 2, (1, 4, 1, 1)).astype(np.float32), "gamma"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["c", "gamma"], ["m"], name="bn_mul"),
        helper.make_node("Relu", ["m"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 6, 6])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    prepared = prepare(model)
    assert [n.op_type for n in prepared.graph.node] == ["Conv", "Relu"]
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)

    def run(m: onnx.ModelProto) -> np.ndarray:
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    np.testing.assert_allclose(run(prepared), run(model), rtol=1e-5, atol=1e-5)
    q = quantize(prepared, calibrate(prepared, [{"x": x}], CalibMethod.MINMAX), cpu_flavour())
    assert "Mul" not in {n.op_type for n in q.graph.node}


def test_cpu_flavour_follows_vnni() -> None:
    with_vnni = cpu_flavour(frozenset({"avx2", "avx512_vnni"}))
    without = cpu_flavour(frozenset({"avx2", "fma"}))
    assert not with_vnni.reduce_range and "VNNI" in with_vnni.reason
    assert without.reduce_range and "saturation" in without.reason
    assert (with_vnni.activation_type, with_vnni.weight_type) == ("uint8", "int8")
    assert TENSORRT_FLAVOUR.activation_symmetric and TENSORRT_FLAVOUR.activation_type == "int8"


def test_without_vnni_depthwise_weights_keep_8_bits_and_the_rest_7() -> None:
    model = separable_cnn()
    x = np.random.default_rng(0).standard_normal((4, 16, 8, 8)).astype(np.float32)
    ranges = calibrate(model, [{"x": x}], CalibMethod.MINMAX)
    avx2 = cpu_flavour(frozenset({"avx2", "fma"}))
    assert avx2.full_range_depthwise and "depthwise" in avx2.reason
    assert depthwise_weights(model) == ["dw"]
    assert weight_bits(quantize(model, ranges, avx2)) == {"expand": 64, "depthwise": 127, "project": 64}
    vnni = cpu_flavour(frozenset({"avx2", "avx512_vnni"}))
    assert not vnni.full_range_depthwise
    assert weight_bits(quantize(model, ranges, vnni)) == {"expand": 127, "depthwise": 127, "project": 127}
    # the same answer through the memo the sensitivity search shares between variants
    memo = QuantMemo(model)
    for _ in range(2):
        assert weight_bits(quantize(model, ranges, avx2, memo=memo)) == {"expand": 64, "depthwise": 127, "project": 64}


def test_a_pool_onnx_runtime_would_refuse_gets_an_output_range_it_takes(model_and_ranges) -> None:
    """A pool whose outputs all sit near 0 (a random-weight network's) after inputs spanning several units:
    ONNX Runtime's QLinearGlobalAveragePool refuses scales 256 x H x W apart ("parameter out of computation
    range"); the pool's output range becomes the input's over 128 x H x W. Ranges it accepts stay."""
    import onnxruntime as ort

    model, ranges = model_and_ranges
    narrow = {**ranges, "pool": (0.0, 1e-9), "flat": (0.0, 1e-9)}
    q = quantize(model, narrow, cpu_flavour())
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    session = ort.InferenceSession(q.SerializeToString(), providers=["CPUExecutionProvider"])
    assert np.isfinite(session.run(None, {"x": x})[0]).all()
    scale = {n.output[0]: _consts(q)[n.input[1]] for n in q.graph.node if n.op_type == "QuantizeLinear"}
    assert np.isclose(scale["pool_QuantizeLinear_Output"] * 255, ranges["r2"][1] / (128 * 8 * 8), rtol=1e-5)
    inferred = _shape_inferred(model)
    assert pool_output_ranges(inferred, ranges) == ranges
    assert pool_output_ranges(inferred, narrow, {"pool"}) == narrow  # a float pool: nothing to widen
