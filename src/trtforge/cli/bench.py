"""trtforge bench ENGINE"""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="measure an engine's latency and throughput (trtexec's definitions)",
                       description="Benchmark an engine on seeded random inputs of its shapes.")
    p.add_argument("engine", help="engine built by trtforge build")
    p.add_argument("--warmup", type=float, default=200.0, metavar="MS", help="warm-up time in ms (default 200)")
    p.add_argument("--iterations", type=int, default=10, help="run at least N queries (default 10)")
    p.add_argument("--duration", type=float, default=3.0, metavar="S", help="run at least S seconds (default 3)")
    p.add_argument("--percentile", default="90,95,99", help="percentiles to report (default 90,95,99)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (CPU; default: all cores)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    p.add_argument("--json", dest="json_path", metavar="FILE", help="write the summary and settings as JSON")
    p.set_defaults(run=run)


def parse_percentiles(text: str) -> tuple[float, ...]:
    from trtforge.errors import TrtforgeError

    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise TrtforgeError(f"bad --percentile {text!r}: expected numbers like 90,95,99") from None


def run(args: argparse.Namespace) -> int:
    from trtforge._files import write_text_atomic
    from trtforge.benchmark import BenchSettings, bench
    from trtforge.builder import load_with_manifest
    from trtforge.backends.onnxruntime import default_threads
    from trtforge.report import performance_summary

    settings = BenchSettings(args.warmup, args.iterations, args.duration, parse_percentiles(args.percentile), args.seed)
    threads = args.threads or default_threads()
    runner, manifest = load_with_manifest(args.engine, threads=threads)
    context = {"engine": args.engine, "backend": manifest.backend, "precision": manifest.precision,
               "device": manifest.device.get("kind", "cpu"), "threads": threads}
    result = bench(runner, settings=settings, context=context)
    print(performance_summary(result))
    if args.json_path:
        payload = {**result.to_json(), "device": manifest.device}
        write_text_atomic(args.json_path, json.dumps(payload, indent=2) + "\n")
    return 0
