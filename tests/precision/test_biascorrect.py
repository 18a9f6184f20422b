"""Bias correction removes the mean output shift that rounding the weights to INT8 causes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from trtforge.config import CalibMethod
from trtforge.precision.biascorrect import correct_biases, correct_biases_empirically
from trtforge.precision.calibrate import calibrate
from trtforge.precision.check import run
from trtforge.precision.quantize import TENSORRT_FLAVOUR, QuantFlavour, cpu_flavour, quantize

VNNI = frozenset({"avx512_vnni"})  # full 8-bit weights, whatever this CPU has


def biased_conv(channels: int = 16, outs: int = 4) -> onnx.ModelProto:
    """A padded 3x3 Conv whose weights all round the same way: per output channel one weight of 1.27
    (so the INT8 step is 0.01) and the rest 0.0149, each rounded down to 0.01. On inputs with mean 1
    the INT8 Conv then reads 143 * 0.0049 = 0.70 low inside, less on the borders (which see zeros):
    a bias designed in, which a per-channel mean alone would over-correct by about 0.1."""
    w = np.full((outs, channels, 3, 3), 0.0149, np.float32)
    w[:, 0, 0, 0] = 1.27
    b = np.linspace(-0.5, 0.5, outs).astype(np.float32)
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [conv],
        "biased",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", outs, 8, 8])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _data(n: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.5, 1.5, (n, 16, 8, 8)).astype(np.float32)


def test_calibration_gathers_per_channel_means() -> None:
    means: dict[str, np.ndarray] = {}
    x = _data()
    calibrate(biased_conv(), [{"x": x[:8]}, {"x": x[8:]}], CalibMethod.MSE, channel_means=means)
    np.testing.assert_allclose(means["x"], x.mean(axis=0), rtol=1e-5)  # per channel and position


@pytest.mark.parametrize("flavour", [cpu_flavour(VNNI), TENSORRT_FLAVOUR], ids=["int32 bias", "float bias"])
def test_bias_correction_removes_a_designed_bias(flavour: QuantFlavour) -> None:
    model, x = biased_conv(), _data()
    means: dict[str, np.ndarray] = {}
    ranges = calibrate(model, [{"x": x}], CalibMethod.MSE, channel_means=means)
    quantized = quantize(model, ranges, flavour)
    reference = run(model, {"x": x})["y"]
    before = float(np.mean(run(quantized, {"x": x})["y"] - reference))
    facts = correct_biases(model, quantized, means)
    after = float(np.mean(run(quantized, {"x": x})["y"] - reference))
    assert before < -0.5  # the designed bias is there without correction
    assert abs(after) < 0.02 and facts["nodes"] == 1
    held = _data(seed=1)  # and it stays removed on other data of the same distribution
    assert abs(float(np.mean(run(quantized, {"x": held})["y"] - run(model, {"x": held})["y"]))) < 0.02


def test_build_corrects_biases_unless_told_not_to(tmp_path) -> None:
    import trtforge
    from trtforge.config import BuildConfig, CalibrationConfig

    onnx.save(biased_conv(), str(tmp_path / "m.onnx"))
    np.savez(tmp_path / "calib.npz", x=_data(20))
    errors = {}
    for corrected in (True, False):
        out = tmp_path / f"m-{corrected}.onnx"
        calibration = CalibrationConfig(data=tmp_path / "calib.npz", method="mse", bias_correction=corrected)
        manifest = trtforge.build(
            tmp_path / "m.onnx", out, BuildConfig(precision="int8", calibration=calibration, allow_inaccurate=True)
        )
        facts = (manifest.calibration or {})["bias_correction"]
        assert (
            facts == {"nodes": 1, "largest_shift": pytest.approx(0.59, abs=0.05)}
            if corrected
            else facts.startswith("off")
        )
        x = _data(seed=2)
        errors[corrected] = abs(
            float(np.mean(run(onnx.load(str(out)), {"x": x})["y"] - run(biased_conv(), {"x": x})["y"]))
        )
    assert errors[True] < 0.02 < 0.5 < errors[False]


def test_known_shifts_are_reused_not_recomputed() -> None:
    """The sensitivity search quantizes one model once per unit: a node's shift is computed once."""
    model, x = biased_conv(), _data()
    means: dict[str, np.ndarray] = {}
    ranges = calibrate(model, [{"x": x}], CalibMethod.MSE, channel_means=means)
    known: dict[str, np.ndarray] = {}
    correct_biases(model, quantize(model, ranges, TENSORRT_FLAVOUR), means, known)
    assert set(known) == {"conv"} and float(np.abs(known["conv"]).max()) > 0.5
    known["conv"] = np.zeros_like(known["conv"])  # a reused shift of zero leaves the designed bias in
    again = quantize(model, ranges, TENSORRT_FLAVOUR)
    correct_biases(model, again, means, known)
    assert float(np.mean(run(again, {"x": x})["y"] - run(model, {"x": x})["y"])) < -0.5


def rounded_conv(channels: int = 16, outs: int = 4) -> onnx.ModelProto:
    """A 1x1 Conv whose weights (all 0.5) are exact in INT8, so the weights' error is zero and the
    weight-only correction shifts nothing; its input (``_skewed``) is mostly near 0 with a long tail,
    so the activation's INT8 step is large and most values round down to 0: a mean output shift that
    only the activations' quantization causes, designed in."""
    w = np.full((outs, channels, 1, 1), 0.5, np.float32)
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv")
    graph = helper.make_graph(
        [conv],
        "rounded",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", outs, 8, 8])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.zeros(outs, np.float32), "b")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _skewed(n: int = 32, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_exponential((n, 16, 8, 8)) ** 3).astype(np.float32)


@pytest.mark.parametrize("flavour", [cpu_flavour(VNNI), TENSORRT_FLAVOUR], ids=["int32 bias", "float bias"])
def test_measured_correction_counts_the_activations_quantization(flavour: QuantFlavour) -> None:
    model, x = rounded_conv(), _skewed()
    means: dict[str, np.ndarray] = {}
    quantized = quantize(model, calibrate(model, [{"x": x}], CalibMethod.MSE, channel_means=means), flavour)
    assert correct_biases(model, quantized, means)["largest_shift"] == 0.0  # the weights are exact
    reference = run(model, {"x": x})["y"]
    before = float(np.mean(run(quantized, {"x": x})["y"] - reference))
    facts = correct_biases_empirically(model, quantized, [{"x": x[:16]}, {"x": x[16:]}])
    after = float(np.mean(run(quantized, {"x": x})["y"] - reference))
    assert before < -0.5 and abs(after) < 0.02 and facts["nodes"] == 1 and facts["samples"] == 32
    held = _skewed(seed=1)
    held_error = float(np.mean(run(quantized, {"x": held})["y"] - run(model, {"x": held})["y"]))
    assert abs(held_error) < abs(before) / 2


def test_build_measures_the_correction_unless_told_not_to(tmp_path) -> None:
    import trtforge
    from trtforge.config import BuildConfig, CalibrationConfig

    onnx.save(rounded_conv(), str(tmp_path / "m.onnx"))
    np.savez(tmp_path / "calib.npz", x=_skewed(40))
    errors = {}
    for measured in (True, False):
        out = tmp_path / f"m-{measured}.onnx"
        calibration = CalibrationConfig(data=tmp_path / "calib.npz", method="mse", empirical_bias_correction=measured)
        manifest = trtforge.build(
            tmp_path / "m.onnx", out, BuildConfig(precision="int8", calibration=calibration, allow_inaccurate=True)
        )
        facts = (manifest.calibration or {}).get("empirical_bias_correction")
        assert facts["nodes"] == 1 if measured else facts.startswith("off")
        x = _skewed(seed=2)
        errors[measured] = abs(
            float(np.mean(run(onnx.load(str(out)), {"x": x})["y"] - run(rounded_conv(), {"x": x})["y"]))
        )
    assert errors[True] < errors[False] / 2
