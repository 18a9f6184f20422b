"""trtforge bench ENGINE"""

from __future__ import annotations

import argparse

from trtforge.numbers import SEED_MAX, int_arg, real_arg


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(
        name,
        help="measure an engine's latency and throughput (trtexec's definitions)",
        description="Benchmark an engine like trtexec: warm up, then run for at least "
        "--iterations queries and at least --duration seconds; print trtexec's performance "
        "summary. Inputs are seeded random values at the engine's shapes unless --inputs.",
    )
    p.add_argument("engine", nargs="?", help="engine built by trtforge build (or --server and --model)")
    s = p.add_argument_group("a served model (Triton, e.g. trtforge serve)")
    s.add_argument("--server", metavar="URL", help="load-test a model on this Triton server, e.g. localhost:8000")
    s.add_argument("--model", metavar="NAME", help="the served model's name")
    s.add_argument(
        "--concurrency",
        default="1,2,4,8",
        metavar="C,...",
        help="client threads, one level after another (default 1,2,4,8)",
    )
    s.add_argument("--protocol", default="http", choices=["http", "grpc"], help="http (default) or grpc")
    i = p.add_argument_group("inputs")
    i.add_argument("--inputs", metavar="FILE.npz", help="input arrays keyed by input name (.npy: one input)")
    i.add_argument("--shapes", metavar="NAME:DIMS,...", help="shapes for dynamic inputs, e.g. image:8x3x224x224")
    i.add_argument(
        "--batch", type=int_arg("--batch", 1, 1 << 16), metavar="N", help="the leading (batch) dimension of every input"
    )
    i.add_argument(
        "--seed", type=int_arg("--seed", 0, SEED_MAX), default=0, help="seed of the random inputs (default 0)"
    )
    r = p.add_argument_group("run length and concurrency")
    r.add_argument(
        "--warmup",
        type=real_arg("--warmup", 0, 3.6e6),
        default=200.0,
        metavar="MS",
        help="warm-up time in ms (default 200)",
    )
    r.add_argument(
        "--iterations",
        type=int_arg("--iterations", 1, 10**9),
        default=10,
        metavar="N",
        help="run at least N queries (default 10)",
    )
    r.add_argument(
        "--duration",
        type=real_arg("--duration", 0, 86400),
        default=3.0,
        metavar="S",
        help="run at least S seconds (default 3)",
    )
    r.add_argument(
        "--streams",
        type=int_arg("--streams", 1, 256),
        default=1,
        metavar="N",
        help="concurrent streams (ONNX Runtime: a session each; OpenVINO: its own streams, one compiled model "
        "with NUM_STREAMS=N and the throughput hint; GPU: a context each; default 1)",
    )
    r.add_argument(
        "--threads",
        type=int_arg("--threads", 1, 4096),
        default=None,
        metavar="N",
        help="intra-op threads per CPU session (default: the usable cores / --streams)",
    )
    g = p.add_argument_group("GPU engines only (refused, exit 2, on CPU engines)")
    g.add_argument("--cuda-graph", action="store_true", help="launch inference as a captured CUDA graph")
    g.add_argument("--no-data-transfers", action="store_true", help="leave out host-device copies")
    g.add_argument("--spin-wait", action="store_true", help="busy-poll events instead of blocking sync")
    o = p.add_argument_group("output")
    o.add_argument("--percentile", default="90,95,99", help="percentiles to report (default 90,95,99)")
    o.add_argument("--json", dest="json_path", metavar="FILE", help="summary, settings and machine facts as JSON")
    o.add_argument("--export-times", metavar="FILE", help="per-query times as JSON (trtexec's --exportTimes)")
    o.add_argument("--plot", metavar="FILE.png", help="latency histogram and per-query timeline (matplotlib)")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    o.add_argument("--verbose", action="store_true", help="also print trtexec's 'Average on N runs' lines")
    p.set_defaults(run=run)


def progress_bar():  # -> (callback, close)
    """A tqdm bar on stderr driven by the fraction done; hidden when stderr is not a terminal."""
    import sys

    from tqdm import tqdm

    bar = tqdm(
        total=100,
        desc="bench",
        unit="%",
        file=sys.stderr,
        leave=False,
        disable=None,
        bar_format="{desc} {bar} {percentage:3.0f}% {elapsed}",
    )

    def update(fraction: float) -> None:
        bar.update(max(0, round(fraction * 100) - bar.n))

    return update, bar.close


def run_server(args: argparse.Namespace) -> int:
    import json

    from trtforge._files import write_text_atomic
    from trtforge.bench.machine import machine_facts
    from trtforge.cli.parse import percentiles
    from trtforge.errors import TrtforgeError
    from trtforge.serve.client import bench_server, summary

    if args.engine or not args.model:
        raise TrtforgeError("bench --server takes --model NAME and no engine (the server runs the engine)")
    from trtforge.cli.parse import names
    from trtforge.numbers import integer

    levels = [integer(c, "--concurrency", 1, 4096) for c in names(args.concurrency)]
    if not levels:
        raise TrtforgeError(f"bad --concurrency {args.concurrency!r}: expected numbers like 1,2,4,8")
    results = bench_server(
        args.server,
        args.model,
        levels,
        args.protocol,
        args.batch or 1,
        args.warmup / 1000.0,
        args.duration,
        percentiles(args.percentile),
        args.seed,
    )
    print(f"server: {args.server} ({args.protocol}), model {args.model}, batch {args.batch or 1} per request")
    print(summary(results))
    if args.json_path:
        payload = {
            "server": args.server,
            "model": args.model,
            "protocol": args.protocol,
            "settings": {"warmup_ms": args.warmup, "duration_s": args.duration, "batch": args.batch or 1},
            "levels": [r.to_json() for r in results],
            "machine": machine_facts(),
        }
        write_text_atomic(args.json_path, json.dumps(payload, indent=2, default=str) + "\n")
    return 0


def run(args: argparse.Namespace) -> int:
    from trtforge._files import check_outputs
    from trtforge.bench import BenchSettings, bench
    from trtforge.errors import TrtforgeError

    if args.server:
        return run_server(args)
    if not args.engine:
        raise TrtforgeError("give an engine to bench, or --server URL --model NAME")
    from trtforge.bench.report import performance_summary, plot, write_json, write_times
    from trtforge.cli.parse import percentiles

    check_outputs(
        [("--json", args.json_path), ("--export-times", args.export_times), ("--plot", args.plot)],
        [args.engine, args.inputs],
    )
    settings = BenchSettings(
        args.warmup,
        args.iterations,
        args.duration,
        percentiles(args.percentile),
        args.seed,
        streams=args.streams,
        threads=args.threads,
        cuda_graph=args.cuda_graph,
        data_transfers=not args.no_data_transfers,
        spin_wait=args.spin_wait,
    )
    update, close = progress_bar() if not args.no_progress else (None, lambda: None)
    try:
        result = bench(args.engine, args.inputs, settings, progress=update, shapes=args.shapes, batch=args.batch)
    finally:
        close()
    print(performance_summary(result, verbose=args.verbose))
    if args.json_path:
        write_json(result, args.json_path)
    if args.export_times:
        write_times(result, args.export_times)
    if args.plot:
        plot(result, args.plot)
    return 0
