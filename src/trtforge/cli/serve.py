"""trtforge serve ENGINE... [--http-port 8000 --grpc-port 8001 --metrics-port 8002] [--max-batch N] ..."""

from __future__ import annotations

import argparse
import logging
import sys

from trtforge.numbers import int_arg


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(
        name,
        help="serve engines on a Triton Inference Server (PyTriton) until SIGTERM",
        description="Serve trtforge engines over HTTP and gRPC on the tritonserver that PyTriton "
        "ships (pip install 'trtforge[serve]'). Each engine is loaded and run once before "
        "its model is bound; Triton's statistics and model-repository endpoints need the "
        "token in $TRTFORGE_SERVE_TOKEN (random when unset).",
    )
    p.add_argument("engines", nargs="+", metavar="ENGINE", help="engines (or deploy folders); model name = file stem")
    p.add_argument("--http-port", type=int_arg("--http-port", 1, 65535), default=8000, help="HTTP port (default 8000)")
    p.add_argument("--grpc-port", type=int_arg("--grpc-port", 1, 65535), default=8001, help="gRPC port (default 8001)")
    p.add_argument(
        "--metrics-port",
        type=int_arg("--metrics-port", 1, 65535),
        default=8002,
        help="Prometheus metrics port (default 8002)",
    )
    p.add_argument(
        "--max-batch",
        type=int_arg("--max-batch", 0, 1 << 16),
        metavar="N",
        help="Triton max_batch_size: samples merged per run by the dynamic batcher (default 8; 0 = off)",
    )
    p.add_argument(
        "--max-queue-delay-us",
        type=int_arg("--max-queue-delay-us", 0, 10**9),
        default=100,
        metavar="U",
        help="how long the batcher waits for more requests, in microseconds (default 100)",
    )
    p.add_argument(
        "--instances",
        type=int_arg("--instances", 1, 1024),
        default=1,
        metavar="K",
        help="model instances per engine (default 1)",
    )
    p.set_defaults(run=run)


class _Stderr(logging.Handler):
    """Writes to the sys.stderr of the moment (a stream captured at setup may be gone by the next command)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr)


def serve_logging(prefix: str = "trtforge serve: ") -> None:
    """trtforge's serving log at INFO on stderr; PyTriton's own at WARNING."""
    log = logging.getLogger("trtforge.serve")
    if not any(isinstance(h, _Stderr) for h in log.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter(f"{prefix}%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    for name in ("pytriton", "tritonclient"):
        logging.getLogger(name).setLevel(logging.WARNING)


def run(args: argparse.Namespace) -> int:
    from trtforge.serve.server import ServeOptions, serve

    serve_logging()
    serve(
        args.engines,
        ServeOptions(
            args.http_port, args.grpc_port, args.metrics_port, args.max_batch, args.max_queue_delay_us, args.instances
        ),
    )
    print("trtforge serve: stopped")
    return 0
