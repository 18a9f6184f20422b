"""``run`` in-process: samples from an image folder reach the model at the model's size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from trtforge.cli import main
from trtforge.run import run


def _gray_mean_model(path: Path, size: int = 8) -> Path:
    """x[1,1,size,size] -> ReduceMean over H, W -> y[1,1]."""
    node = helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _images(folder: Path, values: list[int], size: tuple[int, int] = (30, 20)) -> Path:
    folder.mkdir()
    for i, v in enumerate(values):
        Image.fromarray(np.full(size[::-1], v, np.uint8), "L").save(folder / f"{i:02d}_0.png")
    return folder


@pytest.mark.parametrize("mode", ["fit", "letterbox", "stretch"])
def test_a_bare_resize_mode_takes_the_model_inputs_size(tmp_path: Path, mode: str, capsys) -> None:
    model = _gray_mean_model(tmp_path / "tiny.onnx")
    images = _images(tmp_path / "imgs", [0, 255])
    out = tmp_path / "out.npz"
    code = main(
        [
            "run",
            str(model),
            "--inputs",
            str(images),
            "--preprocess",
            f"color=gray,resize={mode},scale=1/255,layout=nchw",
            "-o",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    y = np.load(out)["y"]
    assert y.shape == (2, 1)
    if mode == "letterbox":  # grey 114 pads the rows a 3:2 image leaves free
        assert 0.0 < y[0, 0] < 114 / 255 < y[1, 0] < 1.0
    else:
        assert y[:, 0] == pytest.approx([0.0, 1.0], abs=1e-6)


def test_an_rgb_preprocess_into_a_gray_input_is_one_line(tmp_path: Path, capsys) -> None:
    model = _gray_mean_model(tmp_path / "tiny.onnx")
    images = _images(tmp_path / "imgs", [10])
    code = main(["run", str(model), "--inputs", str(images), "--preprocess", "color=rgb,resize=fit"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "3-channel" in err[0] and "1 channels" in err[0] and "color=gray" in err[0]


def test_the_library_run_takes_a_preprocess_value(tmp_path: Path) -> None:
    from trtforge.data.preprocess import Preprocess

    model = _gray_mean_model(tmp_path / "tiny.onnx")
    result = run(model, _images(tmp_path / "imgs", [51]), Preprocess.parse("color=gray,resize=fit,scale=1/255"))
    assert result.outputs["y"][0, 0] == pytest.approx(0.2, abs=1e-6)
    assert len(result.samples) == 1 and result.samples.labels is not None
