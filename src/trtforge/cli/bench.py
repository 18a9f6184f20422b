"""trtforge bench ENGINE"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="measure an engine's latency and throughput (trtexec's definitions)",
                       description="Benchmark an engine like trtexec: warm up, then run for at least "
                       "--iterations queries and at least --duration seconds; print trtexec's performance "
                       "summary. Inputs are seeded random values at the engine's shapes unless --inputs.")
    p.add_argument("engine", help="engine built by trtforge build")
    i = p.add_argument_group("inputs")
    i.add_argument("--inputs", metavar="FILE.npz", help="input arrays keyed by input name (.npy: one input)")
    i.add_argument("--shapes", metavar="NAME:DIMS,...", help="shapes for dynamic inputs, e.g. image:8x3x224x224")
    i.add_argument("--batch", type=int, metavar="N", help="the leading (batch) dimension of every input")
    i.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    r = p.add_argument_group("run length and concurrency")
    r.add_argument("--warmup", type=float, default=200.0, metavar="MS", help="warm-up time in ms (default 200)")
    r.add_argument("--iterations", type=int, default=10, metavar="N", help="run at least N queries (default 10)")
    r.add_argument("--duration", type=float, default=3.0, metavar="S", help="run at least S seconds (default 3)")
    r.add_argument("--streams", type=int, default=1, metavar="N",
                   help="concurrent streams (CPU: sessions, one thread each; default 1)")
    r.add_argument("--threads", type=int, default=None, metavar="N",
                   help="intra-op threads per CPU session (default: the usable cores / --streams)")
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

    bar = tqdm(total=100, desc="bench", unit="%", file=sys.stderr, leave=False, disable=None,
               bar_format="{desc} {bar} {percentage:3.0f}% {elapsed}")

    def update(fraction: float) -> None:
        bar.update(max(0, round(fraction * 100) - bar.n))

    return update, bar.close


def run(args: argparse.Namespace) -> int:
    from trtforge.bench import BenchSettings, bench
    from trtforge.bench.report import performance_summary, plot, write_json, write_times
    from trtforge.cli.parse import percentiles

    settings = BenchSettings(args.warmup, args.iterations, args.duration, percentiles(args.percentile),
                             args.seed, streams=args.streams, threads=args.threads, cuda_graph=args.cuda_graph,
                             data_transfers=not args.no_data_transfers, spin_wait=args.spin_wait)
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
