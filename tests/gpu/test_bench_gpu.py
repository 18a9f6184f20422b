"""The harness on a GPU engine: H2D, GPU compute and D2H timed apart with CUDA events."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli

from trtforge.bench import BenchSettings, bench

QUICK = BenchSettings(warmup_ms=50, iterations=50, duration_s=0.2)


def test_bench_separates_transfers_and_compute(cuda_engine: Path) -> None:
    result = bench(cuda_engine, settings=QUICK)
    assert result.queries >= 50
    assert result.h2d is not None and result.compute is not None and result.d2h is not None
    assert result.enqueue is not None
    for stats in (result.h2d, result.compute, result.d2h):
        assert 0.0 < stats.median < stats.max + 1e-9
    # a query's latency spans its copies and its compute (same events, one query in flight)
    parts = result.h2d.median + result.compute.median + result.d2h.median
    assert abs(result.latency.median - parts) <= 0.5 * parts
    assert result.context["device"] == "cuda"


def test_bench_cli_prints_gpu_rows_with_cuda_graph(cuda_engine: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = run_cli("bench", str(cuda_engine), "--duration", "0.3", "--cuda-graph", "--no-progress", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    for row in ("H2D Latency", "GPU Compute Time", "D2H Latency", "Enqueue Time", "Total GPU Compute Time"):
        assert row in proc.stdout, row
    assert "cuda_graph=True" in proc.stdout
    payload = json.loads(out.read_text())
    assert payload["settings"]["cuda_graph"] is True
    assert payload["gpu_compute_ms"]["median"] > 0


def test_bench_without_transfers_times_compute_only(cuda_engine: Path) -> None:
    result = bench(
        cuda_engine, settings=BenchSettings(warmup_ms=50, iterations=50, duration_s=0.2, data_transfers=False)
    )
    assert result.compute is not None and result.compute.median > 0
    assert result.latency.median <= result.compute.median * 1.5 + 0.05


def test_a_cuda_graph_the_runner_cannot_capture_is_recorded_as_off(cuda_engine: Path) -> None:
    from trtforge.build import load

    runner = load(cuda_engine, cuda_graph=False)  # a runner told it cannot capture a graph
    result = bench(runner, settings=BenchSettings(warmup_ms=50, iterations=50, duration_s=0.2, cuda_graph=True))
    assert result.settings.cuda_graph is False
    assert any("recorded as cuda_graph: false" in note for note in result.notes)
