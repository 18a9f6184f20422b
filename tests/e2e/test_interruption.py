"""Ctrl-C is exit 130 and one line wherever it lands; a killed run's scratch is swept by the next."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest
from tests.conftest import ROOT


def _start(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env_extra or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "trtforge", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


@pytest.mark.parametrize("delay", [0.0, 0.1, 0.3, 0.6])
def test_ctrl_c_anywhere_is_exit_130_and_one_line(tmp_path: Path, delay: float) -> None:
    """SIGINT at several points after the CLI has started (its scratch folder exists): a lazy
    import, the build, the save."""
    from onnx_models import flatten

    work = tmp_path / "work"
    work.mkdir()
    model = work / "m.onnx"
    onnx.save(flatten(1), str(model))
    proc = _start("build", str(model), "-o", str(work / "m.engine"), env_extra={"TMPDIR": str(tmp_path)})
    started = time.monotonic()
    while not (tmp_path / f"trtforge-run-{proc.pid}").exists() and proc.poll() is None:
        assert time.monotonic() - started < 60
        time.sleep(0.005)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:  # finished before the signal: nothing to check
        return
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["trtforge: interrupted"], err
    assert sorted(p.name for p in work.iterdir()) == ["m.onnx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]  # its scratch is gone too


def test_a_killed_runs_scratch_is_swept_by_the_next_run(tmp_path: Path) -> None:
    from onnx_models import flatten

    model = tmp_path / "m.onnx"
    onnx.save(flatten(1), str(model))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    left = tmp_path / f"trtforge-run-{gone.pid}"
    (left / "trtforge-calib-x").mkdir(parents=True)
    (left / "trtforge-calib-x" / "model.onnx").write_bytes(b"copy")
    proc = _start("inspect", str(model), env_extra={"TMPDIR": str(tmp_path)})
    proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
