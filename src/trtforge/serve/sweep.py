"""Which batch sizes Triton's dynamic batcher should prefer, from a measured batch sweep.

Each batch size (powers of two up to ``max_batch``, and ``max_batch``) is timed in process with
``trtforge bench``; the preferred sizes are the smallest batch that reaches
:data:`ENOUGH` of the best samples/s (waiting for more requests buys less than the rest) and the
batch with the best samples/s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ENOUGH = 0.9


@dataclass(frozen=True)
class SweepPoint:
    batch: int
    samples_per_s: float
    median_ms: float


def sweep_sizes(max_batch: int) -> list[int]:
    sizes = [1 << i for i in range(max_batch.bit_length()) if 1 << i <= max_batch]
    return sorted({*sizes, max_batch})


def batch_sweep(engine: str | os.PathLike[str], max_batch: int, duration_s: float = 0.5) -> list[SweepPoint]:
    """Samples/s and median latency of ``engine`` at each batch size up to ``max_batch``."""
    from trtforge.bench import BenchSettings, bench
    from trtforge.build import load

    runner = load(engine)
    settings = BenchSettings(warmup_ms=50.0, iterations=5, duration_s=duration_s)
    points = []
    for b in sweep_sizes(max_batch):
        result = bench(runner, settings=settings, batch=b)
        points.append(SweepPoint(b, result.samples_per_s, result.latency.median))
    return points


def preferred_batches(points: list[SweepPoint]) -> list[int]:
    """The smallest batch within :data:`ENOUGH` of the best samples/s, and the best one."""
    best = max(points, key=lambda p: p.samples_per_s)
    enough = min(p.batch for p in points if p.samples_per_s >= ENOUGH * best.samples_per_s)
    return sorted({enough, best.batch})


def sweep_table(points: list[SweepPoint], chosen: list[int]) -> str:
    rows = [f"{'batch':>5} {'samples/s':>10} {'median ms':>10}"]
    rows += [
        f"{p.batch:>5} {p.samples_per_s:>10.1f} {p.median_ms:>10.3f}{'  preferred' if p.batch in chosen else ''}"
        for p in points
    ]
    return "\n".join(rows)
