"""The widely copied TensorRT build script (EngineBuilder + EngineCalibrator), on trtforge's API.

Same arguments as that script, so a reader can see the mapping::

    python examples/build_engine.py --onnx model.onnx --engine model.plan --precision int8 \\
        --calib_path calib/ --calib_preprocess color=gray,resize=32x32,scale=1/255,layout=nchw \\
        --calib_cache model.cache --calib_num 500 --calib_batch_size 8 --backend tensorrt-rtx

What the script did by hand maps onto trtforge's stages:
  builder flags (fp16 / int8 + calibrator)  -> the precision stage: an FP16 cast graph, or Q/DQ nodes
                                               placed from calibrated ranges (TensorRT flavour), then a
                                               strongly typed network (TensorRT 10's flags: --builder-flags)
  --mem (workspace GiB)                     -> TensorRTOptions(workspace_mib=...)
  EngineCalibrator (batches, cache file)    -> CalibrationConfig(data, num, batch_size, cache)
  network/parser/config/serialize           -> trtforge.build, which also writes the manifest
Every backend works: --backend onnxruntime, tensorrt, tensorrt-rtx.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import trtforge
from trtforge.config import BuildConfig, CalibrationConfig, Precision, TensorRTOptions
from trtforge.errors import TrtforgeError


def config(args: argparse.Namespace) -> BuildConfig:
    from trtforge.data.preprocess import Preprocess

    precision = Precision.parse(args.precision)
    calibration = None
    if precision is Precision.INT8:
        calibration = CalibrationConfig(
            data=Path(args.calib_path) if args.calib_path else None,
            preprocess=Preprocess.parse(args.calib_preprocess) if args.calib_preprocess else None,
            num=args.calib_num,
            batch_size=args.calib_batch_size,
            cache=Path(args.calib_cache) if args.calib_cache else None,
        )
    tensorrt = TensorRTOptions(workspace_mib=int(args.mem * 1024)) if args.backend.startswith("tensorrt") else None
    return BuildConfig(precision=precision, backend=args.backend, calibration=calibration, tensorrt=tensorrt)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--onnx", required=True, help="the ONNX model")
    p.add_argument("--engine", required=True, help="the engine to write (plus ENGINE.json)")
    p.add_argument("--precision", default="fp32", help="fp32 | fp16 | int8")
    p.add_argument("--mem", type=float, default=1.0, help="workspace limit in GiB (TensorRT backends)")
    p.add_argument("--calib_path", help="folder of calibration images, or .npz/.npy")
    p.add_argument("--calib_preprocess", help="how images become inputs, e.g. color=gray,resize=32x32,scale=1/255")
    p.add_argument("--calib_cache", help="calibration cache in TensorRT's format")
    p.add_argument("--calib_num", type=int, default=500, help="calibration samples at most")
    p.add_argument("--calib_batch_size", type=int, default=8, help="calibration batch size")
    p.add_argument("--backend", default="tensorrt-rtx", help="onnxruntime | tensorrt | tensorrt-rtx | auto")
    args = p.parse_args(argv)
    try:
        manifest = trtforge.build(args.onnx, args.engine, config(args))
    except TrtforgeError as exc:
        print(f"build_engine.py: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"wrote {args.engine}: {manifest.backend} {manifest.backend_version}, {manifest.precision}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
