"""`deploy` says why each engine was selected or not, and a killed deploy leaves nothing for long."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.cli.test_deploy import FAST_BENCH
from tests.conftest import DIGITS, DIGITS_PREPROCESS, ROOT, run_cli

from trtforge.deploy import DeployReport, EngineReport, _markdown, engine_notes, explain, report_why

# The build section of a CUDA INT8 engine's manifest as ONNX Runtime 1.31 left it on an H200:
# DequantizeLinear nodes on the CPU provider, so no CUDA graph.
CUDA_INT8_BUILD: dict[str, object] = {
    "device": "cuda",
    "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "cuda_graph": False,
    "cpu_nodes": [f"DequantizeLinear (conv{i}_w_DequantizeLinear)" for i in range(5)],
}
CUDA_FP16_BUILD: dict[str, object] = {"device": "cuda", "cuda_graph": True, "cpu_nodes": []}
FAILED_CHECK_BUILD: dict[str, object] = {
    "device": "cpu",
    "check": {"checked": True, "passed": False, "outputs": [{"name": "logits", "passed": False}]},
}


def _engine(precision: str, median_ms: float, build: dict[str, object], passed: bool | None = True) -> EngineReport:
    e = EngineReport(precision, f"model-{precision}.engine", 1000, 1.0, median_ms, median_ms * 1.2, 1.0, 1.0)
    e.passed, e.verdict = passed, "drop 0.10 ≤ 1 points" if passed else "drop 4.00 > 1 points"
    e.notes = engine_notes(build)
    return e


def _report(engines: list[EngineReport], selected: str | None) -> DeployReport:
    validation = {"source": "val", "samples": 10, "labels": True, "reference": "fp32 engine"}
    return DeployReport(Path("out"), "model.onnx", engines, selected, validation, [], {})


def test_manifest_cpu_nodes_and_no_cuda_graph_become_notes() -> None:
    notes = engine_notes(CUDA_INT8_BUILD)
    assert notes[0].startswith("5 node(s) placed on the CPU by ONNX Runtime (DequantizeLinear (conv0_w_")
    assert ", ..." in notes[0] and "host-device copies" in notes[0]
    assert notes[1] == "no CUDA graph (nodes on the CPU rule one out)"
    assert engine_notes(CUDA_FP16_BUILD) == []
    assert engine_notes({"device": "cpu", "cuda_graph": False}) == []  # graphs are a GPU matter
    assert engine_notes(FAILED_CHECK_BUILD) == ["failed its INT8 self-check against FP32 (logits)"]


def test_int8_on_a_gpu_says_why_it_was_not_selected() -> None:
    fp32 = _engine("fp32", 0.9, CUDA_FP16_BUILD)
    fp16 = _engine("fp16", 0.47, CUDA_FP16_BUILD)
    int8 = _engine("int8", 2.29, CUDA_INT8_BUILD)
    report = _report([fp32, fp16, int8], "model-fp16.engine")
    explain(report.engines, report.selected, "fastest")
    assert fp16.why == "selected (the fastest that passed): drop 0.10 ≤ 1 points"
    assert int8.why.startswith("not selected: slower (2.2900 ms median against 0.4700 ms for fp16); 5 node(s)")
    assert int8.why.endswith("; no CUDA graph (nodes on the CPU rule one out)")
    text = _markdown(report)
    assert "## Why" in text and f"- **int8** (`model-int8.engine`): {int8.why}" in text
    assert report_why(report).splitlines()[2] == f"int8: {int8.why}"
    assert json.loads(json.dumps(report.to_json()))["engines"][2]["why"] == int8.why


def test_a_faster_engine_over_budget_says_so_and_not_slower() -> None:
    fp32 = _engine("fp32", 1.0, {})
    int8 = _engine("int8", 0.5, {}, passed=False)
    explain([fp32, int8], "model-fp32.engine", "fastest")
    assert int8.why == "not selected: failed its accuracy budget (drop 4.00 > 1 points)"


def test_without_select_the_notes_still_show() -> None:
    int8 = _engine("int8", 2.0, CUDA_INT8_BUILD, passed=None)
    explain([int8], None, None)
    assert int8.why.startswith("not compared (no --select): 5 node(s) placed on the CPU")


def test_an_int8_engine_that_failed_its_self_check_is_refused_without_a_budget() -> None:
    from trtforge.deploy import DeployOptions, _select

    fp32 = _engine("fp32", 1.0, {}, passed=None)
    int8 = _engine("int8", 0.5, FAILED_CHECK_BUILD, passed=None)
    int8.refused = True
    with pytest.raises(Exception, match="int8: refused by its INT8 self-check"):
        _select([int8], DeployOptions(select="fastest"), Path("."))
    explain([fp32, int8], "model-fp32.engine", "fastest")
    assert int8.why.startswith("not selected: refused by its INT8 self-check")
    assert int8.why.endswith("failed its INT8 self-check against FP32 (logits)")


def test_deploy_prints_and_writes_why_for_every_engine(digits_bs1: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli(
        "deploy",
        str(digits_bs1),
        "-o",
        str(out),
        "--precision",
        "fp32,fp16",
        "--val-data",
        str(DIGITS / "test"),
        "--preprocess",
        DIGITS_PREPROCESS,
        "--val-num",
        "40",
        "--max-accuracy-drop",
        "50",
        "--select",
        "fastest",
        *FAST_BENCH,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    whys = {e["precision"]: e["why"] for e in report["engines"]}
    selected = next(e["precision"] for e in report["engines"] if e["engine"] == report["selected"])
    other = ({"fp32", "fp16"} - {selected}).pop()
    assert whys[selected].startswith("selected (the fastest that passed): drop ")
    assert whys[other].startswith("not selected: slower (")
    for precision, why in whys.items():
        assert f"{precision}: {why}" in proc.stdout
        assert why in (out / "report.md").read_text()


def _deploy_process(model: Path, out: Path, tmpdir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": str(ROOT / "src")}
    args = ["deploy", str(model), "-o", str(out), "--precision", "fp32", "--val-data", str(DIGITS / "test")]
    args += ["--preprocess", DIGITS_PREPROCESS, "--val-num", "20", *FAST_BENCH]
    return subprocess.Popen([sys.executable, "-m", "trtforge", *args], env=env, stderr=subprocess.DEVNULL)


def test_a_killed_deploy_leaves_its_staging_folder_only_until_the_next_deploy(digits_bs1: Path, tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    victim = _deploy_process(digits_bs1, tmp_path / "out", tmpdir)
    stage = tmp_path / f".out.trtforge-deploy-{victim.pid}-"
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(f"{stage.name}*/model.onnx")) and victim.poll() is None:
        assert time.monotonic() < deadline, "the deploy never staged its model"
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)  # mid-deploy: no handler, no cleanup
    victim.wait()
    left = list(tmp_path.glob(f"{stage.name}*"))
    assert len(left) == 1 and left[0].is_dir(), "the kill should have left the staging folder (else move the kill)"
    assert (tmpdir / f"trtforge-run-{victim.pid}").is_dir()
    later = _deploy_process(digits_bs1, tmp_path / "other", tmpdir)
    assert later.wait(timeout=120) == 0
    assert not left[0].exists() and not (tmpdir / f"trtforge-run-{victim.pid}").exists()
    assert not (tmp_path / "out").exists() and (tmp_path / "other" / "report.md").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "tmp"]


def test_a_live_deploys_staging_folder_is_not_swept(tmp_path: Path) -> None:
    from trtforge._files import sweep_dead
    from trtforge.deploy import STAGE_PATTERN

    alive = tmp_path / f".out.trtforge-deploy-{os.getppid()}-abcdefgh"
    gone = tmp_path / ".out.trtforge-deploy-4194303-abcdefgh"  # above any pid this machine hands out
    user = tmp_path / "trtforge-deploy-1-abcdefgh"  # a user's folder that only looks like one
    for folder in (alive, gone, user):
        folder.mkdir()
    assert sweep_dead(tmp_path, STAGE_PATTERN) == [gone]
    assert alive.is_dir() and user.is_dir() and not gone.exists()
