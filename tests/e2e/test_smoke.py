"""True end-to-end smoke tests: the ``trtforge`` command in a fresh interpreter (most CLI tests run in-process)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli_subprocess


def test_a_user_error_is_one_line_and_exit_2_in_a_real_process(tmp_path: Path) -> None:
    proc = run_cli_subprocess("build", str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "m.engine"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())


def test_build_then_bench_in_real_processes(tmp_path: Path, digits_bs1: Path) -> None:
    engine = tmp_path / "m.engine"
    assert run_cli_subprocess("build", str(digits_bs1), "-o", str(engine)).returncode == 0
    proc = run_cli_subprocess("bench", str(engine), "--duration", "0.2", "--warmup", "20")
    assert proc.returncode == 0, proc.stderr
    assert "=== Performance summary ===" in proc.stdout
