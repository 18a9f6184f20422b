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

import itertools
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from trtforge.backends.base import DeviceRunner, Runner, is_device_runner
from trtforge.bench.result import BenchResult, BenchSettings, Query
from trtforge.data.arrays import concrete_shapes, random_feeds
from trtforge.errors import TrtforgeError

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


def _cpu_stream(
    runner: Runner,
    feeds: Mapping[str, np.ndarray],
    index: int,
    clock: _Clock,
    ready: threading.Barrier | None,
    out: list[Query],
) -> None:
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


def _device_stream(
    runner: DeviceRunner,
    feeds: Mapping[str, np.ndarray],
    index: int,
    clock: _Clock,
    ready: threading.Barrier | None,
    out: list[Query],
) -> None:
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


def _prepare_device(runners: Sequence[DeviceRunner], settings: BenchSettings, notes: list[str]) -> BenchSettings:
    """``settings`` as they will hold: ``cuda_graph`` is false when a runner cannot capture one."""
    if not settings.cuda_graph:
        return settings
    for runner in runners:
        if not runner.supports_cuda_graph:
            notes.append(
                "--cuda-graph: this runner cannot capture a CUDA graph, so it fell back to plain "
                "enqueue; the numbers are without a graph (recorded as cuda_graph: false)"
            )
            return replace(settings, cuda_graph=False)
    for runner in runners:
        runner.use_cuda_graph()
    return settings


def _run(
    runners: Sequence[object],
    feeds: Mapping[str, np.ndarray],
    settings: BenchSettings,
    progress: Callable[[float], object] | None,
) -> tuple[list[Query], int]:
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


def _runners(
    target: Runner | Sequence[Runner] | str | os.PathLike[str],
    settings: BenchSettings,
    load_options: Mapping[str, object],
    context: dict[str, object],
) -> list[Runner]:
    if isinstance(target, (str, os.PathLike)):
        from trtforge.build import cpu_threads, load_runners

        options = dict(load_options)
        threads = options.pop("threads", None) or settings.threads
        threads = int(str(threads)) if threads else None
        loaded, manifest = load_runners(target, settings.streams, threads, **options)
        device = manifest.device.get("kind", "cpu")
        context.update(
            engine=os.fspath(target),
            backend=manifest.backend,
            precision=manifest.precision,
            device=device,
            threads=cpu_threads(threads, settings.streams) if device == "cpu" else threads,
        )
        if manifest.build.get("runtime_settings"):  # what the backend applies at load (spinning, hints...)
            context["runtime_settings"] = manifest.build["runtime_settings"]
        reported = getattr(loaded[0], "runtime_properties", None)
        if reported:  # as the runtime reports them once loaded (openvino: streams, hint, threads)
            context["runtime_properties"] = reported
        return loaded
    runners: list[Runner] = list(target) if isinstance(target, Sequence) else [target]  # type: ignore[arg-type]
    if len(runners) != settings.streams:
        raise TrtforgeError(
            f"--streams {settings.streams} needs {settings.streams} runners (one per stream), "
            f"got {len(runners)}; pass the engine's path and bench loads them"
        )
    return runners


def _refused(exc: Exception, feeds: Mapping[str, np.ndarray], source: str) -> TrtforgeError:
    """An engine failing on the bench inputs is a user error with the fix, not a traceback."""
    at = ", ".join(f"{k}:{'x'.join(map(str, v.shape)) or 'scalar'}" for k, v in feeds.items())
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return TrtforgeError(
        f"the engine fails on {source} at {at} ({first[:300]}); give values it takes with "
        "--inputs FILE.npz (inputs the file lacks stay seeded random), e.g. a scalar that selects "
        "a branch, or other sizes with --shapes"
    )


def bench(
    target: Runner | Sequence[Runner] | str | os.PathLike[str],
    feeds: Mapping[str, np.ndarray] | str | os.PathLike[str] | None = None,
    settings: BenchSettings | None = None,
    context: Mapping[str, object] | None = None,
    progress: Callable[[float], object] | None = None,
    *,
    shapes: str | None = None,
    batch: int | None = None,
    load_options: Mapping[str, object] | None = None,
    notes: Sequence[str] = (),
) -> BenchResult:
    """Time an engine like trtexec: warm up, then at least ``iterations`` queries and ``duration_s``.

    ``target`` is an engine path (``settings.streams`` runners are loaded, with ``settings.threads``
    intra-op threads each), a runner, or one runner per stream. ``feeds`` are arrays by input
    name, a ``.npz``/``.npy`` path, or None for seeded random inputs at the engine's shapes
    (``shapes``: trtexec's ``name:1x3x224x224`` for dynamic dimensions; ``batch``: the leading one).
    ``progress`` is called with the fraction done (0..1), at most ten times a second.
    """
    from trtforge.data.arrays import conform, load_npz_partial

    settings = settings or BenchSettings()
    ctx: dict[str, object] = {}
    runners = _runners(target, settings, load_options or {}, ctx)
    ctx.update(context or {})
    all_notes = list(notes)
    if is_device_runner(runners[0]):
        settings = _prepare_device(runners, settings, all_notes)  # type: ignore[arg-type]
    elif settings.gpu_only:
        raise TrtforgeError(
            f"{', '.join(settings.gpu_only)}: GPU options, but this engine runs on the CPU "
            "(there is no CUDA graph or host-device copy to change); drop them, or build "
            "for --device cuda"
        )
    specs = runners[0].inputs
    if feeds is None:
        feeds = conform(random_feeds(specs, concrete_shapes(specs, shapes, batch), settings.seed), specs, "--random")
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
