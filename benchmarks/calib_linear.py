"""Calibration time vs number of samples: fixed-bin histograms vs ONNX Runtime's growing ones, per method.

Issue 13 measured 29 s for 20 images and 363 s for 50 on MediaPipe's 230 KB short-range face
detector (TFLite): ONNX Runtime widens a histogram by adding bins whenever a batch reaches
further, and the entropy search is quadratic in bins. trtforge now keeps 2048 bins (a wider batch
doubles the bin width). This converts the detector (cached from the mediapipe wheel under
/work/cache/models) with ``trtforge.convert``, feeds N seeded crops of the photos that ship in
sklearn/matplotlib (batch 1, as the issue did), and times ``calibrate`` both ways.

    PYTHONPATH=src python benchmarks/calib_linear.py --num 20,50,100,200 --unbounded 10,20
    PYTHONPATH=src python benchmarks/calib_linear.py --method mse --num 20,50,100 --unbounded ""
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

MODEL = (
    Path(os.environ.get("TRTFORGE_MODEL_CACHE", "/work/cache/models")) / "face_detect/face_detection_short_range.tflite"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num", default="20,50,100,200", help="sample counts with fixed bins")
    ap.add_argument("--unbounded", default="10,20", help="sample counts with ONNX Runtime's growing bins")
    ap.add_argument("--method", default="entropy", help="entropy | mse | percentile (default entropy)")
    args = ap.parse_args()

    import numpy as np
    import onnx
    from int8_fidelity import Spec, crops

    import trtforge
    from trtforge.config import CalibMethod
    from trtforge.precision import calibrate as calibrate_module
    from trtforge.precision.quantize import prepare

    with tempfile.TemporaryDirectory(prefix="calib-linear-") as tmp:
        path = Path(tmp) / "face.onnx"
        trtforge.convert(MODEL, path)
        model = prepare(onnx.load(str(path)))
    name = model.graph.input[0].name
    spec = Spec("face", "", name, (128, 128), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "")
    data = crops(spec, max(int(n) for n in (args.num + "," + args.unbounded).split(",") if n), seed=0).transpose(
        0, 2, 3, 1
    )
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, {os.cpu_count()} cores, "
        f"{MODEL.name} ({len(model.graph.node)} nodes after prepare), {args.method}, batch 1, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    print("| histogram | samples | seconds | seconds per sample |")
    print("| --- | --- | --- | --- |")
    growing = calibrate_module.bounded_collector
    for label, counts in (("fixed 2048 bins (trtforge)", args.num), ("growing (ONNX Runtime)", args.unbounded)):
        calibrate_module.bounded_collector = growing if label.startswith("fixed") else (lambda calibrator, *_: None)
        for n in (int(c) for c in counts.split(",") if c):
            batches = ({name: np.ascontiguousarray(data[i : i + 1])} for i in range(n))
            started = time.perf_counter()
            calibrate_module.calibrate(model, batches, CalibMethod.parse(args.method))
            seconds = time.perf_counter() - started
            print(f"| {label} | {n} | {seconds:.1f} | {seconds / n:.2f} |", flush=True)
    calibrate_module.bounded_collector = growing


if __name__ == "__main__":
    main()
