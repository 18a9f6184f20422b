"""trtforge compare ENGINE REFERENCE [--inputs ...|--random N] [--atol/--rtol/--min-cosine] [--json FILE]"""

from __future__ import annotations

import argparse

from trtforge.cli.run import add_inputs, preprocess_of
from trtforge.numbers import SEED_MAX, int_arg, real_arg


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(
        name,
        help="compare an engine's outputs with a reference (ONNX in FP32, an engine, the source model)",
        description="Feed the same inputs to ENGINE and REFERENCE (an ONNX model, run in FP32 "
        "with ONNX Runtime, another engine, or the source SavedModel/Keras model); "
        "per output: max/mean absolute and relative "
        "error, cosine, top-1 agreement and, with labels, accuracy. Exit 1 when a threshold "
        "is exceeded.",
    )
    p.add_argument("engine", help="engine built by trtforge build (or an ONNX model)")
    p.add_argument("reference", help="ONNX model, engine, or source model (SavedModel folder, .keras...)")
    add_inputs(p)
    src = p.add_argument_group(
        "a source model as REFERENCE (SavedModel, Keras, ...): how the engine's ONNX came from it"
    )
    src.add_argument("--from", dest="source_format", help="source form, if it cannot be detected")
    src.add_argument("--inputs-as-nchw", default="", metavar="NAMES", help="inputs converted to NCHW")
    src.add_argument("--outputs-as-nchw", default="", metavar="NAMES", help="outputs converted to NCHW")
    p.add_argument(
        "--random",
        type=int_arg("--random", 1, 1 << 24),
        metavar="N",
        help="N seeded random samples instead of --inputs",
    )
    p.add_argument("--seed", type=int_arg("--seed", 0, SEED_MAX), default=0, help="seed of --random (default 0)")
    p.add_argument(
        "--labels",
        metavar="FILE",
        help="labels: FILE.csv (file,label) for an image folder, or .txt/"
        ".npy in sample order; default: the folder's labels.csv, or <name>_<label> file names",
    )
    t = p.add_argument_group("thresholds (exit 1 when exceeded)")
    t.add_argument(
        "--atol", type=real_arg("--atol", 0), help="absolute tolerance (fails where |a-b| > atol + rtol*|ref|)"
    )
    t.add_argument("--rtol", type=real_arg("--rtol", 0), help="relative tolerance")
    t.add_argument(
        "--min-cosine", type=real_arg("--min-cosine", -1, 1), help="lowest cosine similarity allowed for any sample"
    )
    t.add_argument(
        "--max-range-error",
        type=real_arg("--max-range-error", 0),
        metavar="FRACTION",
        help="largest |a-b| allowed, as a fraction of the reference's range, per sample and per field "
        "where an output mixes fields (boxes next to scores). With no threshold flag at all: "
        "--min-cosine 0.9 --max-range-error 0.3",
    )
    p.add_argument("--json", dest="json_path", metavar="FILE", help="write the metrics as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json

    from trtforge._files import check_outputs, write_text_atomic
    from trtforge.compare import compare, render
    from trtforge.errors import TrtforgeError

    check_outputs([("--json", args.json_path)], [args.engine, args.reference, args.inputs, args.labels])
    if args.inputs and args.random:
        raise TrtforgeError("give --inputs or --random, not both")
    from trtforge.converters import ConvertOptions

    names = lambda text: tuple(n.strip() for n in text.split(",") if n.strip())  # noqa: E731
    source = ConvertOptions(inputs_as_nchw=names(args.inputs_as_nchw), outputs_as_nchw=names(args.outputs_as_nchw))
    result = compare(
        args.engine,
        args.reference,
        args.inputs,
        preprocess_of(args),
        random=args.random,
        labels=args.labels,
        thresholds=_thresholds(args),
        limit=args.limit,
        seed=args.seed,
        source_options=source,
        source_format=args.source_format,
    )
    print(render(result))
    if args.json_path:
        write_text_atomic(args.json_path, json.dumps(result.to_json(), indent=2) + "\n")
    return 0 if result.passed else 1


def _thresholds(args: argparse.Namespace):  # -> Thresholds
    from trtforge.compare import Thresholds

    given = Thresholds(args.atol, args.rtol, args.min_cosine, args.max_range_error)
    return given if given.any else Thresholds.default()
