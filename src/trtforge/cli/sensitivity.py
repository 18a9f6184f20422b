"""trtforge sensitivity MODEL.onnx --calib-data ... --val-data ... [--metric ...] [--json OUT] [--plot OUT.png]"""

from __future__ import annotations

import argparse

from trtforge.numbers import int_arg


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(
        name,
        help="rank a model's units by the INT8 error each adds, on your data",
        description="Calibrate once, then quantize one unit at a time (a unit is what the backend "
        "fuses: a Conv with its ReLU/residual Add) and measure its outputs against FP32 with ONNX "
        "Runtime on the validation data. Prints the units ranked, most harmful first, by ONNX node "
        "name, op and source layer; each can be kept float with --exclude-nodes.",
    )
    p.add_argument("model", help="ONNX model")
    p.add_argument("--precision", default="int8", help="int8 (the only one measured per unit so far)")
    p.add_argument(
        "--backend",
        default="onnxruntime",
        help="whose Q/DQ flavour and fusion units: onnxruntime | tensorrt | tensorrt-rtx",
    )
    p.add_argument("--calib-data", required=False, help="calibration images (folder) or FILE.npz/.npy")
    p.add_argument("--calib-loader", metavar="FILE.py[:func]", help="Python function yielding input batches")
    p.add_argument(
        "--calib-num",
        type=int_arg("--calib-num", 1, 10**7),
        default=500,
        help="calibration samples at most (default 500)",
    )
    p.add_argument("--calib-method", default="entropy", help="minmax | entropy | percentile (default entropy)")
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
    from trtforge.sensitivity import plot, sensitivity

    check_outputs(
        [("--json", args.json_path), ("--plot", args.plot)],
        [args.model, args.calib_data, args.val_data, args.calib_loader, args.calib_cache],
    )
    if Precision.parse(args.precision) is not Precision.INT8:
        raise TrtforgeError(
            f"--precision {args.precision}: sensitivity measures INT8 units only; FP16 drift is "
            "checked per node by `trtforge build --precision fp16` (the nodes kept are listed)"
        )
    calibration = CalibrationConfig(
        data=Path(args.calib_data) if args.calib_data else None,
        loader=args.calib_loader,
        preprocess=Preprocess.parse(args.preprocess) if args.preprocess else None,
        num=args.calib_num,
        method=CalibMethod.parse(args.calib_method),
        cache=Path(args.calib_cache) if args.calib_cache else None,
    )
    result = sensitivity(
        args.model, calibration, args.val_data, backend=args.backend, metric=args.metric, val_num=args.val_num
    )
    print(
        f"{len(result.errors)} units ({result.flavour} flavour), {result.samples} validation samples, "
        f"metric {result.metric}; {result.scheme}"
    )
    print(
        f"cost: calibration {result.seconds['calibrate']:.2f} s, ranking {result.seconds['units']:.2f} s "
        f"({result.seconds['per_unit']:.3f} s per unit: one Q/DQ placement + one validation pass)"
    )
    print(result.table(args.top))
    if args.json_path:
        write_text_atomic(args.json_path, json.dumps(result.to_json(), indent=2) + "\n")
        print(f"wrote {args.json_path}")
    if args.plot:
        plot(result, args.plot)
        print(f"wrote {args.plot}")
    return 0
