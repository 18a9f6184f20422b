"""Shared fixtures: the digits sample converted once per test session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"

# Tiny ONNX models built in code, shared by tests/graph and tests/e2e.
sys.path.insert(0, str(Path(__file__).parent / "graph"))
DIGITS_PREPROCESS = "color=gray,resize=32x32,scale=1/255,layout=nchw"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m trtforge ARGS`` with this checkout's sources first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "trtforge", *args], capture_output=True, text=True,
                          cwd=cwd, env=env)


@pytest.fixture(scope="session")
def digits_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits SavedModel converted to ONNX with an NCHW input (dynamic batch)."""
    out = tmp_path_factory.mktemp("digits") / "digits.onnx"
    proc = run_cli("convert", str(DIGITS / "saved_model"), "-o", str(out), "--inputs-as-nchw", "image")
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="session")
def digits_bs1(digits_onnx: Path) -> Path:
    out = digits_onnx.with_name("digits-bs1.onnx")
    proc = run_cli("reshape", str(digits_onnx), "-o", str(out), "--batch", "1")
    assert proc.returncode == 0, proc.stderr
    return out
