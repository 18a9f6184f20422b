"""Statistics with trtexec's definitions: its percentile rule, its median, its coefficient of variance."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trtforge.errors import TrtforgeError

DEFAULT_PERCENTILES = (90.0, 95.0, 99.0)
BOUND_FRACTION = 0.8
"""trtexec: throughput is "bound by" enqueue/H2D/D2H when their total exceeds 80% of the walltime."""
UNSTABLE_CV_PERCENT = 1.0
"""trtexec: compute time is "unstable" when its coefficient of variance exceeds 1%."""


def percentile(sorted_values: Sequence[float], p: float) -> float:
    if not 0.0 <= p <= 100.0:
        raise TrtforgeError(f"bad percentile {p}: expected a number from 0 to 100")
    n = len(sorted_values)
    if n == 0:
        return math.inf
    # In float32, as trtexec computes it: (1 - 0.9f) * 10 is 1.0000002f, so p90 of 10 drops one
    # value (in float64 it would be 0.9999999999999998 and drop none).
    f32 = np.float32
    exclude = int(float((f32(1.0) - f32(p) / f32(100.0)) * f32(n)))
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
    cv: float
    """Coefficient of variation, std / mean (population std, as trtexec's "coefficient of variance")."""
    total: float

    @classmethod
    def of(cls, values_ms: Sequence[float], percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> Stats:
        ordered = sorted(values_ms)
        if not ordered:
            raise TrtforgeError("no timings were recorded; increase --iterations or --duration")
        total = float(sum(ordered))
        mean = total / len(ordered)
        std = float(np.std(ordered))
        return cls(
            ordered[0],
            ordered[-1],
            mean,
            median(ordered),
            {p: percentile(ordered, p) for p in percentiles},
            std / mean if mean else 0.0,
            total,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "median": self.median,
            "percentiles": {f"{p:g}": v for p, v in self.percentiles.items()},
            "cv": self.cv,
            "total": self.total,
        }


# --------------------------------------------------------------------------- settings and results
