"""Entropy calibration of N images through ResNet-50 (keras.applications, weights=None, 224x224).

Goal (issue 5): 1000 images within 24 GiB peak RSS and 10 minutes on the 2-core machine.
The images are synthetic (random smooth colour fields, JPEG), written to a temporary folder;
ResNet-50 comes from code, nothing is downloaded.  Prints one table row per run:
images, batch size, method, calibration seconds, images/s, peak RSS of this process (GiB).

    python benchmarks/calib_resnet50.py --num 1000
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def write_images(folder: Path, num: int, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(num):
        low = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)  # smooth fields, not white noise
        img = Image.fromarray(low).resize((256, 256), Image.BICUBIC)
        img.save(folder / f"{i:05d}.jpg", quality=90)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)  # KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", type=int, default=1000, help="images to calibrate on (default 1000)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--method", default="entropy")
    ap.add_argument("--workdir", help="keep the model and images here (default: a temporary folder)")
    args = ap.parse_args()

    import trtforge
    from trtforge.config import BuildConfig, CalibMethod, CalibrationConfig, Precision
    from trtforge.data.preprocess import Preprocess

    with tempfile.TemporaryDirectory(prefix="trtforge-bench-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        from _keras import keras_onnx

        model = keras_onnx("ResNet50", work)
        images = work / f"images-{args.num}"
        if not images.exists():
            images.mkdir()
            write_images(images, args.num)
        rss_before = peak_rss_gib()
        config = BuildConfig(
            precision=Precision.INT8,
            calibration=CalibrationConfig(
                data=images,
                preprocess=Preprocess.parse("resize=224x224:fit,scale=1/127.5,mean=1,layout=nhwc"),
                num=args.num,
                batch_size=args.batch_size,
                method=CalibMethod.parse(args.method),
            ),
        )
        started = time.perf_counter()
        manifest = trtforge.build(model, work / "resnet50-int8.onnx", config)
        total = time.perf_counter() - started
        cal = manifest.calibration or {}
        print(
            f"# {platform.node()} {os.cpu_count()} CPUs; onnxruntime {manifest.backend_version}; "
            f"peak RSS before calibration {rss_before:.2f} GiB"
        )
        print("| images | batch | method | calibrate+quantize s | build total s | images/s | peak RSS GiB |")
        print("|---:|---:|---|---:|---:|---:|---:|")
        print(
            f"| {cal.get('samples')} | {args.batch_size} | {args.method} | {cal.get('seconds')} | {total:.1f} | "
            f"{int(cal.get('samples') or 0) / float(cal.get('seconds') or 1):.2f} | {peak_rss_gib():.2f} |"
        )


if __name__ == "__main__":
    main()
