"""trtforge reshape IN.onnx -o OUT.onnx --batch N|dynamic"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="set a model's batch size, verified by running it",
                       description="Set the batch dimension of every input and output. Shape constants "
                       "that bake the old batch are patched when provably equivalent, otherwise refused; "
                       "the result is run with ONNX Runtime and compared with the original before it is written.")
    p.add_argument("model", help="ONNX model")
    p.add_argument("-o", "--output", required=True, help="ONNX file to write")
    p.add_argument("--batch", required=True, help="batch size (an integer), or 'dynamic'")
    p.add_argument("--dim-name", default="batch", help="name of the symbolic dimension for --batch dynamic")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from trtforge.graph.shapes import Batch, reshape

    batch = Batch.parse(args.batch, args.dim_name)
    model = reshape(args.model, args.output, batch)
    from trtforge.graph.model import graph_inputs

    shapes = ", ".join(f"{t.name}:{t.shape_text()}" for t in graph_inputs(model))
    print(f"wrote {args.output} (batch {batch}; inputs {shapes}; verified with onnxruntime)")
    return 0
