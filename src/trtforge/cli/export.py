"""trtforge export triton ENGINE|DEPLOY_DIR -o REPO [--name NAME] [--max-batch N] [--instances K] ..."""

from __future__ import annotations

import argparse

from trtforge.numbers import int_arg


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(
        name,
        help="export an engine for a serving system (a Triton model repository)",
        description="Write REPO/NAME/config.pbtxt and REPO/NAME/1/<model> for NVIDIA Triton; the "
        "config is parsed with Triton's model-config protobuf and checked against the "
        "engine's manifest before the folder is renamed into place.",
    )
    p.add_argument("target", choices=["triton"], help="what to export for (triton)")
    p.add_argument("engine", metavar="ENGINE|DEPLOY_DIR", help="a trtforge engine, or a deploy output folder")
    p.add_argument("-o", "--output", required=True, metavar="REPO", help="the model repository folder")
    p.add_argument("--name", help="model name (default: the engine file's stem, or the deploy folder's name)")
    p.add_argument(
        "--max-batch",
        type=int_arg("--max-batch", 0, 1 << 16),
        metavar="N",
        help="Triton max_batch_size (default 8 when the engine takes any batch, or with the "
        "python backend; 0 = no batching)",
    )
    p.add_argument(
        "--max-queue-delay-us",
        type=int_arg("--max-queue-delay-us", 0, 10**9),
        default=100,
        metavar="U",
        help="dynamic batcher's max queue delay in microseconds (default 100)",
    )
    p.add_argument(
        "--preferred-batch",
        metavar="auto|N,...",
        help="dynamic batching's preferred batch sizes, or auto: from a batch sweep of the engine "
        "(the smallest batch within 90%% of the best samples/s, and the best)",
    )
    p.add_argument(
        "--instances", type=int_arg("--instances", 1, 1024), default=1, metavar="K", help="model instances (default 1)"
    )
    p.add_argument(
        "--kind", help="instance kind: cpu or gpu (default: where the engine runs; gpu for CUDA and TensorRT engines)"
    )
    p.add_argument(
        "--backend",
        default="onnxruntime",
        help="onnxruntime: the engine's own Triton backend (onnxruntime_onnx or tensorrt_plan); "
        "python: Triton's Python backend running trtforge's runner (default onnxruntime)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from trtforge.cli.parse import names
    from trtforge.cli.serve import serve_logging
    from trtforge.numbers import integer
    from trtforge.serve.export import export_triton

    serve_logging("")
    preferred: list[int] | str = []
    if args.preferred_batch == "auto":
        preferred = "auto"
    elif args.preferred_batch:
        preferred = [integer(b, "--preferred-batch", 1, 1 << 16) for b in names(args.preferred_batch)]
    folder = export_triton(
        args.engine,
        args.output,
        args.name,
        args.backend,
        args.max_batch,
        args.instances,
        args.kind,
        args.max_queue_delay_us,
        preferred,
    )
    print(f"wrote {folder} (config.pbtxt checked with Triton's model-config protobuf)")
    _warn_vnni_only(args.engine)
    print((folder / "config.pbtxt").read_text(), end="")
    return 0


def _warn_vnni_only(source: str) -> None:
    """Triton runs the exported ONNX Runtime INT8 model on whatever CPU serves it, unchecked: where its weights
    use all 8 bits, say on which CPUs that is right (on stderr, as a warning)."""
    import sys

    from trtforge.backends.onnxruntime import vnni_only_note
    from trtforge.engine import read_manifest
    from trtforge.serve.export import resolve_engine

    note = vnni_only_note(read_manifest(resolve_engine(source)[0]))
    if note is not None:
        print(f"trtforge: warning: {note}; Triton does not check this, so serve it on such a CPU", file=sys.stderr)
