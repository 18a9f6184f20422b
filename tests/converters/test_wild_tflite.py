"""TFLite sources from the wild (issue 15): quantized weights, custom ops, streaming state."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def int8_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small conv net with int8 weights (dynamic-range quantization: hybrid kernels)."""
    tf = pytest.importorskip("tensorflow")
    tf.keras.utils.set_random_seed(0)
    # Every layer named: Keras's automatic names ("dense_1") count per process, and other tests
    # in this process expect their own.
    inp = tf.keras.Input((16, 16, 3), batch_size=1, name="q_image")
    x = tf.keras.layers.Conv2D(32, 3, activation="relu", name="q_conv1")(inp)
    x = tf.keras.layers.Conv2D(32, 3, activation="relu", name="q_conv2")(x)
    x = tf.keras.layers.Flatten(name="q_flat")(x)
    out = tf.keras.layers.Dense(10, name="q_logits")(x)
    converter = tf.lite.TFLiteConverter.from_keras_model(tf.keras.Model(inp, out, name="q"))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    path = tmp_path_factory.mktemp("q") / "q.tflite"
    path.write_bytes(converter.convert())
    return path


def test_int8_weight_source_is_judged_as_quantized_not_blamed_on_the_converter(int8_weights: Path) -> None:
    out = int8_weights.parent / "q.onnx"
    done = run_cli("convert", str(int8_weights), "-o", str(out))
    assert done.returncode == 1 and not out.exists()
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "the source has int8 weights" in line and "the source's own kernels differ from each other by" in line
    assert "converter" not in line and "--opset" not in line
    suggested = line.split("pass --atol ")[1].split(",")[0]
    again = run_cli("convert", str(int8_weights), "-o", str(out), "--atol", suggested)
    assert again.returncode == 0, again.stderr


def test_an_unconverted_tflite_custom_op_is_named() -> None:
    from trtforge.converters.tensorflow import unconverted_ops

    nodes = [
        h.make_node("TFL_Convolution2DTransposeBias", ["x"], ["y"], name="segment"),
        h.make_node("Relu", ["y"], ["z"], name="relu"),
    ]
    graph = h.make_graph(
        nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [1])], [h.make_tensor_value_info("z", T.FLOAT, [1])]
    )
    assert unconverted_ops(h.make_model(graph)) == {"Convolution2DTransposeBias": "segment"}
    assert unconverted_ops(onnx.ModelProto()) == {}


def test_inspect_describes_a_quantized_tflite_source(int8_weights: Path) -> None:
    done = run_cli("inspect", str(int8_weights))
    assert done.returncode == 0, done.stderr
    assert "tflite model" in done.stdout and "input  " in done.stdout and "float32 1x16x16x3" in done.stdout
    assert "quantized: int8 weights" in done.stdout and "CONV_2D x2" in done.stdout
    assert done.stderr == ""


@pytest.mark.parametrize("form", ["h5", "savedmodel"])
def test_inspect_describes_keras_and_savedmodel_sources(models: dict[str, Path], form: str) -> None:
    done = run_cli("inspect", str(models[form]), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["form"] == form and len(summary["inputs"]) == 2 and len(summary["outputs"]) == 2
    assert summary["parameters"] > 0 and summary["ops"]
