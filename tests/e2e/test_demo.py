"""The demo is an example, and every example is a test: `make demo` must keep working."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

CONTRACT = [
    "trtforge convert examples/digits/saved_model -o {out}/digits.onnx --inputs-as-nchw image",
    "trtforge reshape {out}/digits.onnx -o {out}/digits-bs1.onnx --batch 1",
    "trtforge build {out}/digits-bs1.onnx -o {out}/digits-fp32.engine --precision fp32",
    "trtforge build {out}/digits-bs1.onnx -o {out}/digits-int8.engine --precision int8",
    "trtforge bench {out}/digits-fp32.engine",
    "trtforge bench {out}/digits-int8.engine",
]


def test_demo_prints_the_contract_commands_and_ends_with_the_report_table(tmp_path: Path) -> None:
    out = os.path.relpath(tmp_path / "build", ROOT)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run(
        [sys.executable, "examples/digits/demo.py", "--out", out, "--duration", "0.2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for command in CONTRACT:
        assert command.format(out=out) in proc.stdout, command
    table = [line for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| precision | top-1 |")
    assert {row.split("|")[1].strip() for row in table[1:]} >= {"fp32", "fp16", "int8"}
    assert (tmp_path / "build" / "deploy" / "report.md").exists()
