"""Reshape on models shaped like real ones from the wild (issue 15, classes 1-3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import wild_models as W

from trtforge.errors import TrtforgeError
from trtforge.graph.batch import batch_axes
from trtforge.graph.model import graph_inputs
from trtforge.graph.shapes import infer, reshape
from trtforge.graph.verify import session


def _shapes(path: Path) -> dict[str, str]:
    return {t.name: t.shape_text() for t in graph_inputs(onnx.load(path))}


def test_an_output_inference_cannot_shape_stays_valid_with_unknown_dims() -> None:
    inferred = infer(W.uninferable_output())
    onnx.checker.check_model(inferred)  # raised "Field 'shape' of 'type' is required" before
    dims = inferred.graph.output[0].type.tensor_type.shape.dim
    assert len(dims) == 2 and not any(d.HasField("dim_value") or d.HasField("dim_param") for d in dims)


def test_batch_axes_of_state_and_scalar_inputs() -> None:
    assert batch_axes(graph_inputs(W.stateful())) == {"x": 0, "state": 1, "sr": None}


def test_reshape_batch_one_sets_the_state_batch_and_leaves_the_scalar(tmp_path: Path) -> None:
    out = tmp_path / "b1.onnx"
    done = reshape(_save(W.stateful(), tmp_path), out, 1)
    assert _shapes(out) == {"x": "1x4", "state": "2x1x3", "sr": "scalar"}
    onnx.checker.check_model(onnx.load(out))
    assert "matched the original" in done.check


def test_the_check_feeds_a_scalar_the_value_the_graph_tests_for(tmp_path: Path) -> None:
    out = tmp_path / "b1.onnx"
    reshape(_save(W.stateful(), tmp_path), out, 1)
    run = session(onnx.load(out)).run
    x = np.ones((1, 4), np.float32)
    state = np.zeros((2, 1, 3), np.float32)
    assert run(["y"], {"x": x, "state": state, "sr": np.array(16000, np.int64)})[0].item() == 8.0


def test_dynamic_height_and_width_are_probed_at_a_sensible_size(tmp_path: Path) -> None:
    out = tmp_path / "b1.onnx"
    done = reshape(_save(W.valid_convs(), tmp_path), out, 1)
    assert "images:1x3x64x64" in done.check
    assert _shapes(out) == {"images": "1x3xheightxwidth"}


def test_a_model_that_needs_other_sizes_is_told_to_give_them_with_shapes(tmp_path: Path) -> None:
    source = _save(W.valid_convs(fixed_size=100), tmp_path)
    with pytest.raises(TrtforgeError, match=r"raw:1x3xheightxwidth has dynamic dims other than the batch.*--shapes"):
        reshape(source, tmp_path / "b1.onnx", 1)
    assert not (tmp_path / "b1.onnx").exists()
    done = reshape(source, tmp_path / "fixed.onnx", shapes="raw:1x3x100x100")
    assert "matched the original" in done.check


def _save(model: onnx.ModelProto, folder: Path) -> Path:
    path = folder / "source.onnx"
    onnx.save(model, path)
    return path
