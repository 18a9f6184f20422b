"""INT8 vs FP32 on ONNX Runtime's CPU provider, batch 1, measured in the same run.

Goal (issue 5): INT8 at least 2.0x faster than FP32 on MobileNetV2 and ResNet-50
(keras.applications, weights=None).  Both engines are built by ``trtforge.build`` from the same
ONNX model reshaped to batch 1; INT8 is calibrated (entropy) on synthetic images.  Engines are
timed alternately, ``--rounds`` times each, and the table reports the median of the per-round
medians, so a neighbour's load on a shared machine hits both alike.

    python benchmarks/int8_speed.py --models MobileNetV2,ResNet50 --calib-num 64
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="MobileNetV2,ResNet50")
    ap.add_argument("--calib-num", type=int, default=64, help="calibration images (default 64)")
    ap.add_argument("--calib-method", default="entropy")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per engine per round (default 3)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: its default)")
    ap.add_argument("--workdir", help="keep models and images here (default: a temporary folder)")
    ap.add_argument(
        "--fp16",
        action="store_true",
        help="also time the FP16 engine (ONNX Runtime's CPU provider has no fast FP16 kernels)",
    )
    args = ap.parse_args()

    from _keras import keras_onnx
    from calib_resnet50 import write_images

    import trtforge
    from trtforge.config import BuildConfig, CalibMethod, CalibrationConfig, Precision
    from trtforge.data.preprocess import Preprocess
    from trtforge.engine import cpu_facts

    rows = []
    with tempfile.TemporaryDirectory(prefix="trtforge-bench-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        images = work / f"images-{args.calib_num}"
        if not images.exists():
            images.mkdir()
            write_images(images, args.calib_num)
        for name in args.models.split(","):
            source = keras_onnx(name, work)
            bs1 = work / f"{name}-bs1.onnx"
            trtforge.reshape(source, bs1, batch=1)
            calibration = CalibrationConfig(
                data=images,
                preprocess=Preprocess.parse("resize=224x224:fit,scale=1/127.5,mean=1,layout=nhwc"),
                num=args.calib_num,
                method=CalibMethod.parse(args.calib_method),
            )
            engines = {}
            for precision in (Precision.FP32, Precision.INT8) + ((Precision.FP16,) if args.fp16 else ()):
                out = work / f"{name}-{precision}.onnx.engine"
                manifest = trtforge.build(
                    bs1,
                    out,
                    BuildConfig(precision=precision, calibration=calibration if precision is Precision.INT8 else None),
                )
                engines[precision] = (out, manifest)
            options = {"threads": args.threads} if args.threads else {}
            runners = {p: trtforge.load(out, **options) for p, (out, _) in engines.items()}
            settings = trtforge.BenchSettings(warmup_ms=500, iterations=20, duration_s=args.duration)
            medians: dict[Precision, list[float]] = {p: [] for p in runners}
            for _ in range(args.rounds):
                for precision, runner in runners.items():
                    medians[precision].append(trtforge.bench(runner, settings=settings).latency.median)
            fp32, int8 = (statistics.median(medians[p]) for p in (Precision.FP32, Precision.INT8))
            flavour = (engines[Precision.INT8][1].calibration or {}).get("flavour", {})
            fp16 = statistics.median(medians[Precision.FP16]) if args.fp16 else None
            rows.append((name, fp32, int8, fp16, flavour.get("reason", "")))
    facts = cpu_facts()
    print(
        f"# {platform.node()}: {os.cpu_count()} CPUs, {facts.get('name', '')} "
        f"({', '.join(facts.get('flags', []))}); onnxruntime "
        f"{engines[Precision.FP32][1].backend_version}; batch 1; threads {args.threads or 'default'}; "
        f"{args.rounds} alternating rounds of {args.duration}s per engine; median of round medians"
    )
    extra = " FP16 ms | FP16 vs FP32 |" if args.fp16 else ""
    print(f"| model | FP32 ms | INT8 ms | speedup |{extra} Q/DQ flavour |")
    print("|---|---:|---:|---:|" + ("---:|---:|" if args.fp16 else "") + "---|")
    for name, fp32, int8, fp16, reason in rows:
        half = f" {fp16:.2f} | {fp32 / fp16:.2f}x |" if fp16 is not None else ""
        print(f"| {name} | {fp32:.2f} | {int8:.2f} | {fp32 / int8:.2f}x |{half} {reason} |")


if __name__ == "__main__":
    main()
