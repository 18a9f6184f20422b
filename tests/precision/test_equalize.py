"""Channel equalisation before INT8: a depthwise Conv's input channels evened out, the function kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from trtforge.precision.check import run
from trtforge.precision.equalize import CLIP_MARGIN, equalize, find_pairs

CHANNELS = 8


def depthwise_model(activation: str = "Relu", branch: bool = False, seed: int = 0) -> onnx.ModelProto:
    """x [N, 4, 8, 8] -> 1x1 Conv (4 -> 8) + ``activation`` -> depthwise 3x3 Conv -> Relu -> 1x1 Conv (8 -> 4).

    Relu: the producer's channel 0 is scaled by 1000 and the depthwise weights of channel 0 by 1/1000 (same
    function): one per-tensor INT8 scale for the tensor between them leaves the other seven channels
    less than a level. Clip (ReLU6): channel 0 times 3 (it reaches the bound, 6), channels 1-7 times 1/80
    and their depthwise weights times 80, so they reach 0.05 or so (under 3 INT8 levels of 0..6).
    ``branch``: a second reader (a pool to a second output) also reads the tensor, so it must not be scaled."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.5, (CHANNELS, 4, 1, 1)).astype(np.float32)
    b1 = rng.uniform(0.0, 0.3, CHANNELS).astype(np.float32)
    dw = rng.normal(0, 0.5, (CHANNELS, 1, 3, 3)).astype(np.float32)
    if activation == "Clip":
        w1[0], b1[0], dw[0] = w1[0] * 3.0, b1[0] * 3.0, dw[0] / 3.0
        w1[1:] /= 80.0
        b1[1:] /= 80.0
        dw[1:] *= 80.0
    else:
        w1[0] *= 1000.0
        b1[0] *= 1000.0
        dw[0] /= 1000.0
    weights = [
        (w1, "w1"),
        (b1, "b1"),
        (dw, "dw"),
        (np.zeros(CHANNELS, np.float32), "bdw"),
        (rng.normal(0, 0.5, (4, CHANNELS, 1, 1)).astype(np.float32), "w3"),
        (np.zeros(4, np.float32), "b3"),
        (np.float32(0.0), "lo"),
        (np.float32(6.0), "hi"),
    ]
    act = (
        helper.make_node("Clip", ["a", "lo", "hi"], ["ra"], "expand/relu6")
        if activation == "Clip"
        else helper.make_node(activation, ["a"], ["ra"], "expand/relu")
    )
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["a"], "expand/conv", kernel_shape=[1, 1]),
        act,
        helper.make_node("Conv", ["ra", "dw", "bdw"], ["d"], "depthwise", kernel_shape=[3, 3], pads=[1] * 4, group=8),
        helper.make_node("Relu", ["d"], ["rd"], "depthwise/relu"),
        helper.make_node("Conv", ["rd", "w3", "b3"], ["y"], "project/conv", kernel_shape=[1, 1]),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8, 8])]
    if branch:
        nodes.append(helper.make_node("GlobalAveragePool", ["ra"], ["pooled"], "branch/pool"))
        outputs.append(helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["N", CHANNELS, 1, 1]))
    graph = helper.make_graph(
        nodes,
        "depthwise",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 8, 8])],
        outputs,
        [numpy_helper.from_array(a, n) for a, n in weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _data(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, 4, 8, 8)).astype(np.float32)


def _batches(n: int = 32, seed: int = 0) -> list[dict[str, np.ndarray]]:
    x = _data(n, seed)
    return [{"x": x[i : i + 8]} for i in range(0, n, 8)]


@pytest.mark.parametrize("activation", ["Relu", "Clip", "LeakyRelu"])
def test_equalising_keeps_the_function_and_evens_the_channels(activation: str) -> None:
    model = depthwise_model(activation)
    equalised, facts = equalize(model, _batches())
    assert facts["applied"] and facts["pairs"] == 1 and facts["largest_output_change"] < 1e-5
    held = {"x": _data(16, seed=5)}
    np.testing.assert_allclose(run(equalised, held)["y"], run(model, held)["y"], rtol=1e-4, atol=1e-4)
    probe = helper.make_tensor_value_info("ra", TensorProto.FLOAT, None)
    for m in (model, equalised):
        m.graph.output.append(probe)
    before, after = (np.abs(run(m, held)["ra"]).max(axis=(0, 2, 3)) for m in (model, equalised))
    assert before.max() / before.min() > 50  # one channel dwarfs the rest ...
    assert after.max() / after.min() < 16  # ... and no longer (a scale is at most MAX_SCALE)
    if activation == "Clip":  # the bound stays out of reach: every channel at most 6 / margin on calibration
        assert facts["scaled"][0]["headroom"] >= CLIP_MARGIN * 0.999


def test_a_tensor_another_node_reads_is_left_alone() -> None:
    model = depthwise_model(branch=True)
    assert find_pairs(model) == []
    same, facts = equalize(model, _batches())
    assert same is model and not facts["applied"] and "no producer" in facts["reason"]


def _int8_error(
    tmp_path: Path, model: onnx.ModelProto, equalize_on: bool, cache: Path | None = None, data: bool = True
) -> tuple[float, object]:
    import trtforge
    from trtforge.config import BuildConfig, CalibrationConfig

    onnx.save(model, str(tmp_path / "m.onnx"))
    np.savez(tmp_path / "calib.npz", x=_data(48, seed=0))
    out = tmp_path / f"m-{equalize_on}-{data}.onnx"
    calibration = CalibrationConfig(
        data=tmp_path / "calib.npz" if data else None, method="mse", equalize=equalize_on, cache=cache
    )
    manifest = trtforge.build(
        tmp_path / "m.onnx", out, BuildConfig(precision="int8", calibration=calibration, allow_inaccurate=True)
    )
    held = {"x": _data(32, seed=9)}
    ref, got = run(model, held)["y"], run(onnx.load(str(out)), held)["y"]
    return float(np.abs(got - ref).max() / np.ptp(ref)), (manifest.calibration or {})["equalization"]


@pytest.mark.parametrize("activation", ["Relu", "Clip"])
def test_int8_of_a_dwarfed_depthwise_input_fails_plain_and_holds_equalised(tmp_path, activation: str) -> None:
    model = depthwise_model(activation)
    plain, off = _int8_error(tmp_path, model, False)
    equalised, facts = _int8_error(tmp_path, model, True)
    assert off == "off (--no-equalize)"
    assert isinstance(facts, dict) and facts["applied"] and facts["pairs"] == 1
    assert equalised < 0.08 < 0.2 < plain, (equalised, plain)  # measured 0.05 against 0.45 (Relu), 0.27 (Clip)


def test_a_calibration_cache_describes_the_model_as_given_so_nothing_is_equalised(tmp_path) -> None:
    """Its ranges are read by TensorRT's calibrator and by later builds without data: equalised tensors'
    ranges in it would be wrong for both."""
    cache = tmp_path / "calib.cache"
    written, facts = _int8_error(tmp_path, depthwise_model(), True, cache=cache)
    assert cache.exists() and isinstance(facts, str) and facts.startswith("not applied: --calib-cache given")
    read, facts = _int8_error(tmp_path, depthwise_model(), True, cache=cache, data=False)
    assert isinstance(facts, str) and facts.startswith("not applied: --calib-cache given")
    assert written > 0.2 and read > 0.2  # plain INT8's error: the ranges in the cache fit the model as given


@pytest.mark.parametrize(
    "argv",
    [
        ["build", "m.onnx", "-o", "m.plan", "--precision", "int8"],
        ["deploy", "m.onnx", "--output", "d"],
        ["sensitivity", "m.onnx", "--calib-data", "c", "--val-data", "v"],
    ],
)
def test_every_int8_verb_equalises_unless_told_not_to(argv: list[str]) -> None:
    from trtforge.cli import make_parser
    from trtforge.config import CalibrationConfig

    assert make_parser().parse_args(argv).equalize is True and CalibrationConfig(data=Path("c")).equalize
    assert make_parser().parse_args([*argv, "--no-equalize"]).equalize is False


def test_exec_takes_no_equalize() -> None:
    from trtforge.cli.trtexec.flags import parse

    assert parse(["--onnx=m.onnx", "--int8", "--calib-data=c", "--no-equalize"]).equalize is False


def test_channels_that_already_share_a_range_are_left_alone_without_a_clip() -> None:
    from trtforge.precision.equalize import MIN_SPREAD, Pair, scales

    even = np.array([1.0, 0.5, 0.4, 0.3], np.float32)  # spread 2.2: the data-driven range fits every channel
    assert (scales(Pair("p", "d", (), "t", None), even) == 1).all()
    assert scales(Pair("p", "d", (), "t", 6.0), even).max() > 1  # under a Clip the range is [0, 6] whatever
    dwarfed = np.array([MIN_SPREAD * 4, 1.0, 1.0, 0.0], np.float32)
    assert scales(Pair("p", "d", (), "t", None), dwarfed).tolist() == [1.0, MIN_SPREAD * 4, MIN_SPREAD * 4, 1.0]


def test_scales_that_change_the_held_back_outputs_are_refused() -> None:
    """Under a Clip the scales hold up to twice each channel's calibrated maximum: held-back samples ten
    times larger cross the moved bound, the outputs change, and the pass is dropped (the model comes back)."""
    model = depthwise_model("Clip")
    big = [{"x": _data(8, seed=3) * 10.0}]
    same, facts = equalize(model, _batches(), big)
    assert same is model and not facts["applied"] and "outputs changed" in facts["reason"]
    kept, facts = equalize(model, _batches(), _batches(8, seed=3))  # held-back samples like the rest: kept
    assert facts["applied"] and facts["checked_on"] == "8 held-back samples"
