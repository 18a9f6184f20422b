"""Serving throughput vs client concurrency, with and without Triton's dynamic batching, against
in-process ``trtforge bench`` of the same engine (batch 1, one stream).

Each server is ``trtforge serve`` in its own process (as a user runs it), the clients are
``trtforge bench --server``'s threads in this one; one request = one sample.

    PYTHONPATH=src .venv/bin/python benchmarks/serve_throughput.py [--model digits|MobileNetV2] [--duration 3]
        [--concurrency 1,2,4,8]

MobileNetV2 is keras.applications' (weights=None: the timing does not depend on the weights).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def served(engine: Path, extra: list[str], work: Path) -> tuple[subprocess.Popen[bytes], str]:
    import tritonclient.http as httpclient

    http, grpc, metrics = free_ports(3)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    log = open(work / f"serve-{http}.log", "wb")  # noqa: SIM115 (lives as long as the server)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trtforge",
            "serve",
            str(engine),
            "--http-port",
            str(http),
            "--grpc-port",
            str(grpc),
            "--metrics-port",
            str(metrics),
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    client = httpclient.InferenceServerClient(f"localhost:{http}")
    for _ in range(300):
        try:
            if client.is_model_ready(engine.name.split(".")[0]):
                return process, f"localhost:{http}"
        except Exception:
            pass
        if process.poll() is not None:
            raise SystemExit(f"trtforge serve exited: see {log.name}")
        time.sleep(0.3)
    raise SystemExit("server not ready in 90 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="digits", help="digits, or a keras.applications name (MobileNetV2)")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--delay-us", type=int, default=500)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    from trtforge.bench import BenchSettings, bench
    from trtforge.cli import main as cli
    from trtforge.serve.client import bench_server

    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    if args.model == "digits":
        onnx = work / "digits.onnx"
        assert (
            cli(
                [
                    "convert",
                    str(ROOT / "examples" / "digits" / "saved_model"),
                    "-o",
                    str(onnx),
                    "--inputs-as-nchw",
                    "image",
                ]
            )
            == 0
        )
    else:
        sys.path.insert(0, str(Path(__file__).parent))
        from _keras import keras_onnx

        onnx = keras_onnx(args.model, work)
    engine = work / f"{args.model}.engine"
    assert cli(["build", str(onnx), "-o", str(engine)]) == 0
    local = bench(engine, settings=BenchSettings(duration_s=args.duration), batch=1)
    print(
        f"{args.model}: in-process trtforge bench, batch 1: {local.qps:.1f} qps (median {local.latency.median:.3f} ms)"
    )

    rows = []
    for label, extra in (
        ("dynamic batching", ["--max-batch", str(args.max_batch), "--max-queue-delay-us", str(args.delay_us)]),
        ("no batching", ["--max-batch", "0"]),
    ):
        process, url = served(engine, extra, work)
        try:
            for r in bench_server(url, args.model, levels, "http", 1, 0.5, args.duration):
                rows.append((label, r.concurrency, r.qps, r.latency.median, r.latency.percentiles[99.0]))
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    after = bench(engine, settings=BenchSettings(duration_s=args.duration), batch=1)
    print(
        f"{args.model}: in-process again after the servers: {after.qps:.1f} qps (median "
        f"{after.latency.median:.3f} ms); the ratios below use the first"
    )
    print("\n| server | concurrency | qps | vs in-process | median ms | p99 ms |\n|---|---|---|---|---|---|")
    for label, c, qps, med, p99 in rows:
        print(f"| {label} | {c} | {qps:.1f} | {100 * qps / local.qps:.0f}% | {med:.2f} | {p99:.2f} |")


if __name__ == "__main__":
    main()
