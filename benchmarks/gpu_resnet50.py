"""ResNet-50 FP16 on the GPU: the trtforge engine against what a user would otherwise pick.

Issue 7's goals, all measured in this one script run:
  batch 1:  engine GPU compute <= 0.60 ms, faster than torch.compile(mode="max-autotune"),
            and >= 3x faster than naive ``session.run`` with numpy feeds on the CUDA provider;
  batch 32: engine GPU compute <= 2.5 ms, and faster than PyTorch FP16 channels-last + CUDA graph.

Model: torchvision resnet50(weights=None) (seeded random weights), exported with torch.onnx,
cast to FP16 with IO kept FP32 (the precision stage's cast), built with
``trtforge.build(..., BuildConfig(device="cuda"))`` and timed by ``trtforge.bench``
(CUDA events around enqueue: "GPU Compute Time"). The alternatives are timed with CUDA events
around the call that does the work (GPU time), except naive ``session.run``, whose cost to the
user is its host wall time (it copies numpy in and out on every call).

Every method runs in a Python process of its own, as a user runs it (see ``child``); the engine
and both naive baselines are measured ``--rounds`` times, and a goal passes only in every round.

    python benchmarks/gpu_resnet50.py --out DIR [--work DIR] [--skip-compile] [--duration S] [--runs N] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

GOAL_B1_MS = 0.60
GOAL_B32_MS = 2.5
NAIVE_FACTOR = 3.0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def gpu_times(fn: Callable[[], Any], runs: int, warmup: int, stream: Any = None) -> list[float]:
    """GPU ms of each ``fn()`` call: torch CUDA events on the current stream, one call in flight."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    out = []
    for _ in range(runs):
        start.record(stream)
        fn()
        end.record(stream)
        end.synchronize()
        out.append(start.elapsed_time(end))
    return out


def wall_times(fn: Callable[[], Any], runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "n": len(ordered),
    }


class Results:
    """Rows of (batch, method) -> timing, written to OUT/results.json after each row."""

    def __init__(self, out: Path, facts: dict[str, object], verbose: bool = True) -> None:
        self.out = out
        self.verbose = verbose
        self.facts = facts
        self.rows: dict[str, dict[str, object]] = {}
        self.engines: dict[str, dict[str, object]] = {}

    def add(self, batch: int, method: str, timing: dict[str, float] | None, clock: str, note: str = "") -> None:
        key = f"b{batch} {method}"
        self.rows[key] = {"batch": batch, "method": method, "clock": clock, "note": note, **(timing or {})}
        med = f"{timing['median']:.4f} ms" if timing else "n/a"
        if self.verbose:
            log(f"  {key}: median {med} ({clock}) {note}")
        self.save()

    def median(self, batch: int, method: str) -> float | None:
        row = self.rows.get(f"b{batch} {method}")
        return float(row["median"]) if row and "median" in row else None  # type: ignore[arg-type]

    def save(self, **extra: object) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        payload = {"facts": self.facts, "rows": self.rows, "engines": self.engines, **extra}
        (self.out / "results.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")


def facts() -> dict[str, object]:
    import onnxruntime as ort
    import torch
    import torchvision

    from trtforge.backends import cuda

    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "gpu": cuda.device_facts(0),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "onnxruntime": ort.__version__,
        "cudnn": torch.backends.cudnn.version(),
        "python": sys.version.split()[0],
    }


def export(model: Any, batch: int, path: Path) -> None:
    import torch

    x = torch.randn(batch, 3, 224, 224)
    kwargs = dict(input_names=["input"], output_names=["logits"], opset_version=17)
    try:
        torch.onnx.export(model, (x,), str(path), dynamo=False, **kwargs)
    except Exception as exc:  # a torch without the TorchScript exporter
        log(f"TorchScript export failed ({str(exc).splitlines()[0][:120]}); using dynamo=True")
        torch.onnx.export(model, (x,), str(path), dynamo=True, **kwargs)


def fp16_engine(fp32_onnx: Path, work: Path, batch: int) -> tuple[Path, str]:
    """Build the FP16 engine (trtforge's checked cast, or onnxconverter-common's where that is missing).

    The ONNX Runtime engine file is the FP16 ONNX model itself, so the naive session loads it too.
    """
    import onnx

    from trtforge.build import build
    from trtforge.config import BuildConfig, Precision

    engine = work / f"resnet50-b{batch}-fp16.engine"
    if hasattr(Precision, "FP16"):
        try:
            build(fp32_onnx, engine, BuildConfig(precision=Precision.FP16, device="cuda"))
            return engine, "trtforge build --precision fp16 (checked cast, IO kept FP32)"
        except Exception as exc:  # noted in the table, then the plain cast below
            log(f"build --precision fp16 failed ({type(exc).__name__}: {str(exc)[:200]}); casting here")
    from onnxconverter_common import float16

    half = work / f"resnet50-b{batch}-fp16.onnx"
    onnx.save(float16.convert_float_to_float16(onnx.load(fp32_onnx), keep_io_types=True), half)
    build(half, engine, BuildConfig(device="cuda"))
    return engine, "onnxconverter_common float16 (keep_io_types) in this script, then trtforge build"


def bench_engine(engine: Path, x: np.ndarray, duration: float) -> tuple[dict[str, float], dict[str, object], Any]:
    """GPU compute through trtforge's harness (--cuda-graph when the build allows one)."""
    from trtforge.bench import BenchSettings, bench
    from trtforge.build import load_with_manifest

    runner, manifest = load_with_manifest(engine)
    graph = bool(manifest.build.get("cuda_graph"))
    settings = BenchSettings(warmup_ms=500, iterations=200, duration_s=duration, cuda_graph=graph)
    result = bench(runner, {"input": x}, settings)
    try:
        from trtforge.bench.report import performance_summary

        print(performance_summary(result), flush=True)
    except Exception as exc:  # the summary is for the log only
        log(f"(no trtexec-shaped summary: {exc})")
    warnings = result.warnings() if callable(result.warnings) else result.warnings
    info = {
        "provider_options": manifest.build.get("provider_options"),
        "tuning_compute_ms": manifest.build.get("tuning_compute_ms"),
        "cuda_graph": graph,
        "h2d_median": result.h2d.median if result.h2d else None,
        "d2h_median": result.d2h.median if result.d2h else None,
        "latency_median": result.latency.median,
        "enqueue_median": result.enqueue.median if result.enqueue else None,
        "queries": result.queries,
        "warnings": list(warnings),
        "notes": list(result.notes),
    }
    compute = result.compute
    assert compute is not None, "the harness timed no GPU compute: the runner is not a DeviceRunner"
    timing = {
        "median": compute.median,
        "min": compute.min,
        "p90": compute.percentiles.get(90.0, compute.max),
        "n": result.queries,
    }
    return timing, info, runner


def bare_loop(runner: Any, x: np.ndarray, runs: int, depth: int) -> dict[str, float]:
    """The same engine's compute without the harness: events around ``enqueue`` and nothing else,
    ``depth`` queries in flight (1: wait for each before enqueuing the next, so the GPU idles while
    the host launches; 2: the next is enqueued while the GPU runs the current one, as trtexec does)."""
    from trtforge.backends import cuda

    runner.set_inputs({"input": x})
    runner.h2d()
    pairs = [(cuda.Event(), cuda.Event()) for _ in range(depth)]
    times = []
    for i in range(runs + 20 + depth):
        start, end = pairs[i % depth]
        if i >= depth:
            end.synchronize()
            if i - depth >= 20:
                times.append(start.elapsed_ms(end))
        start.record(runner.stream)
        runner.enqueue()
        end.record(runner.stream)
    runner.stream.synchronize()
    return summary(times)


def naive_session(half: Path, x: np.ndarray, runs: int) -> dict[str, float]:
    """What a user writes first: a CUDA session with default options, numpy in, numpy out."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(half), providers=["CUDAExecutionProvider"])
    assert session.get_providers()[0] == "CUDAExecutionProvider"
    return summary(wall_times(lambda: session.run(None, {"input": x}), runs, warmup=20))


def torch_variants(model: Any, batch: int, results: Results, runs: int, compile_: bool) -> None:
    import torch

    net = model.half().cuda().to(memory_format=torch.channels_last).eval()
    x = torch.randn(batch, 3, 224, 224, device="cuda", dtype=torch.float16).to(memory_format=torch.channels_last)
    with torch.inference_mode():
        results.add(batch, "torch eager fp16 NHWC", summary(gpu_times(lambda: net(x), runs, 20)), "GPU events")
        # CUDA graph: capture one forward on a side stream, replay it.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                net(x)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            net(x)
        results.add(batch, "torch fp16 NHWC + CUDA graph", summary(gpu_times(graph.replay, runs, 20)), "GPU events")
        if compile_:
            started = time.perf_counter()
            compiled = torch.compile(net, mode="max-autotune")
            for _ in range(3):
                compiled(x)
            torch.cuda.synchronize()
            seconds = time.perf_counter() - started
            results.add(
                batch,
                "torch.compile max-autotune fp16 NHWC",
                summary(gpu_times(lambda: compiled(x), runs, 20)),
                "GPU events",
                f"compile + warm-up {seconds:.0f} s",
            )


def goal_lines(r: Results, rounds: int) -> list[tuple[str, bool | None]]:
    """Each goal in every round (an engine and its naive baselines were measured once per round)."""

    def per_round(batch: int, method: str) -> list[float | None]:
        tags = [f" (round {i})" for i in range(1, rounds + 1)] if rounds > 1 else [""]
        return [r.median(batch, method + tag) for tag in tags]

    def every(values: list[float | None], ok: Callable[[float], bool]) -> bool | None:
        return None if not values or None in values else all(ok(v) for v in values)  # type: ignore[arg-type]

    def ratios(naive: list[float | None], engine: list[float | None]) -> list[float | None]:
        return [n / e if n and e else None for n, e in zip(naive, engine)]

    def text(values: list[float | None], unit: str = "ms") -> str:
        return ", ".join("n/a" if v is None else (f"{v:.3f} ms" if unit == "ms" else f"{v:.2f}x") for v in values)

    e1, e32 = per_round(1, "trtforge engine (ORT CUDA)"), per_round(32, "trtforge engine (ORT CUDA)")
    comp1 = r.median(1, "torch.compile max-autotune fp16 NHWC")
    graph32 = r.median(32, "torch fp16 NHWC + CUDA graph")
    fp32 = ratios(per_round(1, "naive session.run numpy (fp32 model)"), e1)
    fp16 = ratios(per_round(1, "naive session.run numpy (fp16 model)"), e1)
    worst1 = max((v for v in e1 if v), default=None)
    worst32 = max((v for v in e32 if v), default=None)
    return [
        (f"b1 engine compute <= {GOAL_B1_MS} ms ({text(e1)})", every(e1, lambda v: v <= GOAL_B1_MS)),
        (
            f"b1 engine faster than torch.compile max-autotune ({_ms(worst1)} vs {_ms(comp1)})",
            (worst1 < comp1) if worst1 and comp1 else None,
        ),
        (
            f"b1 engine >= {NAIVE_FACTOR:g}x faster than naive session.run of the FP32 export ({text(fp32, 'x')})",
            every(fp32, lambda v: v >= NAIVE_FACTOR),
        ),
        (
            f"b1 engine >= {NAIVE_FACTOR:g}x faster than naive session.run of the same FP16 model ({text(fp16, 'x')})",
            every(fp16, lambda v: v >= NAIVE_FACTOR),
        ),
        (f"b32 engine compute <= {GOAL_B32_MS} ms ({text(e32)})", every(e32, lambda v: v <= GOAL_B32_MS)),
        (
            f"b32 engine faster than torch fp16 NHWC + CUDA graph ({_ms(worst32)} vs {_ms(graph32)})",
            (worst32 < graph32) if worst32 and graph32 else None,
        ),
    ]


def _ms(v: float | None) -> str:
    return f"{v:.3f} ms" if v else "n/a"


def table(r: Results, rounds: int) -> str:
    lines = [
        "| batch | method | median ms | min ms | p90 ms | samples/s (median) | clock | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in r.rows.values():
        med = row.get("median")
        rate = f"{1000.0 * int(row['batch']) / float(med):.0f}" if med else "n/a"  # type: ignore[arg-type]
        cells = [str(row["batch"]), str(row["method"])]
        cells += [f"{float(row[k]):.4f}" if k in row else "n/a" for k in ("median", "min", "p90")]  # type: ignore[arg-type]
        cells += [rate, str(row["clock"]), str(row["note"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Goals (issue 7; the worst round counts):")
    for text, ok in goal_lines(r, rounds):
        lines.append(f"- [{'PASS' if ok else ('FAIL' if ok is False else 'NOT MEASURED')}] {text}")
    return "\n".join(lines)


def child(kind: str, batch: int, model: Path, runs: int, duration: float) -> dict[str, object]:
    """One method, measured in this (fresh) process: what a user running it alone would see.

    Each method gets a process of its own because, with ONNX Runtime 1.31 on the H200, every
    CUDA-provider session of a process ran ~12% slower once a second one had been created in it
    (benchmarks/gpu_session_order.py, gpu_session_free.py); the build, the engine and the naive
    sessions would otherwise slow each other down."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    warnings.filterwarnings("ignore", category=UserWarning, module="onnxconverter_common")
    x = np.random.default_rng(batch).uniform(-1, 1, (batch, 3, 224, 224)).astype(np.float32)
    rows: list[tuple[str, dict[str, float] | None, str, str]] = []
    out: dict[str, object] = {"rows": rows}
    if kind == "engine":
        timing, info, runner = bench_engine(model, x, duration)
        note = f"cuda_graph={info['cuda_graph']}, nhwc={info['provider_options'].get('prefer_nhwc')}"  # type: ignore[union-attr]
        rows.append(("trtforge engine (ORT CUDA)", timing, "GPU compute (harness)", note))
        bare = bare_loop(runner, x, runs, depth=2)
        rows.append(
            (
                "same engine, bare enqueue loop (2 in flight)",
                bare,
                "GPU events",
                f"harness/bare = {timing['median'] / bare['median']:.3f}",
            )
        )
        rows.append(
            (
                "same engine, bare loop, 1 in flight",
                bare_loop(runner, x, runs, depth=1),
                "GPU events",
                "includes the host launch gap before each graph replay",
            )
        )
        out["info"] = info
    elif kind in ("naive fp16", "naive fp32"):
        label = "fp16 model" if kind == "naive fp16" else "fp32 model"
        rows.append(
            (f"naive session.run numpy ({label})", naive_session(model, x, runs), "host wall (incl. copies)", "")
        )
    elif kind in ("torch", "torch+compile"):
        import torch
        import torchvision

        torch.manual_seed(0)
        results = Results(Path(tempfile.mkdtemp()), {}, verbose=False)
        torch_variants(
            torchvision.models.resnet50(weights=None).eval(), batch, results, runs, compile_=(kind == "torch+compile")
        )
        rows += [
            (
                str(r["method"]),
                {k: float(r[k]) for k in ("median", "min", "p90", "n")},
                str(r["clock"]),  # type: ignore[arg-type]
                str(r["note"]),
            )
            for r in results.rows.values()
        ]
    else:
        raise SystemExit(f"unknown --child {kind!r}")
    return out


def run_child(kind: str, batch: int, model: Path, args: argparse.Namespace) -> dict[str, object]:
    command = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--batch",
        str(batch),
        "--model",
        str(model),
        "--runs",
        str(args.runs),
        "--duration",
        str(args.duration),
        "--out",
        str(args.out),
    ]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)  # stderr (ORT, torch) goes to our log
    for line in done.stdout.splitlines():
        if line.startswith(CHILD_TAG):
            return json.loads(line[len(CHILD_TAG) :])
        print(line, flush=True)
    log(f"  {kind} at batch {batch} failed (exit {done.returncode})")
    return {"rows": []}


CHILD_TAG = "GPU-RESNET50-CHILD "


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("build/gpu_resnet50"), help="results.json, table.md")
    parser.add_argument("--work", type=Path, default=None, help="ONNX models and engines (default: OUT/models)")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--duration", type=float, default=3.0, help="harness seconds per engine (default 3)")
    parser.add_argument("--runs", type=int, default=300, help="timed calls per alternative (default 300)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="engine and naive session.run, each in a new process, this many times (default 2)",
    )
    parser.add_argument("--skip-compile", action="store_true", help="leave out torch.compile (minutes to compile)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(args.child, args.batch, args.model, args.runs, args.duration)
        print(CHILD_TAG + json.dumps(result, default=str), flush=True)
        return 0

    import onnxruntime
    import torch
    import torchvision

    onnxruntime.set_default_logger_severity(3)
    warnings.filterwarnings("ignore", category=UserWarning, module="onnxconverter_common")
    work = args.work or args.out / "models"
    work.mkdir(parents=True, exist_ok=True)
    results = Results(args.out, facts())
    log(f"facts: {json.dumps(results.facts, default=str)}")
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    for batch in (int(b) for b in args.batches.split(",")):
        log(f"batch {batch}: export, FP16 cast, trtforge build (times the provider options)")
        fp32 = work / f"resnet50-b{batch}.onnx"
        export(model, batch, fp32)
        started = time.perf_counter()
        engine, cast = fp16_engine(fp32, work, batch)
        build_s = time.perf_counter() - started
        for round_ in range(1, args.rounds + 1):
            tag = f" (round {round_})" if args.rounds > 1 else ""
            log(f"batch {batch}{tag}: engine, then naive session.run, each in a new process")
            for kind, path in (("engine", engine), ("naive fp16", engine), ("naive fp32", fp32)):
                got = run_child(kind, batch, path, args)
                for method, timing, clock, note in got["rows"]:  # type: ignore[attr-defined]
                    results.add(batch, method + tag, timing, clock, note)
                if "info" in got:
                    info = dict(got["info"], cast=cast, build_seconds=round(build_s, 1))  # type: ignore[call-overload]
                    results.engines[f"b{batch}{tag}"] = info
                    log(f"  build {build_s:.1f} s; provider options chosen: {info['provider_options']}")
                    log(f"  candidates (median GPU compute ms): {info['tuning_compute_ms']}")
        compile_ = batch == 1 and not args.skip_compile
        for method, timing, clock, note in run_child("torch+compile" if compile_ else "torch", batch, fp32, args)[
            "rows"
        ]:  # type: ignore[attr-defined]
            results.add(batch, method, timing, clock, note)
    text = table(results, args.rounds)
    print("\n" + text, flush=True)
    (args.out / "table.md").write_text(text + "\n")
    results.save(table=text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
