"""mypy over backends/tensorrt*.py against the ``tensorrt-stubs`` package (full TensorRT 10.13's API).

Full TensorRT cannot be installed here, so its-only calls (builder flags, the INT8 calibrator, the
runner) are at least checked against the API.  The stubs ship a ``tensorrt`` folder without
``py.typed`` and two lines that are not valid Python (a parameter named ``in``; a parameter without
a default after defaults); the test copies them to a temporary folder, fixes those lines, and
points mypy at the copy with MYPYPATH.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted((ROOT / "src" / "trtforge" / "backends" / "tensorrt").glob("*.py"))


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = importlib.util.find_spec("tensorrt_stubs")
    if spec is None or spec.origin is None:
        pytest.skip("tensorrt-stubs is not installed (make venv installs it)")
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install 'trtforge[dev]')")
    site = Path(spec.origin).parents[1]
    out = tmp_path_factory.mktemp("stubs")
    for package in ("tensorrt", "tensorrt_bindings"):
        shutil.copytree(site / package, out / package, ignore=shutil.ignore_patterns("*.py", "*.so", "__pycache__"))
    bindings = out / "tensorrt_bindings" / "tensorrt.pyi"
    text = re.sub(r"([(,] *)in: ", r"\1in_: ", bindings.read_text())
    bindings.write_text(text.replace("channel_axis: int)", "channel_axis: int = ...)"))
    return out


def _mypy(stubs: Path, *files: Path) -> list[str]:
    env = {**os.environ, "MYPYPATH": str(stubs), "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--follow-imports=silent",
            "--no-incremental",
            "--ignore-missing-imports",
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    wanted = {str(f.relative_to(ROOT)) if f.is_relative_to(ROOT) else str(f) for f in files}
    return [line for line in proc.stdout.splitlines() if line.split(":", 1)[0] in wanted and ": error:" in line]


def test_the_stubs_are_really_read(stubs: Path, tmp_path: Path) -> None:
    """A wrong call against the stubs is caught, so a clean run below means something."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import tensorrt as trt\n"
        "builder = trt.Builder(trt.Logger())\n"
        "builder.create_builder_config().set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 'big')\n"
        "trt.BuilderFlag.FP17\n"
    )
    errors = _mypy(stubs, probe)
    assert any("set_memory_pool_limit" in e for e in errors), errors
    assert any("FP17" in e for e in errors), errors


def test_tensorrt_backend_type_checks_against_tensorrt_stubs(stubs: Path) -> None:
    assert _mypy(stubs, *MODULES) == []
