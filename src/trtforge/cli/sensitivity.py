"""trtforge sensitivity MODEL.onnx --calib-data ... --val-data ... [--metric ...] [--json OUT] [--plot OUT.png]"""

from __future__ import annotations

import argparse

from trtforge.cli.parse import add_bias_correction_flags, add_equalize_flag
from trtforge.config import CALIB_METHOD_HELP, DEFAULT_CALIB_METHOD
from trtforge.numbers import int_arg


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(
        name,
        help="rank a model's units by the INT8 (or FP16) error each adds, on your data",
        description="INT8: calibrate once, then quantize one unit at a time (a unit is what the backend "
        "fuses: a Conv with its ReLU/residual Add); FP16: cast one unit at a time (FP16 rounding simulated). "
        "Each variant's outputs are measured against FP32 with ONNX Runtime on the validation data. Prints "
        "the units ranked, most harmful first, by ONNX node name, op and source layer; each can be kept "
        "float with --exclude-nodes, or by build --max-accuracy-drop.",
    )
    p.add_argument("model", help="ONNX model")
    p.add_argument(
        "--precision",
        default="int8",
        help="int8 (one unit quantized at a time) | fp16 | bf16 (one unit cast at a time; no calibration)",
    )
    p.add_argument(
        "--backend",
        default="onnxruntime",
        help="whose Q/DQ flavour and fusion units: onnxruntime | tensorrt | tensorrt-rtx",
    )
    p.add_argument("--calib-data", required=False, help="calibration images (folder) or FILE.npz/.npy (INT8)")
    p.add_argument("--calib-loader", metavar="FILE.py[:func]", help="Python function yielding input batches")
    p.add_argument(
        "--calib-num",
        type=int_arg("--calib-num", 1, 10**7),
        default=500,
        help="calibration samples at most (default 500)",
    )
    p.add_argument("--calib-method", default=str(DEFAULT_CALIB_METHOD), help=CALIB_METHOD_HELP)
    add_bias_correction_flags(p, measured=False)
    add_equalize_flag(p)
    p.add_argument("--calib-cache", metavar="FILE", help="TensorRT-format calibration cache to read or write")
    p.add_argument("--preprocess", help="image preprocessing (as for build), used for both data sets")
    p.add_argument("--val-data", required=True, help="validation images (folder) or FILE.npz/.npy")
    p.add_argument(
        "--val-num", type=int_arg("--val-num", 1, 10**7), default=64, help="validation samples at most (default 64)"
    )
    p.add_argument(
        "--metric",
        default="top1",
        help="top1 (points of changed top-1 answers) | cosine | max-abs | FILE.py:fn(outputs, reference)",
    )
    p.add_argument(
        "--top", type=int_arg("--top", 1, 10**6), default=20, help="rows to print (default 20; --json has all)"
    )
    p.add_argument("--json", dest="json_path", metavar="FILE", help="write the ranking as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="draw the error per unit in graph order")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from trtforge._files import check_outputs, write_text_atomic
    from trtforge.config import CalibMethod, CalibrationConfig, Precision
    from trtforge.data.preprocess import Preprocess
    from trtforge.errors import TrtforgeError
    from trtforge.precision.mixed import plot, sensitivity

    check_outputs(
        [("--json", args.json_path), ("--plot", args.plot)],
        [args.model, args.calib_data, args.val_data, args.calib_loader, args.calib_cache],
    )
    precision = Precision.parse(args.precision)
    if precision is Precision.FP32:
        raise TrtforgeError("--precision fp32: nothing to rank; use int8, fp16 or bf16")
    preprocess = Preprocess.parse(args.preprocess) if args.preprocess else None
    calibration = None
    if precision is Precision.INT8 or args.calib_data or args.calib_loader or args.calib_cache:
        calibration = CalibrationConfig(
            data=Path(args.calib_data) if args.calib_data else None,
            loader=args.calib_loader,
            preprocess=preprocess,
            num=args.calib_num,
            method=CalibMethod.parse(args.calib_method),
            bias_correction=args.bias_correction,
            equalize=args.equalize,
            cache=Path(args.calib_cache) if args.calib_cache else None,
        )
    result = sensitivity(
        args.model,
        calibration,
        args.val_data,
        backend=args.backend,
        metric=args.metric,
        preprocess=preprocess,
        val_num=args.val_num,
        precision=precision,
    )
    print(
        f"{len(result.errors)} units ({result.flavour} flavour), {result.samples} validation samples, "
        f"metric {result.metric}; {result.scheme}"
    )
    first = "calibration" if "calibrate" in result.seconds else "preparing the cast"
    step = "Q/DQ placement" if result.precision == "int8" else "simulated cast"
    print(
        f"cost: {first} {result.seconds.get('calibrate', result.seconds.get('prepare', 0.0)):.2f} s, ranking "
        f"{result.seconds['units']:.2f} s ({result.seconds['per_unit']:.3f} s per unit: one {step} + one "
        "validation pass)"
    )
    print(result.table(args.top))
    if args.json_path:
        write_text_atomic(args.json_path, json.dumps(result.to_json(), indent=2) + "\n")
        print(f"wrote {args.json_path}")
    if args.plot:
        plot(result, args.plot)
        print(f"wrote {args.plot}")
    return 0
