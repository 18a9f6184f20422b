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
    """``trtforge ARGS`` in this process (``cli.main``), with stdout and stderr captured.

    In-process, a command costs its own work, not a fresh interpreter importing TensorFlow: most CLI
    tests run this way. An exception that is not a user error propagates, failing the test with its
    traceback, as the CLI would. :func:`run_cli_subprocess` keeps a few true end-to-end smoke tests.
    """
    import contextlib
    import io

    from trtforge.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd or Path.cwd()), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's --help and --version
            code = exc.code if isinstance(exc.code, int) else 0
    return subprocess.CompletedProcess(["trtforge", *args], code, out.getvalue(), err.getvalue())


def run_cli_subprocess(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m trtforge ARGS`` with this checkout's sources first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "trtforge", *args], capture_output=True, text=True, cwd=cwd, env=env)


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


from tests.converters.fixtures import models  # noqa: E402, F401  (a session fixture shared by two folders)
