"""Timing harness and statistics, with trtexec's definitions.

Per query (``Query``), on the host clock (``perf_counter``) and, for GPU runners, CUDA events:

* **Latency**: CPU runners: from the call of ``infer`` to its return. GPU runners
  (:class:`DeviceRunner`): from the start of the H2D copy to the end of the D2H copy (events);
  with ``data_transfers=False``, the compute alone.
* **Enqueue Time** (GPU): host time spent in ``enqueue``. **H2D Latency**, **GPU Compute
  Time**, **D2H Latency** (GPU): event to event.
* **Throughput**: queries / Total Host Walltime (first query's start to last query's end,
  over all streams); samples/s = qps x batch.
* Percentiles as trtexec computes them: sort, drop ``floor((1 - p/100) * n)`` from the top
  (in float32 arithmetic), take the largest remaining; the median averages the two middle values for even ``n``.
* Run length: warm up for ``warmup_ms``, then run until at least ``iterations`` queries *and*
  at least ``duration_s`` seconds are done (all streams together).
"""

from __future__ import annotations

import datetime as _dt
import itertools
import math
import os
import platform
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from trtforge.backends.base import Runner
from trtforge.config import TensorSpec
from trtforge.errors import TrtforgeError
from trtforge.inputs import concrete_shapes, random_feeds

if TYPE_CHECKING:
    from trtforge.backends.cuda import Stream

DEFAULT_PERCENTILES = (90.0, 95.0, 99.0)
BOUND_FRACTION = 0.8
"""trtexec: throughput is "bound by" enqueue/H2D/D2H when their total exceeds 80% of the walltime."""
UNSTABLE_CV_PERCENT = 1.0
"""trtexec: compute time is "unstable" when its coefficient of variance exceeds 1%."""


# --------------------------------------------------------------------------- statistics

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
        return cls(ordered[0], ordered[-1], mean, median(ordered),
                   {p: percentile(ordered, p) for p in percentiles}, std / mean if mean else 0.0, total)

    def to_json(self) -> dict[str, object]:
        return {"min": self.min, "max": self.max, "mean": self.mean, "median": self.median,
                "percentiles": {f"{p:g}": v for p, v in self.percentiles.items()}, "cv": self.cv,
                "total": self.total}


# --------------------------------------------------------------------------- settings and results

@dataclass(frozen=True)
class BenchSettings:
    warmup_ms: float = 200.0
    iterations: int = 10
    duration_s: float = 3.0
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES
    seed: int = 0
    streams: int = 1
    """CPU: concurrent sessions, one thread each. GPU: one runner (stream + context) each."""
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
        return [flag for flag, on in (("--cuda-graph", self.cuda_graph), ("--no-data-transfers",
                not self.data_transfers), ("--spin-wait", self.spin_wait)) if on]

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
            entry.update(startH2dMs=h, endH2dMs=c, startComputeMs=c, endComputeMs=ce, startD2hMs=ce,
                         endD2hMs=d, h2dMs=c - h, computeMs=ce - c, d2hMs=d - ce)
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
    def from_trace(cls, trace: Sequence[Query], batch: int, settings: BenchSettings,
                   context: Mapping[str, object] | None = None, warmup_queries: int = 0,
                   notes: Sequence[str] = ()) -> BenchResult:
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
            Stats.of([q.latency_ms for q in trace], ps), len(trace), (last - first) / 1000.0, batch, settings,
            dict(context or {}), tuple(trace), enq,
            series(lambda q: q.device[1] - q.device[0]) if transfers else None,  # type: ignore[index]
            series(lambda q: q.device[2] - q.device[1]),  # type: ignore[index]
            series(lambda q: q.device[3] - q.device[2]) if transfers else None,  # type: ignore[index]
            warmup_queries, tuple(notes))

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
            out.append("Throughput may be bound by Enqueue Time rather than GPU Compute and the GPU may be "
                       "under-utilized." + ("" if self.settings.cuda_graph else
                                            " If not already in use, --cuda-graph may increase the throughput."))
        for stats, what in ((self.h2d, "host-to-device transfers for the inputs"),
                            (self.d2h, "device-to-host transfers for the outputs")):
            if stats is not None and stats.total > bound:
                out.append(f"Throughput may be bound by {what} rather than GPU Compute and the GPU may be "
                           "under-utilized. Add --no-data-transfers to leave data transfers out.")
        timed, name = (self.compute, "GPU compute time") if self.compute else (self.latency, "Latency")
        if timed.cv * 100.0 > UNSTABLE_CV_PERCENT:
            hint = ("locking GPU clock frequency or adding --spin-wait may improve the stability"
                    if self.compute else "other load on the machine, CPU frequency scaling or too few "
                    "queries make it so; pin threads or run longer on a quiet machine")
            out.append(f"{name} is unstable, with coefficient of variance = {timed.cv * 100.0:.3g}% "
                       f"(over {UNSTABLE_CV_PERCENT:g}%): {hint}.")
        threads = self.context.get("threads")
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        if self.compute is None and isinstance(threads, int) and cores and self.settings.streams * threads > cores:
            out.append(f"{self.settings.streams} stream(s) x {threads} thread(s) exceed the {cores} usable cores: "
                       "sessions compete for cores, so latency includes waiting for one.")
        if self.settings.streams > 1:
            out.append("Multiple inference streams are used. Latencies may not be accurate since inferences may "
                       'run in parallel. Please use "Throughput" as the performance metric instead.')
        return out

    def to_json(self) -> dict[str, object]:
        rows = {"latency_ms": self.latency, "enqueue_ms": self.enqueue, "h2d_ms": self.h2d,
                "gpu_compute_ms": self.compute, "d2h_ms": self.d2h}
        return {
            "throughput_qps": self.qps, "throughput_samples_per_s": self.samples_per_s,
            **{k: v.to_json() for k, v in rows.items() if v is not None},
            "queries": self.queries, "warmup_queries": self.warmup_queries,
            "total_host_walltime_s": self.walltime_s,
            "total_gpu_compute_time_s": self.compute.total / 1000.0 if self.compute else None,
            "batch": self.batch, "settings": self.settings.to_json(), "context": self.context,
            "warnings": self.warnings(), "notes": list(self.notes),
        }

    def export_times(self) -> list[dict[str, float | int]]:
        """trtexec's ``--exportTimes`` list: one entry per timed query, in start order."""
        return [q.to_trtexec() for q in sorted(self.trace, key=lambda q: q.start_ms)]


def machine_facts() -> dict[str, object]:
    """What a reader needs to judge the numbers: the machine, its load, the software."""
    from trtforge import __version__
    from trtforge.engine import cpu_facts

    facts: dict[str, object] = {
        "cpu": cpu_facts(), "python": platform.python_version(), "numpy": np.__version__,
        "platform": platform.platform(), "trtforge": __version__,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if hasattr(os, "getloadavg"):
        facts["loadavg"] = list(os.getloadavg())
    if hasattr(os, "sched_getaffinity"):
        facts["usable_cores"] = len(os.sched_getaffinity(0))
    try:
        import onnxruntime

        facts["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return facts


# --------------------------------------------------------------------------- GPU runners

@runtime_checkable
class DeviceRunner(Protocol):
    """A GPU runner whose phases the harness times separately with CUDA events.

    ``trtforge.backends.cuda`` provides ``Event`` (``record(stream)``, ``synchronize()``,
    ``query() -> bool``, ``a.elapsed_ms(b)`` = ms from ``a`` to ``b``) and ``Stream``.
    When ``supports_cuda_graph`` is true, ``use_cuda_graph()`` captures ``enqueue`` once;
    later ``enqueue`` calls launch the graph.
    """

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    stream: Stream
    supports_cuda_graph: bool

    def set_inputs(self, feeds: Mapping[str, np.ndarray]) -> None: ...  # host arrays -> pinned staging

    def h2d(self) -> None: ...  # async pinned -> device on self.stream

    def enqueue(self) -> None: ...  # launch compute on self.stream

    def d2h(self) -> None: ...  # async device -> pinned on self.stream

    def outputs_host(self) -> dict[str, np.ndarray]: ...


def infer_on_device(runner: DeviceRunner, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One query through a device runner's phases, waited for: its ``infer``."""
    runner.set_inputs(feeds)
    runner.h2d()
    runner.enqueue()
    runner.d2h()
    runner.stream.synchronize()
    return runner.outputs_host()


def is_device_runner(runner: object) -> bool:
    return all(hasattr(runner, a) for a in ("h2d", "enqueue", "d2h", "stream", "set_inputs"))


# --------------------------------------------------------------------------- the loops

class _Clock:
    """Shared run state: the time origin, the query count, and when to stop."""

    def __init__(self, settings: BenchSettings, progress: Callable[[float], object] | None) -> None:
        self.settings = settings
        self.progress = progress
        self.origin = 0.0
        self.deadline: float | None = None
        self.count = itertools.count()
        self.done = 0
        self.warmup_queries = 0
        self._next_tick = 0.0
        self._lock = threading.Lock()

    def warmed(self, queries: int) -> None:
        with self._lock:
            self.warmup_queries += queries

    def start(self) -> None:
        self.origin = time.perf_counter()
        self.deadline = None
        self._next_tick = self.origin

    def finished(self, now: float, started: float) -> bool:
        """Count one query (``started``..``now``); true once both the iterations and the duration
        are reached. The duration runs from a timed query's start, as the walltime does, so a run
        never reports less walltime than ``--duration``."""
        self.done = next(self.count) + 1
        if self.deadline is None:
            self.deadline = started + self.settings.duration_s
        if self.progress is not None and now >= self._next_tick:
            self._next_tick = now + 0.1
            s = self.settings
            by_count = self.done / s.iterations
            by_time = (now - self.origin) / s.duration_s if s.duration_s else 1.0
            self.progress(min(1.0, by_count, by_time))
        return self.done >= self.settings.iterations and now >= self.deadline


def _cpu_stream(runner: Runner, feeds: Mapping[str, np.ndarray], index: int, clock: _Clock,
                ready: threading.Barrier | None, out: list[Query]) -> None:
    now = time.perf_counter
    infer = runner.infer
    warm_end = now() + clock.settings.warmup_ms / 1000.0
    warm = 1
    infer(feeds)
    while now() < warm_end:
        infer(feeds)
        warm += 1
    clock.warmed(warm)
    if ready is not None:
        ready.wait()
    else:
        clock.start()
    origin = clock.origin
    raw: list[tuple[float, float]] = []
    append = raw.append
    finished = clock.finished
    while True:
        start = now()
        infer(feeds)
        end = now()
        append((start, end))
        if finished(end, start):
            break
    out.extend(Query(index, (s - origin) * 1000.0, (e - origin) * 1000.0) for s, e in raw)


DEVICE_DEPTH = 2
"""Queries in flight per GPU stream, as trtexec keeps them: the next query is enqueued while the
GPU runs the current one, so GPU Compute Time holds no host launch gap."""


def _device_stream(runner: DeviceRunner, feeds: Mapping[str, np.ndarray], index: int, clock: _Clock,
                   ready: threading.Barrier | None, out: list[Query]) -> None:
    """One GPU stream: ``DEVICE_DEPTH`` queries in flight (events time each phase of each)."""
    from collections import deque

    from trtforge.backends.cuda import Event

    settings = clock.settings
    stream = runner.stream
    transfers = settings.data_transfers
    free = deque(tuple(Event() for _ in range(4)) for _ in range(DEVICE_DEPTH))
    pending: deque[tuple[tuple[Event, ...], float, float, float]] = deque()
    base = Event()

    def wait(event: Event) -> None:
        if settings.spin_wait:
            while not event.query():
                pass
        else:
            event.synchronize()

    runner.set_inputs(feeds)

    def launch() -> None:
        slot = free.popleft()
        h2d_start, c_start, c_end, d2h_end = slot
        t0 = time.perf_counter()
        if transfers:
            h2d_start.record(stream)
            runner.h2d()
        c_start.record(stream)
        e0 = time.perf_counter()
        runner.enqueue()
        e1 = time.perf_counter()
        c_end.record(stream)
        if transfers:
            runner.d2h()
            d2h_end.record(stream)
        pending.append((slot, t0, e0, e1))

    def retire() -> tuple[tuple[Event, ...], float, float, float, float]:
        """Wait for the oldest query in flight; its events, host times and the host end time."""
        slot, t0, e0, e1 = pending.popleft()
        wait(slot[3] if transfers else slot[2])
        free.append(slot)
        return slot, t0, e0, e1, time.perf_counter()

    warm_end = time.perf_counter() + settings.warmup_ms / 1000.0
    launch()
    warm = 1
    while time.perf_counter() < warm_end:
        if not free:
            retire()
        launch()
        warm += 1
    while pending:
        retire()
    clock.warmed(warm)
    if ready is not None:
        ready.wait()
    else:
        clock.start()
    base.record(stream)
    wait(base)
    base_ms = (time.perf_counter() - clock.origin) * 1000.0
    ms = lambda t: (t - clock.origin) * 1000.0  # noqa: E731
    at = lambda e: base_ms + base.elapsed_ms(e)  # noqa: E731
    finished = False
    while not finished:
        while free:
            launch()
        (h2d_start, c_start, c_end, d2h_end), t0, e0, e1, end = retire()
        c, ce = at(c_start), at(c_end)
        h, d = (at(h2d_start), at(d2h_end)) if transfers else (c, ce)
        out.append(Query(index, ms(t0), ms(end), (ms(e0), ms(e1)), (h, c, ce, d)))
        finished = clock.finished(end, t0)
    while pending:  # the queries still in flight are not counted
        retire()


def _prepare_device(runners: Sequence[object], settings: BenchSettings, notes: list[str]) -> None:
    if not settings.cuda_graph:
        return
    for runner in runners:
        if getattr(runner, "supports_cuda_graph", False):
            runner.use_cuda_graph()  # type: ignore[attr-defined]
        else:
            notes.append("--cuda-graph: this runner cannot capture a CUDA graph, so it fell back to plain "
                         "enqueue; the numbers are without a graph")
            return


def _run(runners: Sequence[object], feeds: Mapping[str, np.ndarray], settings: BenchSettings,
         progress: Callable[[float], object] | None) -> tuple[list[Query], int]:
    device = is_device_runner(runners[0])
    loop = _device_stream if device else _cpu_stream
    clock = _Clock(settings, progress)
    outs: list[list[Query]] = [[] for _ in runners]
    if len(runners) == 1:
        loop(runners[0], feeds, 0, clock, None, outs[0])  # type: ignore[arg-type]
    else:
        ready = threading.Barrier(len(runners), action=clock.start)
        errors: list[BaseException] = []

        def body(i: int) -> None:
            try:
                loop(runners[i], feeds, i, clock, ready, outs[i])  # type: ignore[arg-type]
            except BaseException as exc:  # re-raised in the caller's thread
                errors.append(exc)
                ready.abort()

        threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(len(runners))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        real = [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]
        if real or errors:
            raise (real or errors)[0]
    return [q for out in outs for q in out], clock.warmup_queries


def _batch_of(feeds: Mapping[str, np.ndarray]) -> int:
    first = next(iter(feeds.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else 1


def _runners(target: Runner | Sequence[Runner] | str | os.PathLike[str], settings: BenchSettings,
             load_options: Mapping[str, object], context: dict[str, object]) -> list[Runner]:
    if isinstance(target, (str, os.PathLike)):
        from trtforge.builder import load_with_manifest
        from trtforge.engine import read_manifest

        options = dict(load_options)
        if "threads" not in options and read_manifest(target).device.get("kind", "cpu") == "cpu":
            from trtforge.backends.onnxruntime import default_threads

            # N sessions share the cores: without --threads each gets its share, not all of them.
            options["threads"] = settings.threads or max(1, default_threads() // settings.streams)
        loaded = [load_with_manifest(target, **options) for _ in range(settings.streams)]
        manifest = loaded[0][1]
        context.update(engine=os.fspath(target), backend=manifest.backend, precision=manifest.precision,
                       device=manifest.device.get("kind", "cpu"), threads=options.get("threads"))
        return [runner for runner, _ in loaded]
    runners: list[Runner] = list(target) if isinstance(target, Sequence) else [target]  # type: ignore[arg-type]
    if len(runners) != settings.streams:
        raise TrtforgeError(f"--streams {settings.streams} needs {settings.streams} runners (one per stream), "
                            f"got {len(runners)}; pass the engine's path and bench loads them")
    return runners


def bench(target: Runner | Sequence[Runner] | str | os.PathLike[str],
          feeds: Mapping[str, np.ndarray] | str | os.PathLike[str] | None = None,
          settings: BenchSettings | None = None, context: Mapping[str, object] | None = None,
          progress: Callable[[float], object] | None = None, *, shapes: str | None = None,
          batch: int | None = None, load_options: Mapping[str, object] | None = None,
          notes: Sequence[str] = ()) -> BenchResult:
    """Time an engine like trtexec: warm up, then at least ``iterations`` queries and ``duration_s``.

    ``target`` is an engine path (``settings.streams`` runners are loaded, with ``settings.threads``
    intra-op threads each), a runner, or one runner per stream. ``feeds`` are arrays by input
    name, a ``.npz``/``.npy`` path, or None for seeded random inputs at the engine's shapes
    (``shapes``: trtexec's ``name:1x3x224x224`` for dynamic dimensions; ``batch``: the leading one).
    ``progress`` is called with the fraction done (0..1), at most ten times a second.
    """
    from trtforge.inputs import conform, load_npz_partial

    settings = settings or BenchSettings()
    ctx: dict[str, object] = {}
    runners = _runners(target, settings, load_options or {}, ctx)
    ctx.update(context or {})
    all_notes = list(notes)
    if is_device_runner(runners[0]):
        _prepare_device(runners, settings, all_notes)
    elif settings.gpu_only:
        raise TrtforgeError(f"{', '.join(settings.gpu_only)}: GPU options, but this engine runs on the CPU "
                            "(there is no CUDA graph or host-device copy to change); drop them, or build "
                            "for --device cuda")
    specs = runners[0].inputs
    if feeds is None:
        feeds = random_feeds(specs, concrete_shapes(specs, shapes, batch), settings.seed)
        ctx["input_source"] = f"random (seed {settings.seed})"
    elif isinstance(feeds, (str, os.PathLike)):
        ctx["input_source"] = os.fspath(feeds)
        feeds = load_npz_partial(feeds, specs, shapes, batch, settings.seed, all_notes)
    else:
        feeds = conform(feeds, specs, "the inputs", all_notes)
    try:
        trace, warm = _run(runners, feeds, settings, progress)
    except Exception as exc:
        if type(exc).__module__.startswith("onnxruntime"):  # the engine refused these inputs
            raise _refused(exc, feeds, str(ctx.get("input_source", "the inputs"))) from None
        raise
    ctx["inputs"] = {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in feeds.items()}
    return BenchResult.from_trace(trace, _batch_of(feeds), settings, ctx, warm, all_notes)


def _refused(exc: Exception, feeds: Mapping[str, np.ndarray], source: str) -> TrtforgeError:
    """An engine failing on the bench inputs is a user error with the fix, not a traceback."""
    at = ", ".join(f"{k}:{'x'.join(map(str, v.shape)) or 'scalar'}" for k, v in feeds.items())
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return TrtforgeError(
        f"the engine fails on {source} at {at} ({first[:300]}); give values it takes with "
        "--inputs FILE.npz (inputs the file lacks stay seeded random), e.g. a scalar that selects "
        "a branch, or other sizes with --shapes")


def random_inputs(specs: Sequence[TensorSpec], seed: int = 0, batch: int | None = None) -> dict[str, np.ndarray]:
    """Seeded random inputs at the specs' shapes (dynamic batch: ``batch`` or 1)."""
    return random_feeds(specs, concrete_shapes(specs, None, batch), seed)
