"""What a benchmark was asked to do (:class:`BenchSettings`) and what it measured (:class:`BenchResult`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from trtforge._host import usable_cores
from trtforge.bench.stats import BOUND_FRACTION, DEFAULT_PERCENTILES, UNSTABLE_CV_PERCENT, Stats, percentile
from trtforge.errors import TrtforgeError


@dataclass(frozen=True)
class BenchSettings:
    warmup_ms: float = 200.0
    iterations: int = 10
    duration_s: float = 3.0
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES
    seed: int = 0
    streams: int = 1
    """ONNX Runtime: concurrent sessions. OpenVINO: one compiled model with N streams, an infer request
    each. GPU: one runner (stream + context) each."""
    threads: int | None = None
    """Intra-op threads of each CPU session (None: the backend's default); recorded."""
    cuda_graph: bool = False
    data_transfers: bool = True
    spin_wait: bool = False
    avg_runs: int = 10
    """trtexec's --avgRuns: queries per averaged line in the verbose log."""

    def __post_init__(self) -> None:
        if self.warmup_ms < 0 or self.duration_s < 0:
            raise TrtforgeError("--warmup and --duration must not be negative")
        if self.iterations < 1:
            raise TrtforgeError(f"--iterations must be at least 1, got {self.iterations}")
        if self.streams < 1:
            raise TrtforgeError(f"--streams must be at least 1, got {self.streams}")
        if self.threads is not None and self.threads < 1:
            raise TrtforgeError(f"--threads must be at least 1, got {self.threads}")
        if self.avg_runs < 1:
            raise TrtforgeError(f"--avgRuns must be at least 1, got {self.avg_runs}")
        for p in self.percentiles:
            percentile([0.0], p)  # validates the range

    @property
    def gpu_only(self) -> list[str]:
        """The GPU-only options that are switched on, by their bench flag."""
        return [
            flag
            for flag, on in (
                ("--cuda-graph", self.cuda_graph),
                ("--no-data-transfers", not self.data_transfers),
                ("--spin-wait", self.spin_wait),
            )
            if on
        ]

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["percentiles"] = list(self.percentiles)
        return data


@dataclass(frozen=True)
class Query:
    """One timed query; times in ms on one axis, from the first timed query's host start."""

    stream: int
    start_ms: float
    end_ms: float
    enqueue: tuple[float, float] | None = None
    """GPU: host start and end of ``enqueue``."""
    device: tuple[float, float, float, float] | None = None
    """GPU: H2D start, compute start, compute end, D2H end (events, mapped onto the host axis)."""

    @property
    def latency_ms(self) -> float:
        if self.device is not None:
            return self.device[3] - self.device[0]
        return self.end_ms - self.start_ms

    def to_trtexec(self) -> dict[str, float | int]:
        """One entry of trtexec's ``--exportTimes`` list (keys that apply), plus host start/end."""
        entry: dict[str, float | int] = {"startHostMs": self.start_ms, "endHostMs": self.end_ms}
        if self.enqueue is not None:
            entry.update(startEnqMs=self.enqueue[0], endEnqMs=self.enqueue[1])
        if self.device is not None:
            h, c, ce, d = self.device
            entry.update(
                startH2dMs=h,
                endH2dMs=c,
                startComputeMs=c,
                endComputeMs=ce,
                startD2hMs=ce,
                endD2hMs=d,
                h2dMs=c - h,
                computeMs=ce - c,
                d2hMs=d - ce,
            )
        entry["latencyMs"] = self.latency_ms
        entry["stream"] = self.stream
        return entry


@dataclass(frozen=True)
class BenchResult:
    latency: Stats
    queries: int
    walltime_s: float
    batch: int
    settings: BenchSettings
    context: dict[str, object] = field(default_factory=dict)
    trace: tuple[Query, ...] = ()
    enqueue: Stats | None = None
    h2d: Stats | None = None
    compute: Stats | None = None
    d2h: Stats | None = None
    warmup_queries: int = 0
    notes: tuple[str, ...] = ()
    """Things the user should know about how this was measured (fallbacks, casts)."""

    @classmethod
    def from_trace(
        cls,
        trace: Sequence[Query],
        batch: int,
        settings: BenchSettings,
        context: Mapping[str, object] | None = None,
        warmup_queries: int = 0,
        notes: Sequence[str] = (),
    ) -> BenchResult:
        if not trace:
            raise TrtforgeError("no timings were recorded; increase --iterations or --duration")
        ps = settings.percentiles
        first = min(q.start_ms for q in trace)
        last = max(q.end_ms for q in trace)
        gpu = [q for q in trace if q.device is not None]

        def series(fn: Callable[[Query], float]) -> Stats | None:
            return Stats.of([fn(q) for q in gpu], ps) if gpu else None

        enq = Stats.of([q.enqueue[1] - q.enqueue[0] for q in trace if q.enqueue], ps) if gpu else None
        transfers = settings.data_transfers
        return cls(
            Stats.of([q.latency_ms for q in trace], ps),
            len(trace),
            (last - first) / 1000.0,
            batch,
            settings,
            dict(context or {}),
            tuple(trace),
            enq,
            series(lambda q: q.device[1] - q.device[0]) if transfers else None,  # type: ignore[index]
            series(lambda q: q.device[2] - q.device[1]),  # type: ignore[index]
            series(lambda q: q.device[3] - q.device[2]) if transfers else None,  # type: ignore[index]
            warmup_queries,
            tuple(notes),
        )

    @property
    def qps(self) -> float:
        return self.queries / self.walltime_s if self.walltime_s > 0 else math.inf

    @property
    def samples_per_s(self) -> float:
        return self.qps * self.batch

    def warnings(self) -> list[str]:
        """trtexec's warnings, with its thresholds (see :data:`BOUND_FRACTION`, :data:`UNSTABLE_CV_PERCENT`)."""
        out: list[str] = []
        wall_ms = self.walltime_s * 1000.0
        bound = BOUND_FRACTION * wall_ms
        if self.enqueue is not None and self.enqueue.total > bound:
            out.append(
                "Throughput may be bound by Enqueue Time rather than GPU Compute and the GPU may be "
                "under-utilized."
                + (
                    ""
                    if self.settings.cuda_graph
                    else " If not already in use, --cuda-graph may increase the throughput."
                )
            )
        for stats, what in (
            (self.h2d, "host-to-device transfers for the inputs"),
            (self.d2h, "device-to-host transfers for the outputs"),
        ):
            if stats is not None and stats.total > bound:
                out.append(
                    f"Throughput may be bound by {what} rather than GPU Compute and the GPU may be "
                    "under-utilized. Add --no-data-transfers to leave data transfers out."
                )
        timed, name = (self.compute, "GPU compute time") if self.compute else (self.latency, "Latency")
        if timed.cv * 100.0 > UNSTABLE_CV_PERCENT:
            hint = (
                "locking GPU clock frequency or adding --spin-wait may improve the stability"
                if self.compute
                else "other load on the machine, CPU frequency scaling or too few "
                "queries make it so; pin threads or run longer on a quiet machine"
            )
            out.append(
                f"{name} is unstable, with coefficient of variance = {timed.cv * 100.0:.3g}% "
                f"(over {UNSTABLE_CV_PERCENT:g}%): {hint}."
            )
        threads = self.context.get("threads")
        cores = usable_cores()
        if self.compute is None and isinstance(threads, int) and cores and self.settings.streams * threads > cores:
            out.append(
                f"{self.settings.streams} stream(s) x {threads} thread(s) exceed the {cores} usable cores: "
                "sessions compete for cores, so latency includes waiting for one."
            )
        if self.settings.streams > 1:
            out.append(
                "Multiple inference streams are used. Latencies may not be accurate since inferences may "
                'run in parallel. Please use "Throughput" as the performance metric instead.'
            )
        return out

    def to_json(self) -> dict[str, object]:
        rows = {
            "latency_ms": self.latency,
            "enqueue_ms": self.enqueue,
            "h2d_ms": self.h2d,
            "gpu_compute_ms": self.compute,
            "d2h_ms": self.d2h,
        }
        return {
            "throughput_qps": self.qps,
            "throughput_samples_per_s": self.samples_per_s,
            **{k: v.to_json() for k, v in rows.items() if v is not None},
            "queries": self.queries,
            "warmup_queries": self.warmup_queries,
            "total_host_walltime_s": self.walltime_s,
            "total_gpu_compute_time_s": self.compute.total / 1000.0 if self.compute else None,
            "batch": self.batch,
            "settings": self.settings.to_json(),
            "context": self.context,
            "warnings": self.warnings(),
            "notes": list(self.notes),
        }

    def export_times(self) -> list[dict[str, float | int]]:
        """trtexec's ``--exportTimes`` list: one entry per timed query, in start order."""
        return [q.to_trtexec() for q in sorted(self.trace, key=lambda q: q.start_ms)]
