"""trtforge build IN.onnx -o OUT.engine [--backend ...] [--precision ...] [TensorRT builder options]"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from trtforge.cli.parse import add_bias_correction_flags, add_equalize_flag, add_reduce_range_flag
from trtforge.config import CALIB_METHOD_HELP, DEFAULT_CALIB_METHOD
from trtforge.numbers import SEED_MAX, int_arg, real_arg

if TYPE_CHECKING:
    from trtforge.engine import Manifest


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(
        name,
        help="build an engine from an ONNX model",
        description="Build an engine (plus a JSON manifest beside it) from an ONNX model.",
    )
    p.add_argument("model", help="ONNX model")
    p.add_argument("-o", "--output", required=True, help="engine file to write (manifest: OUTPUT.json)")
    p.add_argument(
        "--backend",
        default="onnxruntime",
        help="onnxruntime | openvino (CPU) | tensorrt | tensorrt-rtx | auto (TensorRT with a GPU; else onnxruntime, "
        "or on a CPU with openvino installed the faster of the two, timed at build)",
    )
    p.add_argument("--device", default="cpu", help="device for the backend (default: cpu)")
    p.add_argument("--precision", default="fp32", help="fp32 | fp16 | bf16 | int8 (default: fp32)")
    p.add_argument(
        "--input-format",
        "--input-formats",
        "--inputIOFormats",
        dest="input_formats",
        help="trtexec IO formats for the inputs, e.g. fp16:chw (one for all, or one per input)",
    )
    p.add_argument(
        "--output-format",
        "--output-formats",
        "--outputIOFormats",
        dest="output_formats",
        help="trtexec IO formats for the outputs, e.g. fp16:chw",
    )
    cal = p.add_argument_group("INT8 calibration")
    cal.add_argument(
        "--calib-data",
        help="folder of images (PNG/JPEG/BMP/TIFF, recursive) or FILE.npz "
        "(arrays keyed by input name) / FILE.npy (one input)",
    )
    cal.add_argument(
        "--calib-loader",
        metavar="FILE.py[:func]",
        help="Python function (default name: batches) yielding {input_name: array} batches",
    )
    cal.add_argument(
        "--preprocess",
        help="image preprocessing, e.g. 'color=gray,resize=32x32,scale=1/255,layout=nchw'; "
        "resize=WxH[:stretch|fit|letterbox] or a mode alone for the model's input size; "
        "also mean=, std= (per channel with :), dtype=",
    )
    cal.add_argument(
        "--calib-num", type=int_arg("--calib-num", 1, 10**7), default=500, help="samples to use at most (default 500)"
    )
    cal.add_argument(
        "--calib-batch-size",
        type=int_arg("--calib-batch-size", 1, 1 << 16),
        default=8,
        help="samples per calibration batch (default 8)",
    )
    cal.add_argument("--calib-method", default=str(DEFAULT_CALIB_METHOD), help=CALIB_METHOD_HELP)
    add_bias_correction_flags(cal)
    add_equalize_flag(cal)
    add_reduce_range_flag(cal)
    cal.add_argument(
        "--calib-percentile",
        type=real_arg("--calib-percentile", 0, 100, low_open=True),
        default=99.999,
        help="for --calib-method percentile",
    )
    cal.add_argument(
        "--calib-seed",
        type=int_arg("--calib-seed", 0, SEED_MAX),
        default=0,
        help="seed for sampling files beyond --calib-num",
    )
    cal.add_argument(
        "--calib-cache",
        metavar="FILE",
        help="TensorRT-format calibration cache: built from when it exists and matches the model and "
        "preprocessing (facts in FILE.json), else written after calibrating",
    )
    cal.add_argument(
        "--calib-cache-force",
        action="store_true",
        help="use --calib-cache even if it was made for another model or preprocessing",
    )
    q = p.add_argument_group("INT8 placement")
    q.add_argument(
        "--exclude-nodes", default="", metavar="N1,N2", help="node names kept in FP32 (no Q/DQ, no FP16/BF16 cast)"
    )
    q.add_argument("--exclude-op-types", default="", metavar="T1,T2", help="op types kept in FP32, e.g. Softmax,Add")
    q.add_argument(
        "--allow-inaccurate",
        action="store_true",
        help="keep an INT8 model that fails its self-check against FP32 on held-back calibration "
        "samples (a loud warning, exit 0); without it such a build exits 1 naming outputs and nodes",
    )
    mixed = p.add_argument_group("INT8 or FP16 within an accuracy budget (mixed precision)")
    mixed.add_argument(
        "--max-accuracy-drop",
        type=real_arg("--max-accuracy-drop", 0),
        metavar="P",
        help="largest error against FP32 on --val-data, in --metric units (top1: percentage points "
        "of changed top-1 answers); over it, the most sensitive units stay FP32 (INT8 on TensorRT, "
        "TensorRT-RTX, ONNX Runtime CUDA: FP16)",
    )
    mixed.add_argument("--val-data", help="validation images (folder, with --preprocess) or FILE.npz/.npy")
    mixed.add_argument(
        "--val-num", type=int_arg("--val-num", 1, 10**7), default=64, help="validation samples at most (default 64)"
    )
    mixed.add_argument("--metric", default="top1", help="top1 | cosine | max-abs | FILE.py:fn (default top1)")
    mixed.add_argument(
        "--keep-slow-int8",
        action="store_true",
        help="ONNX Runtime CPU: keep INT8 units whose float version runs faster on this CPU (by default "
        "they go float when the budget allows; use this when the engine will run on another CPU)",
    )
    shapes = p.add_argument_group("shapes and IO (trtexec's --minShapes/--optShapes/--maxShapes, --inputIOFormats)")
    for kind in ("min", "opt", "max"):
        shapes.add_argument(
            f"--{kind}-shapes",
            action="append",
            default=[],
            metavar="NAME:DIMS[,...]",
            help=f"{kind} shape per dynamic input, e.g. image:1x1x32x32; repeat for several profiles",
        )
    trt = p.add_argument_group("TensorRT / TensorRT-RTX builder")
    trt.add_argument(
        "--workspace",
        type=real_arg("--workspace", 0, float(1 << 40), low_open=True),
        metavar="MIB",
        help="workspace pool limit in MiB (trtexec --workspace)",
    )
    trt.add_argument(
        "--mem-pool",
        metavar="POOL:SIZE[,...]",
        help="pool limits, e.g. workspace:1024,tacticSharedMem:48K (MiB, or K/M/G)",
    )
    trt.add_argument("--timing-cache", metavar="FILE", help="timing cache to load and save (TensorRT only)")
    trt.add_argument("--opt-level", type=int_arg("--opt-level", 0, 5), metavar="0-5", help="builder optimisation level")
    trt.add_argument("--hardware-compat", metavar="LEVEL", help="none | ampere+ | same-compute-capability")
    trt.add_argument("--version-compat", action="store_true", help="plan runs on later TensorRT versions")
    trt.add_argument("--profiling-verbosity", metavar="LEVEL", help="none | layer_names_only | detailed")
    trt.add_argument("--plugins", action="append", default=[], metavar="LIB.so", help="plugin library to load (repeat)")
    trt.add_argument(
        "--builder-flags",
        metavar="FLAGS",
        help="TensorRT 10 only, weakly typed: fp16,bf16,int8 as builder flags (trtexec's --fp16/--int8)",
    )
    p.set_defaults(run=run)


_TRT_OPTIONS = (
    "workspace",
    "mem_pool",
    "timing_cache",
    "opt_level",
    "hardware_compat",
    "version_compat",
    "profiling_verbosity",
    "plugins",
    "builder_flags",
)


def tensorrt_options(args: argparse.Namespace):  # -> TensorRTOptions | None
    """The TensorRT builder settings given, or None when there are none."""
    from trtforge.cli.parse import mem_pools, mib, names
    from trtforge.config import TensorRTOptions

    if not any(getattr(args, name) for name in _TRT_OPTIONS) and args.opt_level is None:
        return None
    flags = tuple(f.lower() for f in names(args.builder_flags))
    return TensorRTOptions(
        workspace_mib=mib(str(args.workspace), "--workspace") >> 20 if args.workspace else None,
        mem_pools=mem_pools(args.mem_pool, "--mem-pool"),
        timing_cache=Path(args.timing_cache) if args.timing_cache else None,
        opt_level=args.opt_level,
        hardware_compat=args.hardware_compat,
        version_compat=args.version_compat,
        profiling_verbosity=args.profiling_verbosity,
        plugins=tuple(Path(p) for p in args.plugins),
        strongly_typed=not flags,
        flags=flags,
    )


def config_from_args(args: argparse.Namespace):  # -> BuildConfig
    from trtforge.cli.parse import names
    from trtforge.config import BuildConfig, CalibMethod, CalibrationConfig, Precision
    from trtforge.data.preprocess import Preprocess
    from trtforge.errors import TrtforgeError
    from trtforge.precision.ioformat import parse_formats

    precision = Precision.parse(args.precision)
    if args.reduce_range and precision is not Precision.INT8:
        raise TrtforgeError(f"--reduce-range sets the bits of INT8 weights, but this build is {precision}; drop it")
    calibration = None
    if args.calib_data or args.calib_loader or args.calib_cache:
        calibration = CalibrationConfig(
            data=Path(args.calib_data) if args.calib_data else None,
            preprocess=Preprocess.parse(args.preprocess) if args.preprocess else None,
            num=args.calib_num,
            batch_size=args.calib_batch_size,
            method=CalibMethod.parse(args.calib_method),
            bias_correction=args.bias_correction,
            equalize=args.equalize,
            reduce_range=args.reduce_range,
            empirical_bias_correction=args.empirical_bias_correction,
            percentile=args.calib_percentile,
            seed=args.calib_seed,
            loader=args.calib_loader,
            cache=Path(args.calib_cache) if args.calib_cache else None,
            cache_force=args.calib_cache_force,
        )
    from trtforge.build import settle
    from trtforge.graph.ranges import parse_profiles

    config = BuildConfig(
        precision=precision,
        backend=args.backend,
        device=args.device,
        calibration=calibration,
        profiles=parse_profiles(args.min_shapes, args.opt_shapes, args.max_shapes),
        input_formats=parse_formats(args.input_formats),
        output_formats=parse_formats(args.output_formats),
        tensorrt=tensorrt_options(args),
        exclude_nodes=names(args.exclude_nodes),
        exclude_op_types=names(args.exclude_op_types),
        allow_inaccurate=getattr(args, "allow_inaccurate", False),
        max_accuracy_drop=args.max_accuracy_drop,
        validation=Path(args.val_data) if args.val_data else None,
        metric=args.metric,
        val_num=args.val_num,
        drop_slow_units=not getattr(args, "keep_slow_int8", False),
        val_preprocess=Preprocess.parse(args.preprocess) if args.preprocess and args.val_data else None,
    )
    return settle(config)


def _say_where_8bit_weights_run(manifest: Manifest) -> None:
    """An ONNX Runtime CPU INT8 engine with 8-bit weights loads only on CPUs with VNNI: say so when it is built."""
    from trtforge.backends.onnxruntime import vnni_only_note

    note = vnni_only_note(manifest)
    if note is not None:
        print(note)


def run(args: argparse.Namespace) -> int:
    from trtforge.build import build

    config = config_from_args(args)
    manifest = build(args.model, args.output, config)
    size = Path(args.output).stat().st_size
    print(
        f"wrote {args.output} ({size / 1024:.1f} KiB, {manifest.backend} {manifest.backend_version}, "
        f"{manifest.precision}) and {args.output}.json"
    )
    if manifest.calibration:
        cal = manifest.calibration
        if cal.get("cache_header"):
            print(f"ranges from calibration cache {cal['cache']} ({cal['tensors']} tensors, {cal['method']})")
        else:
            print(
                f"calibrated on {cal['samples']} samples ({cal['method']})"
                + (f"; wrote {cal['cache']} and {cal['cache']}.json" if cal.get("cache_written") else "")
            )
        print(f"Q/DQ flavour: {cal['flavour']['reason']}")  # type: ignore[index]
        _say_where_8bit_weights_run(manifest)
    mixed = manifest.build.get("mixed")
    if isinstance(mixed, dict):
        low = str(mixed.get("precision", "int8"))
        dropped = len(mixed.get("speed", {}).get("dropped", []))
        print(
            f"mixed precision: {sum(1 + len(u['with']) for u in mixed['kept_float'])} unit(s) kept "
            f"{str(mixed.get('kept_precision', 'fp32')).upper()}"
            + (f", {dropped} float for speed" if dropped else "")
            + f", error {mixed['error']['mixed']:.4g} "
            f"(all {low.upper()} {mixed['error'][low]:.4g}, budget {mixed['budget']:g}, {mixed['metric']})"
        )
    cast = manifest.build.get("cast")
    if isinstance(cast, dict):
        kept = list(cast["kept"])
        checked = str(cast["checked_on"])
        checked = checked if checked.startswith("not checked") else f"checked on {checked}"
        listed = ", ".join(kept[:8]) + (
            f" and {len(kept) - 8} more (all in {args.output}.json)" if len(kept) > 8 else ""
        )
        print(
            f"cast to {cast['precision']}, {checked}; {len(kept)} node(s) kept in FP32"
            + (f": {listed}" if kept else "")
        )
    return 0
