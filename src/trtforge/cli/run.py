"""trtforge run ENGINE --inputs FILE.npz|IMAGE_DIR [--preprocess SPEC] [-o OUT.npz]"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from trtforge.numbers import int_arg

if TYPE_CHECKING:
    from trtforge.data.preprocess import Preprocess


def add_inputs(p: argparse.ArgumentParser) -> None:
    """Where samples come from; shared with ``compare``."""
    g = p.add_argument_group("inputs")
    g.add_argument(
        "--inputs",
        metavar="FILE.npz|DIR",
        help="arrays keyed by input name (first axis: samples), or a folder of images (with --preprocess)",
    )
    g.add_argument(
        "--preprocess",
        metavar="SPEC",
        help="how images become inputs, the same spec as calibration, "
        "e.g. color=gray,resize=32x32,scale=1/255,layout=nchw",
    )
    g.add_argument("--limit", type=int_arg("--limit", 1), metavar="N", help="use the first N samples only")


def preprocess_of(args: argparse.Namespace) -> Preprocess | None:
    from trtforge.data.preprocess import Preprocess

    return Preprocess.parse(args.preprocess) if args.preprocess else None


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(
        name,
        help="run an engine on real inputs; print output shapes and top-k",
        description="Run an engine (or an ONNX model) on every sample of --inputs; print the "
        "output shapes and, for classifier-shaped outputs, the top-k classes per input.",
    )
    p.add_argument("engine", help="engine built by trtforge build, or an ONNX model")
    add_inputs(p)
    p.add_argument(
        "--random",
        type=int_arg("--random", 1, 1 << 24),
        metavar="N",
        help="N seeded random samples instead of --inputs",
    )
    p.add_argument("-o", "--output", metavar="OUT.npz", help="write the outputs (first axis: samples)")
    p.add_argument(
        "--top-k",
        type=int_arg("--top-k", 1, 1 << 20),
        default=5,
        metavar="K",
        help="classes shown per input (default 5)",
    )
    p.add_argument(
        "--show", type=int_arg("--show", 0), default=20, metavar="N", help="inputs shown at most (default 20)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from trtforge.errors import TrtforgeError
    from trtforge.run import run as run_engine

    if args.inputs and args.random:
        raise TrtforgeError("give --inputs or --random, not both")
    result = run_engine(
        args.engine, args.inputs, preprocess_of(args), args.output, random=args.random, limit=args.limit
    )
    print(f"engine: {result.engine}")
    print(f"inputs: {result.samples.source} ({len(result.samples)} samples)")
    for name, value in result.outputs.items():
        print(f"output {name}: {value.dtype} {'x'.join(map(str, value.shape))}")
    names = [f.name for f in result.samples.files] or [f"#{i}" for i in range(len(result.samples))]
    for output, rows in result.top_k(args.top_k).items():
        print(f"top-{args.top_k} of {output}:")
        for label, row in list(zip(names, rows))[: args.show]:
            print(f"  {label}: " + ", ".join(f"{c} ({s:.4g})" for c, s in row))
        if len(rows) > args.show:
            print(f"  ... {len(rows) - args.show} more (all in -o OUT.npz)")
    for note in result.notes:
        print(f"note: {note}")
    if args.output:
        print(f"wrote {args.output}")
    return 0
