"""Timing harness and statistics, with trtexec's definitions.

* Latency of a query: from the start of ``infer`` to the return of its outputs (host
  wall time, ``perf_counter``).
* Throughput: queries divided by the host wall time from the first query's start to the
  last query's end (trtexec's "Total Host Walltime").
* Percentiles as trtexec computes them: sort, drop ``floor((1 - p/100) * n)`` from the top,
  take the largest remaining; the median averages the two middle values for even ``n``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from trtforge.backends.base import Runner
from trtforge.config import TensorSpec
from trtforge.errors import TrtforgeError

DEFAULT_PERCENTILES = (90.0, 95.0, 99.0)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    if not 0.0 <= p <= 100.0:
        raise TrtforgeError(f"bad percentile {p}: expected a number from 0 to 100")
    n = len(sorted_values)
    if n == 0:
        return math.inf
    exclude = int((1.0 - p / 100.0) * n)
    return float(sorted_values[max(n - 1 - exclude, 0)])


def median(sorted_values: Sequence[float]) -> float:
    n = len(sorted_values)
    if n == 0:
        return math.inf
    m = n // 2
    return float(sorted_values[m]) if n % 2 else (sorted_values[m - 1] + sorted_values[m]) / 2.0


@dataclass(frozen=True)
class Stats:
    """min/max/mean/median and percentiles of a series, in milliseconds."""

    min: float
    max: float
    mean: float
    median: float
    percentiles: dict[float, float]
    cv: float  # coefficient of variation (std / mean), trtexec's stability check

    @classmethod
    def of(cls, values_ms: Sequence[float], percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> Stats:
        ordered = sorted(values_ms)
        if not ordered:
            raise TrtforgeError("no timings were recorded; increase --iterations or --duration")
        mean = sum(ordered) / len(ordered)
        std = float(np.std(ordered))
        return cls(ordered[0], ordered[-1], mean, median(ordered),
                   {p: percentile(ordered, p) for p in percentiles}, std / mean if mean else 0.0)

    def to_json(self) -> dict[str, object]:
        return {"min": self.min, "max": self.max, "mean": self.mean, "median": self.median,
                "percentiles": {f"{p:g}": v for p, v in self.percentiles.items()}, "cv": self.cv}


@dataclass(frozen=True)
class BenchSettings:
    warmup_ms: float = 200.0
    iterations: int = 10
    duration_s: float = 3.0
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES
    seed: int = 0

    def __post_init__(self) -> None:
        if self.warmup_ms < 0 or self.duration_s < 0:
            raise TrtforgeError("--warmup and --duration must not be negative")
        if self.iterations < 1:
            raise TrtforgeError(f"--iterations must be at least 1, got {self.iterations}")
        for p in self.percentiles:
            percentile([0.0], p)  # validates the range


@dataclass(frozen=True)
class BenchResult:
    latency: Stats
    queries: int
    walltime_s: float
    batch: int
    settings: BenchSettings
    context: dict[str, object] = field(default_factory=dict)
    starts_s: tuple[float, ...] = ()
    latencies_ms: tuple[float, ...] = ()

    @property
    def qps(self) -> float:
        return self.queries / self.walltime_s if self.walltime_s > 0 else math.inf

    @property
    def samples_per_s(self) -> float:
        return self.qps * self.batch

    def to_json(self) -> dict[str, object]:
        return {
            "throughput_qps": self.qps, "throughput_samples_per_s": self.samples_per_s,
            "latency_ms": self.latency.to_json(), "queries": self.queries,
            "total_host_walltime_s": self.walltime_s, "batch": self.batch,
            "settings": {"warmup_ms": self.settings.warmup_ms, "iterations": self.settings.iterations,
                         "duration_s": self.settings.duration_s,
                         "percentiles": list(self.settings.percentiles), "seed": self.settings.seed},
            "context": self.context,
        }


def random_inputs(specs: Sequence[TensorSpec], seed: int = 0, batch: int | None = None) -> dict[str, np.ndarray]:
    """Seeded random inputs: floats in [-1, 1), integers in [0, 8), never all zeros."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for spec in specs:
        shape = []
        for i, d in enumerate(spec.shape):
            if isinstance(d, int) and d > 0:
                shape.append(d)
            elif i == 0:
                shape.append(batch or 1)
            else:
                raise TrtforgeError(
                    f"input {spec.name!r} has a dynamic dimension {d!r} beyond the batch; "
                    "pass --inputs FILE.npz with real shapes"
                )
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f":
            feeds[spec.name] = rng.uniform(-1.0, 1.0, shape).astype(dtype)
        elif dtype.kind in "iu":
            feeds[spec.name] = rng.integers(0, 8, shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[spec.name] = rng.integers(0, 2, shape).astype(bool)
        else:
            raise TrtforgeError(f"input {spec.name!r} has dtype {dtype}, which bench cannot generate")
    return feeds


def _batch_of(feeds: Mapping[str, np.ndarray]) -> int:
    first = next(iter(feeds.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else 1


def bench(runner: Runner | str | os.PathLike[str], feeds: Mapping[str, np.ndarray] | None = None,
          settings: BenchSettings | None = None, context: dict[str, object] | None = None,
          progress: Callable[[int], object] | None = None) -> BenchResult:
    """Time ``runner.infer`` like trtexec: warm up, then run for at least ``iterations`` queries
    and at least ``duration_s`` seconds."""
    if isinstance(runner, (str, os.PathLike)):
        from trtforge.builder import load

        runner = load(runner)
    settings = settings or BenchSettings()
    feeds = dict(feeds) if feeds is not None else random_inputs(runner.inputs, settings.seed)
    clock = time.perf_counter
    warm_end = clock() + settings.warmup_ms / 1000.0
    runner.infer(feeds)
    while clock() < warm_end:
        runner.infer(feeds)
    starts: list[float] = []
    latencies: list[float] = []
    first = clock()
    deadline = first + settings.duration_s
    while len(latencies) < settings.iterations or clock() < deadline:
        start = clock()
        runner.infer(feeds)
        end = clock()
        starts.append(start - first)
        latencies.append((end - start) * 1000.0)
        if progress is not None:
            progress(1)
    walltime = starts[-1] + latencies[-1] / 1000.0
    return BenchResult(Stats.of(latencies, settings.percentiles), len(latencies), walltime,
                       _batch_of(feeds), settings, dict(context or {}), tuple(starts), tuple(latencies))
