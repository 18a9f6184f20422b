"""trtforge convert SRC -o OUT.onnx"""

from __future__ import annotations

import argparse

from trtforge.numbers import int_arg, real_arg

FORMS = "savedmodel|keras|h5|pb|tflite|checkpoint|torch"


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(
        name,
        help="convert a trained model to ONNX, checked against its framework",
        description="Convert a SavedModel, Keras .keras/.h5, frozen .pb, .tflite, TF1 checkpoint (.meta), "
        "PyTorch .pt2 or module.py:factory to ONNX; then run the source and the ONNX model on the "
        "same random inputs and fail (exit 1) when they differ.",
    )
    p.add_argument("source", help="the model: a file, a SavedModel folder, a checkpoint prefix, or FILE.py:FACTORY")
    p.add_argument("-o", "--output", required=True, help="ONNX file to write")
    add_source_options(p)
    p.add_argument("--batch", default=None, metavar="N|dynamic", help="batch set at export time")
    p.set_defaults(run=run)


def add_source_options(p: argparse.ArgumentParser) -> None:
    """The options that say how to read and convert a source model (shared with ``deploy``)."""
    p.add_argument("--from", dest="source_format", metavar=FORMS, help="source form, if it cannot be detected")
    p.add_argument("--opset", type=int_arg("--opset", 7, 30), default=None, help="ONNX opset (default 17)")
    p.add_argument(
        "--inputs-as-nchw",
        default="",
        metavar="NAMES",
        help="comma-separated rank-4 NHWC inputs to expose as NCHW (with or without ':0')",
    )
    p.add_argument("--outputs-as-nchw", default="", metavar="NAMES", help="the same for rank-4 outputs")
    p.add_argument(
        "--rename-inputs", default="", metavar="OLD=NEW,...", help="rename inputs (or give NEW,... in order)"
    )
    p.add_argument("--rename-outputs", default="", metavar="OLD=NEW,...", help="rename outputs likewise")
    tf = p.add_argument_group("TensorFlow")
    tf.add_argument("--tag", default=None, help="SavedModel tag set, comma-separated (default serve)")
    tf.add_argument("--signature", default=None, help="SavedModel signature (default serving_default)")
    tf.add_argument(
        "--custom-objects",
        default=None,
        metavar="FILE.py",
        help="Python file defining the model's custom Keras layers/functions",
    )
    tf.add_argument("--inputs", default="", metavar="NAME[:SHAPE],...", help="frozen .pb / .meta graph inputs")
    tf.add_argument("--outputs", default="", metavar="NAME,...", help="frozen .pb / .meta graph outputs")
    pt = p.add_argument_group("PyTorch")
    pt.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="NAME:DIMS[:DTYPE]",
        help="an input of module.py:factory (repeat or comma-separate), e.g. input:1x3x224x224",
    )
    check = p.add_argument_group("verification")
    check.add_argument("--no-verify", action="store_true", help="skip the check against the source framework")
    check.add_argument("--atol", type=real_arg("--atol", 0), default=1e-4, help="absolute tolerance (default 1e-4)")
    check.add_argument("--rtol", type=real_arg("--rtol", 0), default=1e-3, help="relative tolerance (default 1e-3)")


def options_from_args(args: argparse.Namespace, batch: str | None = None):  # -> ConvertOptions
    from pathlib import Path

    from trtforge.converters import (
        DEFAULT_OPSET,
        ConvertOptions,
        parse_names,
        parse_renames,
        parse_tensor_args,
    )
    from trtforge.graph.shapes import Batch

    return ConvertOptions(
        opset=args.opset if args.opset is not None else DEFAULT_OPSET,
        inputs_as_nchw=parse_names(args.inputs_as_nchw),
        outputs_as_nchw=parse_names(args.outputs_as_nchw),
        batch=Batch.parse(batch) if batch is not None else None,
        rename_inputs=parse_renames(args.rename_inputs),
        rename_outputs=parse_renames(args.rename_outputs),
        tag=args.tag,
        signature=args.signature,
        custom_objects=Path(args.custom_objects) if args.custom_objects else None,
        inputs=parse_tensor_args(args.inputs),
        outputs=parse_names(args.outputs),
        input_shapes=parse_tensor_args(",".join(args.input_shape)),
        verify=not args.no_verify,
        atol=args.atol,
        rtol=args.rtol,
    )


def run(args: argparse.Namespace) -> int:
    from trtforge.converters import convert

    result = convert(args.source, args.output, options_from_args(args, args.batch), args.source_format)
    print(f"converted {args.source} ({result.form}{', ' + result.note if result.note else ''})")
    if result.verified:
        print(f"verified against {result.framework} on seeded random inputs (atol {args.atol:g}, rtol {args.rtol:g}):")
        for check in result.checks:
            print(f"  {check.describe()}")
    else:
        print("not verified (--no-verify)")
    print(f"wrote {result.path}")
    return 0
