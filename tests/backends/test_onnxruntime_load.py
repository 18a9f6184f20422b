"""ONNX Runtime CPU engines on a shared machine: the session settings are recorded, applied, and benched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import run_cli

from trtforge.build import build, load


def test_cpu_engines_record_and_apply_sleeping_intra_op_threads(digits_bs1: Path, tmp_path: Path) -> None:
    engine = tmp_path / "m.engine"
    manifest = build(digits_bs1, engine)
    assert manifest.build["runtime_settings"] == {"session.intra_op.allow_spinning": "0"}
    runner = load(engine, threads=2)
    options = runner.session.get_session_options()  # type: ignore[attr-defined]
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == 2


def test_an_engine_without_recorded_settings_keeps_onnxruntime_defaults(digits_bs1: Path, tmp_path: Path) -> None:
    engine = tmp_path / "m.engine"
    build(digits_bs1, engine)
    manifest_path = Path(f"{engine}.json")
    manifest = json.loads(manifest_path.read_text())
    del manifest["build"]["runtime_settings"]  # as engines built before the setting was recorded
    manifest_path.write_text(json.dumps(manifest))
    options = load(engine).session.get_session_options()  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="does not have configuration with key"):
        options.get_session_config_entry("session.intra_op.allow_spinning")


def test_bench_json_records_the_runtime_settings(digits_bs1: Path, tmp_path: Path) -> None:
    engine = tmp_path / "m.engine"
    build(digits_bs1, engine)
    proc = run_cli("bench", str(engine), "--duration", "0.1", "--warmup", "10", "--json", str(tmp_path / "b.json"))
    assert proc.returncode == 0, proc.stderr
    assert '"session.intra_op.allow_spinning": "0"' in (tmp_path / "b.json").read_text()


def test_placed_off_lists_the_nodes_a_session_put_on_another_provider(digits_bs1) -> None:
    """The real ONNX Runtime API behind the CUDA build's warning: on a CPU session every node is on the CPU."""
    import onnxruntime as ort

    from trtforge.backends.onnxruntime import placed_off

    options = ort.SessionOptions()
    options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    session = ort.InferenceSession(str(digits_bs1), options, providers=["CPUExecutionProvider"])
    assert placed_off(session, "CPUExecutionProvider") == []
    off = placed_off(session, "CUDAExecutionProvider")
    assert off and all(" (" in n for n in off)
    assert any(n.startswith("Conv (") for n in off)
