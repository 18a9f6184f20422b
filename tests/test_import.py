"""`import trtforge` and `trtforge --help` stay light: no TensorFlow, torch, TensorRT or ORT."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("tensorflow", "torch", "tensorrt", "tensorrt_rtx", "onnxruntime", "tf2onnx", "openvino")


def test_import_and_help_do_not_load_heavy_frameworks() -> None:
    code = (
        "import sys, trtforge, trtforge.cli as c\n"
        "try:\n    c.main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
