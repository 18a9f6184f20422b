"""trtforge convert SRC -o OUT.onnx"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="convert a trained model to ONNX",
                       description="Convert a TensorFlow SavedModel to ONNX (through tf2onnx).")
    p.add_argument("source", help="model to convert (a SavedModel folder)")
    p.add_argument("-o", "--output", required=True, help="ONNX file to write")
    p.add_argument("--from", dest="source_format", help="source form, if it cannot be detected")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")
    p.add_argument("--inputs-as-nchw", default="", metavar="NAMES",
                   help="comma-separated NHWC inputs to expose as NCHW (with or without ':0')")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from trtforge.converters import DEFAULT_OPSET, ConvertOptions, convert

    options = ConvertOptions(
        opset=args.opset if args.opset is not None else DEFAULT_OPSET,
        inputs_as_nchw=tuple(n.strip() for n in args.inputs_as_nchw.split(",") if n.strip()),
    )
    path = convert(args.source, args.output, options, args.source_format)
    print(f"wrote {path}")
    return 0
