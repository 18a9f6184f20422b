"""Rendering measurements the way trtexec prints them, and the files bench writes."""

from __future__ import annotations

import json
import os

from trtforge.bench.result import BenchResult
from trtforge.bench.stats import Stats


def stats_line(label: str, stats: Stats) -> str:
    parts = [
        f"min = {stats.min:.6g} ms",
        f"max = {stats.max:.6g} ms",
        f"mean = {stats.mean:.6g} ms",
        f"median = {stats.median:.6g} ms",
    ]
    parts += [f"percentile({p:g}%) = {v:.6g} ms" for p, v in stats.percentiles.items()]
    return f"{label}: " + ", ".join(parts)


def performance_summary(result: BenchResult, verbose: bool = False) -> str:
    """trtexec's ``=== Performance summary ===`` block: the rows that apply, then its warnings."""
    s = result.settings
    lines = [
        f"[I] Warmup completed {result.warmup_queries} queries over {s.warmup_ms:g} ms",
        f"[I] Timing trace has {result.queries} queries over {result.walltime_s:.6g} s",
        "[I] === Performance summary ===",
    ]
    lines.append(f"[I] Throughput: {result.qps:.6g} qps ({result.samples_per_s:.6g} samples/s at batch {result.batch})")
    rows = (
        ("Latency", result.latency),
        ("Enqueue Time", result.enqueue),
        ("H2D Latency", result.h2d),
        ("GPU Compute Time", result.compute),
        ("D2H Latency", result.d2h),
    )
    lines += [f"[I] {stats_line(label, stats)}" for label, stats in rows if stats is not None]
    lines.append(f"[I] Total Host Walltime: {result.walltime_s:.6g} s")
    if result.compute is not None:
        lines.append(f"[I] Total GPU Compute Time: {result.compute.total / 1000.0:.6g} s")
    else:
        lines.append(
            "[I] Latency is host wall time around one inference call (perf_counter), as the CPU has "
            "no separate enqueue, transfer or device-compute phase."
        )
    lines += [f"[W] * {w}" for w in result.warnings()]
    lines += [f"[I] Note: {n}" for n in result.notes]
    settings = [
        f"streams={s.streams}",
        f"threads={result.context.get('threads', s.threads or 'default')}",
        f"batch={result.batch}",
    ]
    if result.compute is not None:
        settings += [f"cuda_graph={s.cuda_graph}", f"data_transfers={s.data_transfers}", f"spin_wait={s.spin_wait}"]
    extra = [f"{k}={v}" for k, v in result.context.items() if k not in ("inputs", "threads")]
    lines.append("[I] Settings: " + ", ".join(settings + extra))
    if verbose:
        lines += averaged_runs(result)
    return "\n".join(lines)


def averaged_runs(result: BenchResult) -> list[str]:
    """trtexec's verbose "Average on N runs" lines (N = --avgRuns), in start order."""
    n = result.settings.avg_runs
    trace = sorted(result.trace, key=lambda q: q.start_ms)
    lines = []
    for i in range(0, len(trace) - n + 1, n):
        group = trace[i : i + n]
        latency = sum(q.latency_ms for q in group) / n
        line = f"[V] Average on {n} runs - Latency: {latency:.6g} ms"
        if group[0].device is not None:
            compute = sum(q.device[2] - q.device[1] for q in group if q.device) / n
            enqueue = sum(q.enqueue[1] - q.enqueue[0] for q in group if q.enqueue) / n
            line += f" - GPU compute: {compute:.6g} ms (enqueue {enqueue:.6g} ms)"
        lines.append(line)
    return lines


def write_json(result: BenchResult, path: str | os.PathLike[str], extra: dict[str, object] | None = None) -> None:
    from trtforge._files import write_text_atomic
    from trtforge.bench.machine import machine_facts

    payload = {**result.to_json(), "machine": machine_facts(), **(extra or {})}
    write_text_atomic(path, json.dumps(payload, indent=2, default=str) + "\n")


def write_times(result: BenchResult, path: str | os.PathLike[str]) -> None:
    """trtexec's ``--exportTimes`` file: a JSON list, one object per timed query."""
    from trtforge._files import write_text_atomic

    write_text_atomic(path, json.dumps(result.export_times(), indent=1) + "\n")


def plot(result: BenchResult, path: str | os.PathLike[str]) -> None:
    """A latency histogram and the per-query latency timeline, side by side."""
    from trtforge._files import atomic_path
    from trtforge.errors import require

    matplotlib = require("matplotlib", "plot", "--plot")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latencies = [q.latency_ms for q in result.trace]
    fig, (hist, timeline) = plt.subplots(1, 2, figsize=(10, 3.6))
    top = max(result.latency.percentiles.values(), default=result.latency.max) * 1.25
    shown = [v for v in latencies if v <= top]
    hist.hist(shown, bins=min(60, max(10, len(shown) // 10)), color="#4c72b0")
    for label, value, color in (
        ("median", result.latency.median, "#222222"),
        *((f"p{p:g}", v, "#c44e52") for p, v in result.latency.percentiles.items()),
    ):
        hist.axvline(value, color=color, linestyle="--", linewidth=1)
        hist.annotate(label, (value, hist.get_ylim()[1] * 0.9), rotation=90, fontsize=7, ha="right")
    hist.set_xlabel("latency (ms)")
    hist.set_ylabel("queries")
    hidden = len(latencies) - len(shown)
    hist.set_title("Latency histogram" + (f" ({hidden} slower queries off the right)" if hidden else ""))
    for stream in sorted({q.stream for q in result.trace}):
        qs = [q for q in result.trace if q.stream == stream]
        timeline.plot(
            [q.start_ms / 1000.0 for q in qs], [q.latency_ms for q in qs], ".", markersize=2, label=f"stream {stream}"
        )
    if result.settings.streams > 1:
        timeline.legend(fontsize=7)
    timeline.set_xlabel("query start (s)")
    timeline.set_ylabel("latency (ms, log scale)")
    timeline.set_yscale("log")
    timeline.set_title(f"Per query ({result.queries} queries, {result.qps:.4g} qps)")
    fig.tight_layout()
    suffix = os.path.splitext(os.fspath(path))[1] or ".png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format=suffix.lstrip("."))
    plt.close(fig)
