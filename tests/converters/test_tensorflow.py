"""Every TensorFlow form converts and is checked against TensorFlow; every refusal says what to do.

The models are built once per session (tests/converters/tf_models.py, conftest.py); conversions run in
this process (one TensorFlow import), the CLI behaviours in test_convert_cli.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")

import trtforge  # noqa: E402
from trtforge.errors import TrtforgeError, VerificationError  # noqa: E402


def io(path: Path) -> tuple[dict[str, list[object]], dict[str, list[object]]]:
    model = onnx.load(str(path))

    def dims(v: onnx.ValueInfoProto) -> list[object]:
        return [d.dim_value if d.HasField("dim_value") else "?" for d in v.type.tensor_type.shape.dim]

    return {v.name: dims(v) for v in model.graph.input}, {v.name: dims(v) for v in model.graph.output}


def assert_checked(result: trtforge.converters.Conversion, outputs: int) -> None:
    assert result.verified and len(result.checks) == outputs
    assert all(c.ok and c.max_abs < 1e-4 for c in result.checks), [c.describe() for c in result.checks]


def test_saved_model_serving_signature_with_nchw_image(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "sm.onnx"
    result = trtforge.convert(models["savedmodel"], out, inputs_as_nchw="image")
    assert result.form == "savedmodel" and "serving_default" in result.note
    assert_checked(result, 2)
    inputs, outputs = io(out)
    assert inputs == {"image": ["?", 3, 8, 8], "extra": ["?", 4]} or inputs == {
        "extra": ["?", 4],
        "image": ["?", 3, 8, 8],
    }
    assert sorted(outputs) == ["output_0", "output_1"]


def test_saved_model_wrong_signature_or_tag_lists_the_choices(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(TrtforgeError, match="serving_default"):
        trtforge.convert(models["savedmodel"], tmp_path / "x.onnx", signature="predict")
    with pytest.raises(TrtforgeError, match="tag sets are: serve"):
        trtforge.convert(models["savedmodel"], tmp_path / "x.onnx", tag="train")
    assert not (tmp_path / "x.onnx").exists()


def test_keras_nchw_in_and_out_dynamic_batch_matches_keras(models: dict[str, Path], tmp_path: Path) -> None:
    import keras
    import onnxruntime as ort

    out = tmp_path / "k.onnx"
    result = trtforge.convert(models["keras"], out, inputs_as_nchw=["image"], outputs_as_nchw=["conv"], batch="dynamic")
    assert_checked(result, 2)
    inputs, outputs = io(out)
    assert inputs == {"image": ["?", 3, 8, 8], "extra": ["?", 4]}
    assert list(outputs) == ["logits", "conv"] and outputs["conv"] == ["?", 4, 8, 8]
    # Independently of convert's own check: NHWC data through Keras == its NCHW transpose through ORT.
    rng = np.random.default_rng(7)
    image, extra = rng.normal(size=(5, 8, 8, 3)).astype(np.float32), rng.normal(size=(5, 4)).astype(np.float32)
    want = keras.saving.load_model(models["keras"])([image, extra])
    got = ort.InferenceSession(str(out)).run(None, {"image": image.transpose(0, 3, 1, 2), "extra": extra})
    np.testing.assert_allclose(got[0], np.asarray(want[0]), atol=1e-5)
    np.testing.assert_allclose(got[1], np.asarray(want[1]).transpose(0, 3, 1, 2), atol=1e-5)


def test_h5_batch_fixed_at_export(models: dict[str, Path], tmp_path: Path) -> None:
    result = trtforge.convert(models["h5"], tmp_path / "h.onnx", batch=1)
    assert result.form == "h5"
    assert_checked(result, 2)
    inputs, outputs = io(tmp_path / "h.onnx")
    assert inputs["image"] == [1, 8, 8, 3] and outputs["logits"] == [1, 3]


def test_nchw_refused_for_other_ranks(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(TrtforgeError, match="rank 2.*rank-4"):
        trtforge.convert(models["keras"], tmp_path / "x.onnx", outputs_as_nchw="logits")


def test_h5_custom_layer_with_custom_objects(models: dict[str, Path], tmp_path: Path) -> None:
    result = trtforge.convert(models["custom_h5"], tmp_path / "c.onnx", custom_objects=models["custom_py"])
    assert_checked(result, 1)


def test_tflite_takes_its_signature_names(models: dict[str, Path], tmp_path: Path) -> None:
    result = trtforge.convert(models["tflite"], tmp_path / "t.onnx", inputs_as_nchw="image")
    assert result.form == "tflite" and "TFLite" in result.framework
    assert_checked(result, 2)
    inputs, outputs = io(tmp_path / "t.onnx")
    assert inputs == {"extra": ["?", 4], "image": ["?", 3, 8, 8]} and sorted(outputs) == ["output_0", "output_1"]


def test_tflite_batch_and_nchw_output(models: dict[str, Path], tmp_path: Path) -> None:
    # Two outputs of one TFLite op: tf2onnx's own outputs_as_nchw would transpose the wrong one.
    result = trtforge.convert(models["tflite"], tmp_path / "t2.onnx", batch=2, outputs_as_nchw="output_1")
    assert_checked(result, 2)
    assert "batch 2" in result.note
    inputs, outputs = io(tmp_path / "t2.onnx")
    assert inputs["image"] == [2, 8, 8, 3] and outputs == {"output_1": [2, 4, 8, 8], "output_0": [2, 3]}


def test_frozen_graph_needs_names_and_lists_candidates(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(TrtforgeError, match=r"--inputs and --outputs.*x:0 \(-1x6\).*y:0"):
        trtforge.convert(models["pb"], tmp_path / "x.onnx")
    with pytest.raises(TrtforgeError, match="no tensor 'nope'.*x:0"):
        trtforge.convert(models["pb"], tmp_path / "x.onnx", inputs="nope", outputs="y")


def test_frozen_graph_with_shape_and_renames(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "pb.onnx"
    result = trtforge.convert(
        models["pb"], out, inputs="x:0[4,6]", outputs="y:0", rename_inputs="x=features", rename_outputs="score"
    )
    assert_checked(result, 1)
    inputs, outputs = io(out)
    assert inputs == {"features": [4, 6]} and outputs == {"score": [4, 2]}


def test_tf1_checkpoint_meta(models: dict[str, Path], tmp_path: Path) -> None:
    result = trtforge.convert(models["meta"], tmp_path / "m.onnx", inputs="x", outputs="y", batch=3)
    assert result.form == "checkpoint"
    assert_checked(result, 1)
    assert io(tmp_path / "m.onnx")[0] == {"x": [3, 3]}


def test_tf2_checkpoint_refused_with_export_advice(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(TrtforgeError, match=r"TensorFlow 2 checkpoint.*model\.export\('saved_model'\)"):
        trtforge.convert(models["tf2ckpt"], tmp_path / "x.onnx")


def test_over_tolerance_raises_and_writes_nothing(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "x.onnx"
    with pytest.raises(VerificationError, match=r"output 'conv' max abs error [0-9.e-]+, max rel error"):
        trtforge.convert(models["keras"], out, atol=0.0, rtol=0.0)
    assert not out.exists()


def test_saved_model_batch_nchw_output_and_rename(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "sm3.onnx"
    result = trtforge.convert(
        models["savedmodel"], out, batch=3, outputs_as_nchw="output_1", rename_outputs="output_0=scores"
    )
    assert_checked(result, 2)
    inputs, outputs = io(out)
    assert inputs["image"] == [3, 8, 8, 3] and outputs == {"scores": [3, 3], "output_1": [3, 4, 8, 8]}


def test_opset_beyond_the_converter_is_refused(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(TrtforgeError, match="up to 18"):
        trtforge.convert(models["keras"], tmp_path / "x.onnx", opset=20)


def test_opset_13_converts(models: dict[str, Path], tmp_path: Path) -> None:
    result = trtforge.convert(models["pb"], tmp_path / "o13.onnx", opset=13, inputs="x", outputs="y")
    assert_checked(result, 1)
    assert {o.domain: o.version for o in onnx.load(str(tmp_path / "o13.onnx")).opset_import}[""] == 13
