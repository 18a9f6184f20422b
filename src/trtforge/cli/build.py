"""trtforge build IN.onnx -o OUT.engine --precision fp32|int8 [--calib-data ...]"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="build an engine from an ONNX model",
                       description="Build an engine (plus a JSON manifest beside it) from an ONNX model.")
    p.add_argument("model", help="ONNX model")
    p.add_argument("-o", "--output", required=True, help="engine file to write (manifest: OUTPUT.json)")
    p.add_argument("--backend", default="onnxruntime", help="backend (default: onnxruntime)")
    p.add_argument("--device", default="cpu", help="device for the backend (default: cpu)")
    p.add_argument("--precision", default="fp32", help="fp32 | fp16 | bf16 | int8 (default: fp32)")
    p.add_argument("--input-format", "--inputIOFormats", dest="input_formats",
                   help="trtexec IO formats for the inputs, e.g. fp16:chw (one for all, or one per input)")
    p.add_argument("--output-format", "--outputIOFormats", dest="output_formats",
                   help="trtexec IO formats for the outputs, e.g. fp16:chw")
    cal = p.add_argument_group("INT8 calibration")
    cal.add_argument("--calib-data", help="folder of images (PNG/JPEG/BMP/TIFF) or FILE.npz / FILE.npy")
    cal.add_argument("--preprocess", help="image preprocessing, e.g. 'color=gray,resize=32x32,scale=1/255,layout=nchw'")
    cal.add_argument("--calib-num", type=int, default=500, help="samples to use at most (default 500)")
    cal.add_argument("--calib-batch-size", type=int, default=8, help="samples per calibration batch (default 8)")
    cal.add_argument("--calib-method", default="entropy", help="minmax | entropy | percentile (default entropy)")
    cal.add_argument("--calib-percentile", type=float, default=99.999, help="for --calib-method percentile")
    cal.add_argument("--calib-seed", type=int, default=0, help="seed for sampling files beyond --calib-num")
    p.set_defaults(run=run)


def config_from_args(args: argparse.Namespace):  # -> BuildConfig
    from trtforge.config import BuildConfig, CalibMethod, CalibrationConfig, Precision
    from trtforge.precision.data import Preprocess

    from trtforge.precision.ioformat import parse_formats

    precision = Precision.parse(args.precision)
    calibration = None
    if args.calib_data:
        calibration = CalibrationConfig(
            data=Path(args.calib_data),
            preprocess=Preprocess.parse(args.preprocess) if args.preprocess else None,
            num=args.calib_num, batch_size=args.calib_batch_size,
            method=CalibMethod.parse(args.calib_method), percentile=args.calib_percentile,
            seed=args.calib_seed,
        )
    return BuildConfig(precision=precision, backend=args.backend, device=args.device, calibration=calibration,
                       input_formats=parse_formats(args.input_formats),
                       output_formats=parse_formats(args.output_formats))


def run(args: argparse.Namespace) -> int:
    from trtforge.builder import build

    config = config_from_args(args)
    manifest = build(args.model, args.output, config)
    size = Path(args.output).stat().st_size
    print(f"wrote {args.output} ({size / 1024:.1f} KiB, {manifest.backend} {manifest.backend_version}, "
          f"{manifest.precision}) and {args.output}.json")
    if manifest.calibration:
        cal = manifest.calibration
        print(f"calibrated on {cal['samples']} samples ({cal['method']}); Q/DQ flavour: "
              f"{cal['flavour']['reason']}")  # type: ignore[index]
    cast = manifest.build.get("cast")
    if isinstance(cast, dict):
        kept = cast["kept"]
        print(f"cast to {cast['precision']}, checked on {cast['checked_on']}; "
              f"{len(kept)} node(s) kept in FP32" + (f": {', '.join(list(kept)[:8])}" if kept else ""))
    return 0
