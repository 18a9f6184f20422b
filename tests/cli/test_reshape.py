"""trtforge reshape / inspect from the command line: exit codes, one-line errors, nothing half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import onnx_models as M
import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")


def trtforge(*args: object) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "trtforge", *map(str, args)], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("models")
    onnx.save(M.flatten(1), d / "flat.onnx")
    onnx.save(M.baked_zeros(2), d / "zeros.onnx")
    onnx.save(M.two_inputs(2), d / "two.onnx")
    onnx.save(M.custom_op(), d / "custom.onnx")
    return d


def test_batch_4_patches_the_baked_reshape(models: Path, tmp_path: Path) -> None:
    r = trtforge("reshape", models / "flat.onnx", "-o", tmp_path / "b4.onnx", "--batch", "4")
    assert r.returncode == 0, r.stderr
    assert "Reshape 'flatten'" in r.stdout and "matched the original sample by sample" in r.stdout
    assert onnx.load(tmp_path / "b4.onnx").graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4


def test_refused_model_exits_2_with_one_line_and_writes_nothing(models: Path, tmp_path: Path) -> None:
    r = trtforge("reshape", models / "zeros.onnx", "-o", tmp_path / "out.onnx", "--batch", "4")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "ConstantOfShape 'zeros'" in r.stderr and "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_wrong_input_name_in_shapes_names_the_inputs(models: Path, tmp_path: Path) -> None:
    r = trtforge("reshape", models / "two.onnx", "-o", tmp_path / "out.onnx", "--shapes", "c:4x4")
    assert r.returncode == 2
    assert "no input named 'c'" in r.stderr and "a, b" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_malformed_shapes_exit_2(models: Path, tmp_path: Path) -> None:
    r = trtforge("reshape", models / "two.onnx", "-o", tmp_path / "out.onnx", "--shapes", "a:4xx4")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--shapes" in r.stderr


def test_shapes_to_dynamic_then_inspect_json(models: Path, tmp_path: Path) -> None:
    out = tmp_path / "dyn.onnx"
    r = trtforge("reshape", models / "two.onnx", "-o", out, "--shapes", "a:Nx4,b:Nx4", "--simplify")
    assert r.returncode == 0, r.stderr
    info = json.loads(trtforge("inspect", out, "--json").stdout)
    assert [i["shape"] for i in info["inputs"]] == [["N", 4], ["N", 4]]
    assert sorted(info["dynamic_dims"]["N"]) == ["a[0]", "b[0]"]


def test_inspect_lists_custom_ops(models: Path) -> None:
    r = trtforge("inspect", models / "custom.onnx")
    assert r.returncode == 0, r.stderr
    assert "com.example.MyPlugin x1" in r.stdout and "dynamic dim 'batch'" in r.stdout
