"""The bench harness: trtexec's statistics, warnings, export format, JSON, inputs, run length."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from trtforge.bench import BenchResult, BenchSettings, bench
from trtforge.bench.report import performance_summary, write_json, write_times
from trtforge.bench.result import Query
from trtforge.bench.stats import Stats, median, percentile
from trtforge.config import TensorSpec
from trtforge.data.arrays import concrete_shapes, load_npz, load_trtexec_inputs, random_feeds
from trtforge.errors import TrtforgeError

# --------------------------------------------------------------------------- statistics


def test_percentile_follows_trtexecs_rule_with_few_samples() -> None:
    # trtexec: exclude = int((1 - p/100) * n); value = sorted[max(n - 1 - exclude, 0)]
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    assert percentile(values, 90) == 9.0  # exclude 1 -> index 8
    assert percentile(values, 99) == 10.0  # exclude int(0.1) = 0 -> the maximum
    assert percentile(values, 50) == 5.0  # exclude 5 -> index 4 (not numpy's 5.5)
    assert percentile([3.0, 7.0, 9.0], 95) == 9.0
    assert percentile([3.0, 7.0, 9.0], 10) == 3.0  # exclude int(2.7) = 2 -> index 0
    assert percentile([4.0], 0) == 4.0
    assert percentile([], 99) == float("inf")
    with pytest.raises(TrtforgeError, match="percentile"):
        percentile([1.0], 101)


def test_median_averages_the_middle_pair() -> None:
    assert median([1.0, 2.0, 10.0]) == 2.0
    assert median([1.0, 2.0, 4.0, 10.0]) == 3.0


def test_stats_by_hand() -> None:
    s = Stats.of([4.0, 1.0, 3.0, 2.0], (50.0, 75.0))
    assert (s.min, s.max, s.mean, s.median, s.total) == (1.0, 4.0, 2.5, 2.5, 10.0)
    assert s.percentiles == {50.0: 2.0, 75.0: 3.0}
    assert s.cv == pytest.approx(np.sqrt(1.25) / 2.5)  # population std / mean
    with pytest.raises(TrtforgeError, match="no timings"):
        Stats.of([])


def cpu_trace(latencies: list[float], gap: float = 0.0, streams: int = 1) -> list[Query]:
    trace, t = [], 0.0
    for i, lat in enumerate(latencies):
        trace.append(Query(i % streams, t, t + lat))
        t += lat + gap
    return trace


def test_throughput_is_queries_over_host_walltime() -> None:
    result = BenchResult.from_trace(cpu_trace([2.0, 2.0, 2.0, 2.0], gap=0.5), batch=8, settings=BenchSettings())
    # first start 0, last end 4*2 + 3*0.5 = 9.5 ms
    assert result.walltime_s == pytest.approx(0.0095)
    assert result.qps == pytest.approx(4 / 0.0095)
    assert result.samples_per_s == pytest.approx(8 * 4 / 0.0095)
    assert result.enqueue is None and result.compute is None and result.h2d is None


def gpu_query(start: float, h2d: float, compute: float, d2h: float, enqueue: float) -> Query:
    c = start + h2d
    return Query(0, start, c + compute + d2h + 0.01, (c, c + enqueue), (start, c, c + compute, c + compute + d2h))


def test_gpu_rows_come_from_the_events() -> None:
    trace = [gpu_query(10.0 * i, 0.5, 2.0, 0.25, 0.1) for i in range(4)]
    result = BenchResult.from_trace(trace, 1, BenchSettings())
    assert result.latency.median == pytest.approx(2.75)  # h2d start -> d2h end
    assert result.h2d.median == pytest.approx(0.5) and result.d2h.median == pytest.approx(0.25)
    assert result.compute.total == pytest.approx(8.0) and result.enqueue.mean == pytest.approx(0.1)
    no_copies = BenchResult.from_trace(trace, 1, BenchSettings(data_transfers=False))
    assert no_copies.h2d is None and no_copies.d2h is None
    text = performance_summary(result)
    for row in (
        "Enqueue Time:",
        "H2D Latency:",
        "GPU Compute Time:",
        "D2H Latency:",
        "Total GPU Compute Time: 0.008 s",
    ):
        assert row in text


# --------------------------------------------------------------------------- warnings


def test_unstable_warning_uses_trtexecs_one_percent_bound() -> None:
    steady = BenchResult.from_trace(cpu_trace([1.0] * 20), 1, BenchSettings())
    assert not any("unstable" in w for w in steady.warnings())
    shaky = BenchResult.from_trace(cpu_trace([1.0] * 19 + [1.5]), 1, BenchSettings())  # cv ~ 10.9%
    assert any("unstable" in w and "coefficient of variance" in w for w in shaky.warnings())


def test_enqueue_and_transfer_bound_warnings() -> None:
    # enqueue takes 90% of each 10 ms slot -> enqueue-bound; copies are tiny
    enq_bound = [gpu_query(10.0 * i, 0.01, 9.0, 0.01, 9.0) for i in range(5)]
    warnings = BenchResult.from_trace(enq_bound, 1, BenchSettings()).warnings()
    assert any("Enqueue Time" in w and "--cuda-graph" in w for w in warnings)
    assert not any("transfers" in w for w in warnings)
    h2d_bound = [gpu_query(10.0 * i, 9.0, 0.5, 0.01, 0.1) for i in range(5)]
    warnings = BenchResult.from_trace(h2d_bound, 1, BenchSettings()).warnings()
    assert any("host-to-device" in w and "--no-data-transfers" in w for w in warnings)
    assert not any("Enqueue Time" in w for w in warnings)


def test_several_streams_say_use_throughput() -> None:
    result = BenchResult.from_trace(cpu_trace([1.0] * 8, streams=2), 1, BenchSettings(streams=2))
    assert any('use "Throughput"' in w for w in result.warnings())
    assert "[W] * Multiple inference streams" in performance_summary(result)


# --------------------------------------------------------------------------- files


def test_export_times_is_trtexecs_list_in_start_order(tmp_path: Path) -> None:
    trace = [gpu_query(5.0, 0.5, 2.0, 0.25, 0.1), gpu_query(0.0, 0.5, 2.0, 0.25, 0.1)]
    write_times(BenchResult.from_trace(trace, 1, BenchSettings()), tmp_path / "t.json")
    times = json.loads((tmp_path / "t.json").read_text())
    assert [t["startHostMs"] for t in times] == [0.0, 5.0]
    keys = {
        "startEnqMs",
        "endEnqMs",
        "startH2dMs",
        "endH2dMs",
        "startComputeMs",
        "endComputeMs",
        "startD2hMs",
        "endD2hMs",
        "h2dMs",
        "computeMs",
        "d2hMs",
        "latencyMs",
    }
    assert keys <= set(times[0])
    assert times[0]["latencyMs"] == pytest.approx(2.75) and times[0]["computeMs"] == pytest.approx(2.0)
    cpu = BenchResult.from_trace(cpu_trace([1.0, 2.0]), 1, BenchSettings()).export_times()
    assert set(cpu[0]) == {"startHostMs", "endHostMs", "latencyMs", "stream"}  # no made-up GPU phases


def test_json_holds_summary_settings_and_machine(tmp_path: Path) -> None:
    settings = BenchSettings(warmup_ms=5, iterations=3, duration_s=0, streams=2, threads=1, seed=7)
    result = BenchResult.from_trace(cpu_trace([1.0, 2.0, 3.0], streams=2), 4, settings, {"engine": "x"})
    write_json(result, tmp_path / "b.json")
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["settings"] == {
        "warmup_ms": 5,
        "iterations": 3,
        "duration_s": 0,
        "percentiles": [90.0, 95.0, 99.0],
        "seed": 7,
        "streams": 2,
        "threads": 1,
        "cuda_graph": False,
        "data_transfers": True,
        "spin_wait": False,
        "avg_runs": 10,
    }
    assert data["latency_ms"]["median"] == 2.0 and data["latency_ms"]["percentiles"]["90"] == 3.0
    assert data["queries"] == 3 and data["batch"] == 4 and data["context"] == {"engine": "x"}
    assert data["throughput_samples_per_s"] == pytest.approx(4 * data["throughput_qps"])
    assert data["machine"]["cpu"]["kind"] == "cpu" and "onnxruntime" in data["machine"]
    assert "gpu_compute_ms" not in data and data["total_gpu_compute_time_s"] is None
    assert any("Multiple inference streams" in w for w in data["warnings"])


# --------------------------------------------------------------------------- inputs

SPECS = [
    TensorSpec("x", "float32", ("batch", 3, 4)),
    TensorSpec("ids", "int64", (1, "n")),
    TensorSpec("pix", "uint8", (2, 2)),
]


def test_shapes_fill_dynamic_dims_and_batch_the_leading_one() -> None:
    shapes = concrete_shapes(SPECS, "ids:1x5", batch=2)
    assert shapes == {"x": (2, 3, 4), "ids": (1, 5), "pix": (2, 2)}
    with pytest.raises(TrtforgeError, match="--shapes ids:1xN"):
        concrete_shapes(SPECS)
    with pytest.raises(TrtforgeError, match="fixed batch of 2"):
        concrete_shapes(SPECS[2:], batch=3)


def test_random_inputs_are_seeded_and_in_range_per_dtype() -> None:
    shapes = concrete_shapes(SPECS, "x:50x3x4,ids:1x400")
    a, b = random_feeds(SPECS, shapes, seed=3), random_feeds(SPECS, shapes, seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["x"], random_feeds(SPECS, shapes, seed=4)["x"])
    assert a["x"].dtype == np.float32 and a["x"].min() >= -1 and a["x"].max() < 1 and a["x"].std() > 0.3
    assert a["ids"].dtype == np.int64 and a["ids"].min() >= 0 and a["ids"].max() < 8 and a["ids"].any()
    assert a["pix"].dtype == np.uint8


def test_npz_inputs_are_checked_and_cast_within_a_kind(tmp_path: Path) -> None:
    specs = [TensorSpec("x", "float32", (-1, 3))]
    np.savez(tmp_path / "ok.npz", x=np.ones((5, 3), np.float64), extra=np.zeros(2))
    notes: list[str] = []
    feeds = load_npz(tmp_path / "ok.npz", specs, notes)
    assert feeds["x"].dtype == np.float32 and feeds["x"].shape == (5, 3)
    assert any("cast from float64" in n for n in notes) and any("'extra'" in n for n in notes)
    np.savez(tmp_path / "bad.npz", x=np.ones((5, 4), np.float32))
    with pytest.raises(TrtforgeError, match="dimension 1 differs"):
        load_npz(tmp_path / "bad.npz", specs)
    np.savez(tmp_path / "int.npz", x=np.ones((5, 3), np.int32))
    with pytest.raises(TrtforgeError, match="does not turn floats into ints"):
        load_npz(tmp_path / "int.npz", specs)
    with pytest.raises(TrtforgeError, match="no array for input"):
        np.savez(tmp_path / "none.npz", y=np.ones(3))
        load_npz(tmp_path / "none.npz", specs)


def test_trtexec_load_inputs_reads_raw_bin_and_npy(tmp_path: Path) -> None:
    specs = [TensorSpec("x", "float32", (2, 3)), TensorSpec("y", "int32", (4,)), TensorSpec("z", "float32", (1,))]
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    x.tofile(tmp_path / "x.bin")
    np.save(tmp_path / "y.npy", np.arange(4, dtype=np.int32))
    notes: list[str] = []
    feeds = load_trtexec_inputs(
        f"x:{tmp_path / 'x.bin'},y:{tmp_path / 'y.npy'}", specs, {"x": (2, 3), "y": (4,), "z": (1,)}, notes
    )
    assert np.array_equal(feeds["x"], x) and feeds["y"].tolist() == [0, 1, 2, 3]
    assert any("random values for z" in n for n in notes)
    with pytest.raises(TrtforgeError, match="24 bytes"):
        load_trtexec_inputs(f"y:{tmp_path / 'x.bin'}", specs, {"x": (2, 3), "y": (4,), "z": (1,)})


# --------------------------------------------------------------------------- the loop, on a real session


class Sleeper:
    """A runner made of a real onnxruntime session, for run-length tests."""

    def __init__(self, runner: object) -> None:
        self.inner = runner
        self.inputs = runner.inputs  # type: ignore[attr-defined]
        self.outputs = runner.outputs  # type: ignore[attr-defined]
        self.calls = 0

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        return self.inner.infer(feeds)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def engine(digits_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import trtforge

    out = tmp_path_factory.mktemp("bench") / "digits.engine"
    trtforge.build(digits_onnx, out)
    return out


def test_runs_at_least_the_iterations_and_the_duration(engine: Path) -> None:
    import trtforge

    runner = Sleeper(trtforge.load(engine))
    result = bench(runner, settings=BenchSettings(warmup_ms=0, iterations=25, duration_s=0))
    assert result.queries == 25 and result.warmup_queries == 1
    assert runner.calls == 26  # one warm-up query, then exactly the iterations
    timed = bench(runner, settings=BenchSettings(warmup_ms=0, iterations=1, duration_s=0.2))
    assert timed.walltime_s >= 0.2 and timed.queries > 1


def test_streams_load_one_session_each_and_time_them_together(engine: Path) -> None:
    settings = BenchSettings(warmup_ms=0, iterations=40, duration_s=0, streams=2, threads=1)
    result = bench(engine, settings=settings, batch=3)
    assert {q.stream for q in result.trace} == {0, 1} and result.queries >= 40
    assert result.batch == 3 and result.context["threads"] == 1 and result.context["backend"] == "onnxruntime"
    with pytest.raises(TrtforgeError, match="needs 2 runners"):
        import trtforge

        bench(trtforge.load(engine), settings=settings)


def test_gpu_options_on_a_cpu_engine_are_refused(engine: Path) -> None:
    for settings in (
        BenchSettings(cuda_graph=True),
        BenchSettings(data_transfers=False),
        BenchSettings(spin_wait=True),
    ):
        with pytest.raises(TrtforgeError, match="runs on the CPU"):
            bench(engine, settings=settings)


def test_more_threads_than_cores_is_said() -> None:
    import os

    cores = len(os.sched_getaffinity(0))
    over = BenchResult.from_trace(cpu_trace([1.0] * 4), 1, BenchSettings(streams=1), {"threads": cores + 1})
    assert any("exceed the" in w and "usable cores" in w for w in over.warnings())
    fits = BenchResult.from_trace(cpu_trace([1.0] * 4), 1, BenchSettings(streams=1), {"threads": 1})
    assert not any("usable cores" in w for w in fits.warnings())
