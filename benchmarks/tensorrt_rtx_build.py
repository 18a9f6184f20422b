"""TensorRT-RTX ahead-of-time build time and plan size, per precision and optimisation level (CPU only).

    python benchmarks/tensorrt_rtx_build.py --onnx build/digits-bs1.onnx \\
        --calib-data examples/digits/calib --preprocess color=gray,resize=32x32,scale=1/255,layout=nchw

Prints one row per setting: median and spread of ``--repeats`` builds (the model, the precision
stage's work and the plan writes excluded: only the backend's build is timed), and the plan size.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import onnx

from trtforge.backends.base import get_backend
from trtforge.build import quantize_int8
from trtforge.config import BuildConfig, CalibrationConfig, Precision, TensorRTOptions


def variants(model: onnx.ModelProto, args: argparse.Namespace) -> dict[str, onnx.ModelProto]:
    from onnxconverter_common import float16

    out = {"fp32": model, "fp16 (cast graph)": float16.convert_float_to_float16(model, keep_io_types=True)}
    if args.calib_data:
        from trtforge.data.preprocess import Preprocess

        calibration = CalibrationConfig(
            data=Path(args.calib_data),
            num=args.calib_num,
            preprocess=Preprocess.parse(args.preprocess) if args.preprocess else None,
        )
        config = BuildConfig(precision=Precision.INT8, backend="tensorrt-rtx", calibration=calibration)
        out["int8 (Q/DQ)"], _ = quantize_int8(model, calibration, get_backend("tensorrt-rtx"), config)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--onnx", required=True)
    p.add_argument("--calib-data")
    p.add_argument("--preprocess")
    p.add_argument("--calib-num", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--opt-levels", default="0,3,5")
    args = p.parse_args()
    backend = get_backend("tensorrt-rtx")
    model = onnx.load(args.onnx)
    print(
        f"TensorRT-RTX {backend.version()}, {platform.processor() or platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} CPUs, model {args.onnx}, {args.repeats} builds per row"
    )
    print(f"| {'precision':18} | opt level | build s (median) | spread (min-max) | plan KiB |")
    print(f"|{'-' * 20}|-----------|------------------|------------------|----------|")
    levels = [int(x) for x in args.opt_levels.split(",")]
    for name, variant in variants(model, args).items():
        for level in levels:
            config = BuildConfig(backend="tensorrt-rtx", tensorrt=TensorRTOptions(opt_level=level))
            seconds, size = [], 0
            for _ in range(args.repeats):
                started = time.perf_counter()
                built = backend.build(variant, config)
                seconds.append(time.perf_counter() - started)
                size = len(built.data)
            print(
                f"| {name:18} | {level:9} | {statistics.median(seconds):16.2f} | "
                f"{min(seconds):6.2f} - {max(seconds):6.2f}  | {size / 1024:8.0f} |"
            )


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        main()
