"""ONNX Runtime CPU INT8 engines pad the integer tensor where ONNX Runtime would pad in float between
a DequantizeLinear and a QuantizeLinear of the same parameters (it has no rule to drop them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from tests.precision.models import channel_pad_block

import trtforge
from trtforge.config import BuildConfig, CalibrationConfig
from trtforge.precision.check import run
from trtforge.precision.quantize import integer_pads


def _int8(tmp_path: Path) -> tuple[onnx.ModelProto, object]:
    onnx.save(channel_pad_block(), str(tmp_path / "m.onnx"))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((40, 4, 8, 8)).astype(np.float32))
    config = BuildConfig(precision="int8", calibration=CalibrationConfig(data=tmp_path / "calib.npz"))
    manifest = trtforge.build(tmp_path / "m.onnx", tmp_path / "m.engine", config)
    return onnx.load_from_string((tmp_path / "m.engine").read_bytes()), manifest.build.get("integer_pads")


def _optimized(model: onnx.ModelProto, path: Path) -> onnx.ModelProto:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(path)
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return onnx.load(str(path))


def _pad_reads_a_dequantized_tensor(model: onnx.ModelProto) -> bool:
    producer = {out: node.op_type for node in model.graph.node for out in node.output}
    return any(producer.get(n.input[0]) == "DequantizeLinear" for n in model.graph.node if n.op_type == "Pad")


def test_the_cpu_int8_engine_pads_integers_with_the_same_answers(tmp_path: Path) -> None:
    engine, recorded = _int8(tmp_path)
    assert recorded == ["channel_padding"]
    pad = next(n for n in engine.graph.node if n.op_type == "Pad")
    zero = next(i for i in engine.graph.initializer if i.name == pad.input[2])
    assert zero.data_type == onnx.TensorProto.UINT8  # pads with the zero point, not 0.0
    assert not _pad_reads_a_dequantized_tensor(_optimized(engine, tmp_path / "opt.onnx"))


def test_the_rewrite_keeps_every_value(tmp_path: Path) -> None:
    from trtforge.precision.apply import apply
    from trtforge.precision.quantize import cpu_flavour

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((40, 4, 8, 8)).astype(np.float32))
    config = BuildConfig(precision="int8", calibration=CalibrationConfig(data=tmp_path / "calib.npz"))
    quantized, _ = apply(channel_pad_block(), config, cpu_flavour())
    assert _pad_reads_a_dequantized_tensor(_optimized(quantized, tmp_path / "before.onnx"))
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(quantized)
    assert integer_pads(rewritten) == ["channel_padding"]
    feeds = {"x": rng.standard_normal((16, 4, 8, 8)).astype(np.float32)}
    assert np.array_equal(run(quantized, feeds)["y"], run(rewritten, feeds)["y"])


def test_a_pad_with_another_value_or_other_parameters_stays_float(tmp_path: Path) -> None:
    from trtforge.precision.apply import apply
    from trtforge.precision.quantize import cpu_flavour

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((40, 4, 8, 8)).astype(np.float32))
    config = BuildConfig(precision="int8", calibration=CalibrationConfig(data=tmp_path / "calib.npz"))
    quantized, _ = apply(channel_pad_block(), config, cpu_flavour())
    pad = next(n for n in quantized.graph.node if n.op_type == "Pad")
    quantized.graph.initializer.append(onnx.numpy_helper.from_array(np.array(1.0, np.float32), "one"))
    pad.input.append("one")  # pads with 1.0: not the zero point
    assert integer_pads(quantized) == []
