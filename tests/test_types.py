"""The package type-checks: mypy over src/trtforge finds nothing (the TensorRT modules are also
checked against tensorrt-stubs in tests/backends/test_tensorrt_types.py)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_mypy_finds_no_errors_in_the_package() -> None:
    proc = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", "src/trtforge"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]
