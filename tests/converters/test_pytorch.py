"""PyTorch both ways: a .pt2 ExportedProgram and module.py:factory, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

import trtforge  # noqa: E402
from trtforge.errors import TrtforgeError  # noqa: E402

NET = '''
import torch


class Net(torch.nn.Module):
    """An NCHW image and a vector in; class scores and a feature map out."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 + 5, 2)

    def forward(self, image, extra):
        features = torch.relu(self.conv(image))
        return self.fc(torch.cat([features.mean((2, 3)), extra], 1)), features


def make():
    torch.manual_seed(0)
    return Net()
'''


@pytest.fixture(scope="module")
def net_py(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("torch") / "net.py"
    path.write_text(NET)
    return path


def shapes(path: Path) -> dict[str, list[object]]:
    model = onnx.load(str(path))
    return {
        v.name: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]
        for v in [*model.graph.input, *model.graph.output]
    }


def test_exported_program_keeps_its_dynamic_batch(net_py: Path, tmp_path: Path) -> None:
    from trtforge.converters import import_file

    model = import_file(net_py, "test module").make().eval()
    batch = torch.export.Dim("batch")
    program = torch.export.export(
        model, (torch.rand(2, 3, 8, 8), torch.rand(2, 5)), dynamic_shapes=({0: batch}, {0: batch})
    )
    torch.export.save(program, tmp_path / "net.pt2")
    out = tmp_path / "net.onnx"
    result = trtforge.convert(tmp_path / "net.pt2", out)
    assert result.form == "torch" and result.framework == "PyTorch"
    assert len(result.checks) == 2 and all(c.ok for c in result.checks)
    assert shapes(out) == {
        "image": ["batch", 3, 8, 8],
        "extra": ["batch", 5],
        "output_0": ["batch", 2],
        "output_1": ["batch", 4, 8, 8],
    }


def test_module_factory_with_input_shapes_and_batch(net_py: Path, tmp_path: Path) -> None:
    import onnxruntime as ort

    out = tmp_path / "f.onnx"
    result = trtforge.convert(f"{net_py}:make", out, input_shapes="image:1x3x8x8,extra:1x5", batch=4)
    assert all(c.ok for c in result.checks) and len(result.checks) == 2
    assert shapes(out)["image"] == [4, 3, 8, 8]
    x, e = (
        np.random.default_rng(1).random((4, 3, 8, 8), np.float32),
        np.random.default_rng(2).random((4, 5), np.float32),
    )
    from trtforge.converters import import_file

    with torch.no_grad():
        want = import_file(net_py, "test module").make()(torch.from_numpy(x), torch.from_numpy(e))
    got = ort.InferenceSession(str(out)).run(None, {"image": x, "extra": e})
    np.testing.assert_allclose(got[0], want[0].numpy(), atol=1e-5)


def test_module_factory_needs_input_shapes(net_py: Path, tmp_path: Path) -> None:
    with pytest.raises(TrtforgeError, match="--input-shape NAME:DIMS"):
        trtforge.convert(f"{net_py}:make", tmp_path / "x.onnx")
    with pytest.raises(TrtforgeError, match="no function 'build'"):
        trtforge.convert(f"{net_py}:build", tmp_path / "x.onnx", input_shapes="image:1x3x8x8")


def test_pickled_weights_refused_with_advice(tmp_path: Path) -> None:
    weights = tmp_path / "model.pth"
    torch.save({"w": torch.zeros(2)}, weights)
    with pytest.raises(TrtforgeError, match=r"torch\.export\.save"):
        trtforge.convert(weights, tmp_path / "x.onnx")


def test_exported_program_with_a_static_batch_refuses_another(net_py: Path, tmp_path: Path) -> None:
    from trtforge.converters import import_file

    model = import_file(net_py, "test module").make().eval()
    torch.export.save(torch.export.export(model, (torch.rand(2, 3, 8, 8), torch.rand(2, 5))), tmp_path / "s.pt2")
    with pytest.raises(TrtforgeError, match="re-export it with dynamic_shapes"):
        trtforge.convert(tmp_path / "s.pt2", tmp_path / "x.onnx", batch=1)
    assert not (tmp_path / "x.onnx").exists()


def test_nhwc_module_exposed_as_nchw(tmp_path: Path) -> None:
    (tmp_path / "nhwc.py").write_text(
        "import torch\n\nclass Net(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.conv = torch.nn.Conv2d(3, 2, 1)\n"
        "    def forward(self, x):\n        return self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)\n\n"
        "def make():\n    torch.manual_seed(0)\n    return Net()\n"
    )
    out = tmp_path / "nchw.onnx"
    result = trtforge.convert(
        f"{tmp_path / 'nhwc.py'}:make", out, input_shapes="x:1x5x6x3", inputs_as_nchw="x", outputs_as_nchw="output"
    )
    assert len(result.checks) == 1 and result.checks[0].ok
    assert shapes(out) == {"x": [1, 3, 5, 6], "output": [1, 2, 5, 6]}
    with pytest.raises(TrtforgeError, match="rank 2"):
        trtforge.convert(f"{tmp_path / 'nhwc.py'}:make", out, input_shapes="x:1x5", inputs_as_nchw="x")
