"""trtforge deploy SRC -o OUTDIR [--precision fp32,fp16,int8] [--calib-data ...] [--select fastest]"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from trtforge.cli.parse import add_bias_correction_flags, add_equalize_flag, add_reduce_range_flag
from trtforge.config import CALIB_METHOD_HELP, DEFAULT_CALIB_METHOD
from trtforge.numbers import int_arg, real_arg


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(
        name,
        help="convert, build every precision, validate, bench, and report",
        description="From a trained model (anything convert takes, or ONNX) to engines "
        "validated against FP32 and benchmarked, with report.md / report.json / plots in OUTDIR.",
    )
    p.add_argument("source", help="model: SavedModel folder, .keras/.h5, .pb, .tflite, torch, or .onnx")
    p.add_argument("-o", "--output", required=True, help="folder to write (refused if not empty, unless --force)")
    p.add_argument(
        "--serve",
        action="store_true",
        help="at the end, serve the selected engine on Triton until "
        "SIGTERM (as trtforge serve OUTDIR; HTTP on --serve-port, gRPC +1, metrics +2)",
    )
    p.add_argument(
        "--serve-port",
        type=int_arg("--serve-port", 1, 65533),
        default=8000,
        metavar="PORT",
        help="HTTP port for --serve (default 8000)",
    )
    p.add_argument(
        "--triton",
        metavar="REPO",
        help="at the end, export the selected engine into this Triton model "
        "repository (as trtforge export triton OUTDIR -o REPO; model name = OUTDIR's name)",
    )
    p.add_argument("--force", action="store_true", help="replace OUTDIR if it exists")
    p.add_argument("--batch", help="N or dynamic: fix the batch (reshape, verified); default: keep the model's")
    p.add_argument("--precision", default="fp32,fp16", help="comma-separated: fp32,fp16,bf16,int8 (default fp32,fp16)")
    p.add_argument("--backend", default="onnxruntime", help="backend (default: onnxruntime)")
    p.add_argument("--device", default="cpu", help="device for the backend (default: cpu)")
    from trtforge.cli.convert import add_source_options

    add_source_options(p)  # how to read and convert SRC, as trtforge convert
    cal = p.add_argument_group("calibration and validation")
    cal.add_argument("--calib-data", help="images folder or FILE.npz/.npy for INT8 calibration")
    cal.add_argument("--preprocess", help="image preprocessing spec (shared by calibration and validation)")
    cal.add_argument("--calib-method", default=str(DEFAULT_CALIB_METHOD), help=CALIB_METHOD_HELP)
    add_bias_correction_flags(cal)
    add_equalize_flag(cal)
    add_reduce_range_flag(cal)
    cal.add_argument(
        "--calib-num",
        type=int_arg("--calib-num", 1, 10**7),
        default=500,
        help="calibration samples at most (default 500)",
    )
    cal.add_argument(
        "--val-data",
        help="validation images (labels.csv with file,label for top-1) or FILE.npz; "
        "default: every 5th image of --calib-data, held out of calibration",
    )
    cal.add_argument(
        "--val-num", type=int_arg("--val-num", 1, 10**7), default=500, help="validation samples at most (default 500)"
    )
    cal.add_argument(
        "--max-accuracy-drop",
        type=real_arg("--max-accuracy-drop", 0, 100),
        default=None,
        metavar="POINTS",
        help="largest allowed top-1 drop vs FP32, in percentage points",
    )
    cal.add_argument("--select", choices=["fastest"], help="copy the fastest passing engine to OUTDIR/model.engine")
    cal.add_argument(
        "--metric",
        default="auto",
        choices=["auto", "top1", "cosine"],
        help="agreement with fp32 without labels: auto (per output: top-1 for class scores, "
        "cosine >= 0.999 per sample for boxes/masks/landmarks), top1 (argmax of the first "
        "output) or cosine (default auto)",
    )
    b = p.add_argument_group("benchmark")
    b.add_argument("--warmup", type=real_arg("--warmup", 0, 3.6e6), default=200.0, help="warm-up in ms (default 200)")
    b.add_argument(
        "--iterations", type=int_arg("--iterations", 1, 10**9), default=10, help="at least N queries (default 10)"
    )
    b.add_argument(
        "--duration",
        type=real_arg("--duration", 0, 86400),
        default=3.0,
        help="at least S seconds per engine (default 3)",
    )
    p.set_defaults(run=run)


def options_from_args(args: argparse.Namespace):  # -> DeployOptions
    from trtforge.bench import BenchSettings
    from trtforge.cli.convert import options_from_args as convert_options
    from trtforge.config import CalibMethod, CalibrationConfig, Precision
    from trtforge.data.preprocess import Preprocess
    from trtforge.deploy import DeployOptions

    precisions = tuple(Precision.parse(p) for p in args.precision.split(",") if p.strip())
    if args.reduce_range and Precision.INT8 not in precisions:
        from trtforge.errors import TrtforgeError

        raise TrtforgeError("--reduce-range sets the bits of INT8 weights, but --precision has no int8; drop it")
    preprocess = Preprocess.parse(args.preprocess) if args.preprocess else None
    calibration = None
    if args.calib_data:
        calibration = CalibrationConfig(
            data=Path(args.calib_data),
            preprocess=preprocess,
            num=args.calib_num,
            method=CalibMethod.parse(args.calib_method),
            bias_correction=args.bias_correction,
            equalize=args.equalize,
            reduce_range=args.reduce_range,
            empirical_bias_correction=args.empirical_bias_correction,
        )
    convert = convert_options(args)  # the batch is fixed after conversion, by the verified reshape
    return DeployOptions(
        precisions=precisions,
        backend=args.backend,
        device=args.device,
        source_format=args.source_format,
        convert=convert,
        batch=args.batch,
        calibration=calibration,
        val_data=Path(args.val_data) if args.val_data else None,
        val_num=args.val_num,
        max_accuracy_drop=args.max_accuracy_drop,
        select=args.select,
        metric=args.metric,
        bench=BenchSettings(args.warmup, args.iterations, args.duration),
        force=args.force,
        command="trtforge " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        preprocess=preprocess,
    )


def run(args: argparse.Namespace) -> int:
    from trtforge.deploy import auto_table, deploy, report_table, report_why
    from trtforge.errors import TrtforgeError, require

    if (args.triton or args.serve) and not args.select:
        raise TrtforgeError("--triton and --serve take the selected engine: add --select fastest")
    if args.triton:  # before the long part: a missing extra should not cost a deploy
        require("tritonclient.grpc.model_config_pb2", "serve", "deploy --triton")
    if args.serve:
        require("pytriton.triton", "serve", "deploy --serve")
    report = deploy(args.source, args.output, options_from_args(args))
    print(report_table(report))
    print("\n" + report_why(report))
    if auto_table(report):
        print("\n" + "\n".join(auto_table(report)[2:]).rstrip())  # the heading is the report's
    if report.selected:
        print(f"\nselected {report.selected} (fastest passing) → {report.outdir / 'model.engine'}")
    print(f"report: {report.outdir / 'report.md'}")
    if args.triton:
        from trtforge.serve.export import export_triton

        if not report.selected:
            raise TrtforgeError(f"no engine was selected, so nothing was exported to {args.triton}")
        folder = export_triton(report.outdir, args.triton)
        print(f"triton: {folder} (serve it: tritonserver --model-repository {args.triton})")
    if args.serve:
        if not report.selected:
            raise TrtforgeError("no engine was selected, so there is nothing to serve")
        from trtforge.cli.serve import serve_logging
        from trtforge.serve.server import ServeOptions, serve

        serve_logging()
        port = args.serve_port
        serve([report.outdir], ServeOptions(port, port + 1, port + 2))
        print("trtforge serve: stopped")
    return 0
