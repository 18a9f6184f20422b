"""Rendering measurements the way trtexec prints them."""

from __future__ import annotations

from trtforge.benchmark import BenchResult, Stats

UNSTABLE_CV = 0.10  # trtexec warns when the coefficient of variation of latency exceeds 10%


def stats_line(label: str, stats: Stats) -> str:
    parts = [f"min = {stats.min:.5g} ms", f"max = {stats.max:.5g} ms", f"mean = {stats.mean:.5g} ms",
             f"median = {stats.median:.5g} ms"]
    parts += [f"percentile({p:g}%) = {v:.5g} ms" for p, v in stats.percentiles.items()]
    return f"{label}: " + ", ".join(parts)


def performance_summary(result: BenchResult) -> str:
    lines = ["=== Performance summary ==="]
    lines.append(f"Throughput: {result.qps:.5g} qps ({result.samples_per_s:.5g} samples/s at batch {result.batch})")
    lines.append(stats_line("Latency", result.latency))
    lines.append(f"Total Host Walltime: {result.walltime_s:.5g} s ({result.queries} queries)")
    lines.append("Latency is host wall time around one inference call (perf_counter); "
                 "Throughput is queries / Total Host Walltime.")
    if result.latency.cv > UNSTABLE_CV:
        lines.append(f"[W] The coefficient of variation of latency is {result.latency.cv:.1%}, over "
                     f"{UNSTABLE_CV:.0%}: the numbers are unstable (other load on the machine, or too few queries).")
    settings = ", ".join(f"{k}={v}" for k, v in result.context.items())
    if settings:
        lines.append(f"Settings: {settings}")
    return "\n".join(lines)
