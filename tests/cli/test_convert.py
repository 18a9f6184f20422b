"""`trtforge convert` from the command line: what it prints, and its exit codes.

2: fix the input; 1: the check failed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import run_cli, run_cli_subprocess


def one_line_error(proc, code: int, *mentions: str) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("trtforge: error: "), proc.stderr
    for text in mentions:
        assert text in lines[0], lines[0]
    return lines[0]


def test_h5_with_custom_objects_prints_the_check(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "c.onnx"
    proc = run_cli("convert", str(models["custom_h5"]), "-o", str(out), "--custom-objects", str(models["custom_py"]))
    assert proc.returncode == 0, proc.stderr
    assert "verified against Keras" in proc.stdout and "output 'dense_1' max abs error" in proc.stdout
    assert out.exists()


def test_h5_custom_layer_missing_names_the_class(models: dict[str, Path], tmp_path: Path) -> None:
    # A fresh process: once a test registered the class with --custom-objects, Keras's registry knows it.
    out = tmp_path / "x.onnx"
    one_line_error(
        run_cli_subprocess("convert", str(models["custom_h5"]), "-o", str(out)), 2, "'Scale'", "--custom-objects"
    )
    assert not out.exists()


def test_tf2_checkpoint_refused(models: dict[str, Path], tmp_path: Path) -> None:
    proc = run_cli("convert", str(models["tf2ckpt"]) + ".index", "-o", str(tmp_path / "x.onnx"))
    one_line_error(proc, 2, "TensorFlow 2 checkpoint", "model.export('saved_model')")


def test_over_tolerance_exits_1_and_writes_nothing(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "x.onnx"
    proc = run_cli("convert", str(models["keras"]), "-o", str(out), "--atol", "0", "--rtol", "0")
    one_line_error(proc, 1, "disagrees with Keras", "max abs error", "--no-verify")
    assert not out.exists()


def test_torch_module_factory(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    (tmp_path / "tiny.py").write_text(
        "import torch\n\ndef build():\n    torch.manual_seed(0)\n"
        "    return torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 3))\n"
    )
    out = tmp_path / "tiny.onnx"
    proc = run_cli(
        "convert", f"{tmp_path / 'tiny.py'}:build", "-o", str(out), "--input-shape", "x:1x3x6x6", "--batch", "dynamic"
    )
    assert proc.returncode == 0, proc.stderr
    assert "verified against PyTorch" in proc.stdout and "output 'output' max abs error" in proc.stdout
