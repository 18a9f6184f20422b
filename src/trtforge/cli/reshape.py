"""trtforge reshape IN.onnx -o OUT.onnx [--batch N|dynamic] [--shapes NAME:DIMS,...] [--simplify]"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(
        name,
        help="set a model's batch or input shapes, verified by running it",
        description="Set the batch dimension of every input, or any input's full shape. "
        "Shape constants that bake the old batch are patched when provably equivalent, "
        "otherwise refused; value_info is cleared and shapes re-inferred; the result is run "
        "with ONNX Runtime and compared sample by sample with the original before it is written.",
    )
    p.add_argument("model", help="ONNX model")
    p.add_argument("-o", "--output", required=True, help="ONNX file to write")
    p.add_argument("--batch", help="batch size (an integer), or 'dynamic'")
    p.add_argument(
        "--shapes",
        help="full input shapes, e.g. image:4x3x224x224,mask:4x-1 "
        "(-1 or a word is a dynamic dimension; quote names holding ':' as 'in:0':...)",
    )
    p.add_argument("--dim-name", default="batch", help="name of the dynamic batch dimension (default: batch)")
    p.add_argument("--simplify", action="store_true", help="fold constants and clean up the graph with onnxslim")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from trtforge.graph.model import graph_inputs
    from trtforge.graph.ranges import InputShapes
    from trtforge.graph.shapes import Batch, reshape

    batch = Batch.parse(args.batch, args.dim_name) if args.batch is not None else None
    shapes = InputShapes.parse(args.shapes) if args.shapes is not None else None
    result = reshape(args.model, args.output, batch, shapes=shapes, dim_name=args.dim_name, simplify=args.simplify)
    inputs = ", ".join(f"{t.name}:{t.shape_text()}" for t in graph_inputs(result.model))
    print(f"wrote {args.output} (inputs {inputs})")
    if result.patched:
        print(f"patched shape constants that baked batch {result.old_batch}: {', '.join(result.patched)}")
    print(f"check: {result.check}")
    return 0
