"""INT8 fidelity on trained models: trtforge's default INT8 vs ModelOpt's ONNX INT8, against FP32.

Models with trained weights shipped in PyPI wheels (cached under /work/cache/models by the
`realmodels` corpus): nudenet's YOLOv8n detector (320n.onnx: boxes 0..320 concatenated with
18 sigmoid class scores), RapidOCR's PP-OCRv4 text detector (a sigmoid probability map, opset 12)
and its PP-OCR direction classifier (softmax over 2 classes, opset 11). Each is fixed to batch 1
at its usual input size. Data: random crops (seeded) of the photos that ship in sklearn and
matplotlib (china.jpg, flower.jpg, grace_hopper.jpg), with 1-4 words drawn on them for the OCR
models: ``--calib`` crops to calibrate, ``--held`` other crops to measure. The same calibration .npz goes to every tool.

Measured on the held-out crops, each INT8 model against the FP32 model on ONNX Runtime CPU:
per-sample cosine (mean / worst), the largest error relative to the FP32 output's range per
field (boxes vs class scores; worst over samples), a task metric (YOLO: the top detection's class
and box agree (IoU > 0.5); PP-OCR det: text-mask IoU at 0.3; cls: top-1 agreement), and latency
(ONNX Runtime CPU, batch 1, 1 thread, median of ``--runs``).

    PYTHONPATH=src python benchmarks/int8_fidelity.py                       # this checkout
    PYTHONPATH=/work/main/src python benchmarks/int8_fidelity.py --label main   # another checkout
    ... --modelopt /work/cache/venvs/modelopt/bin/python                    # also ModelOpt's ONNX INT8

ModelOpt runs in its own environment (``pip install "nvidia-modelopt[onnx]"``), never trtforge's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODELS = Path(os.environ.get("TRTFORGE_MODEL_CACHE", "/work/cache/models"))


@dataclass(frozen=True)
class Spec:
    name: str
    path: str
    input: str
    size: tuple[int, int]  # H, W
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    task: str


SPECS = {
    "yolov8n": Spec("yolov8n", "yolov8n_det/320n.onnx", "images", (320, 320), (0, 0, 0), (1, 1, 1), "detect"),
    "ppocr_det": Spec(
        "ppocr_det",
        "ppocr_det/ch_PP-OCRv4_det_infer.onnx",
        "x",
        (320, 320),
        (0.485, 0.456, 0.406),
        (0.229, 0.224, 0.225),
        "mask",
    ),
    "ppocr_cls": Spec(
        "ppocr_cls",
        "ppocr_cls/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "x",
        (48, 192),
        (0.5, 0.5, 0.5),
        (0.5, 0.5, 0.5),
        "classify",
    ),
}


def fixed(source: Path, out: Path, spec: Spec) -> None:
    """The model with its input fixed to 1x3xHxW. (``trtforge reshape`` refuses the Paddle exports:
    their value_info entries lack shapes, which onnx's checker rejects; this edits the input only.)"""
    import onnx

    model = onnx.load(str(source))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, (1, 3, *spec.size)):
        dim.Clear()
        dim.dim_value = value
    del model.graph.value_info[:]
    onnx.save(model, str(out))


def photos() -> list[Path]:
    import matplotlib
    import sklearn

    return [
        Path(sklearn.__file__).parent / "datasets/images/china.jpg",
        Path(sklearn.__file__).parent / "datasets/images/flower.jpg",
        Path(matplotlib.__file__).parent / "mpl-data/sample_data/grace_hopper.jpg",
    ]


def crops(spec: Spec, n: int, seed: int) -> np.ndarray:
    """``n`` seeded random crops (30-100% of the short side, any position, flipped or not), NCHW."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = [Image.open(p).convert("RGB") for p in photos()]
    h, w = spec.size
    out = np.empty((n, 3, h, w), np.float32)
    for i in range(n):
        img = images[int(rng.integers(len(images)))]
        side = int(min(img.size) * rng.uniform(0.3, 1.0))
        cw, ch = (side, max(1, side * h // w)) if w >= h else (max(1, side * w // h), side)
        x0, y0 = int(rng.integers(0, img.size[0] - cw + 1)), int(rng.integers(0, img.size[1] - ch + 1))
        crop = img.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.BILINEAR)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        if spec.task != "detect":
            crop = with_text(crop, rng)
        arr = (np.asarray(crop, np.float32) / 255 - np.array(spec.mean, np.float32)) / np.array(spec.std, np.float32)
        out[i] = arr.transpose(2, 0, 1)
    return out


WORDS = [
    "invoice",
    "TOTAL 42.50",
    "trtforge",
    "Hello world",
    "INT8",
    "2026-12-04",
    "Exit 3",
    "No. 17",
    "quantize",
    "Main Street",
    "OPEN",
    "tel 555 0100",
]


def with_text(img, rng: np.random.Generator):  # PIL.Image -> PIL.Image
    """Text for the OCR models: 1-4 random words, light or dark boxes, various sizes (PIL's font)."""
    from PIL import ImageDraw, ImageFont

    img = img.copy()
    draw = ImageDraw.Draw(img)
    w, h = img.size
    for _ in range(int(rng.integers(1, 5))):
        size = int(rng.integers(max(8, h // 6), max(9, h // 2)))
        font = ImageFont.load_default(size=size)
        text = WORDS[int(rng.integers(len(WORDS)))]
        x, y = int(rng.integers(0, max(1, w // 2))), int(rng.integers(0, max(1, h - size)))
        light = rng.random() < 0.5
        box = draw.textbbox((x, y), text, font=font)
        draw.rectangle(box, fill=(245, 245, 235) if light else (20, 20, 30))
        draw.text((x, y), text, font=font, fill=(10, 10, 10) if light else (240, 240, 240))
    return img


def session(path: Path, threads: int = 1):  # -> ort.InferenceSession
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def outputs(path: Path, x: np.ndarray) -> np.ndarray:
    s = session(path, threads=0)
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])


def latency_ms(path: Path, x: np.ndarray, runs: int) -> float:
    s = session(path, threads=1)
    name = s.get_inputs()[0].name
    for _ in range(3):
        s.run(None, {name: x[:1]})
    times = []
    for i in range(runs):
        started = time.perf_counter()
        s.run(None, {name: x[i % len(x) : i % len(x) + 1]})
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def field_errors(ref: np.ndarray, got: np.ndarray) -> tuple[float, str]:
    """Worst |got - ref| / range, per field along axis 1 for rank >= 3 (each field its own range)."""
    if ref.ndim < 3:
        return float(np.max(np.abs(got - ref)) / max(float(np.ptp(ref)), 1e-12)), "whole"
    fields = ref.shape[1]
    r, g = ref.reshape(len(ref), fields, -1), got.reshape(len(got), fields, -1)
    spans = np.maximum(np.ptp(r, axis=(0, 2)), 1e-12)
    small = spans[spans < 0.1 * spans.max()]  # as trtforge.precision.check.field_floor
    spans = np.maximum(spans, 0.05 * (small.max() if small.size else spans.max()))
    rel = np.max(np.abs(g - r), axis=(0, 2)) / spans
    return float(rel.max()), f"field {int(rel.argmax())}"


def cosines(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    a, b = ref.reshape(len(ref), -1).astype(np.float64), got.reshape(len(got), -1).astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    cos = np.where((na > 0) & (nb > 0), np.sum(a * b, axis=1) / np.maximum(na * nb, 1e-300), 0.0)
    return np.where((na == 0) & (nb == 0), 1.0, cos)


def task_metric(spec: Spec, ref: np.ndarray, got: np.ndarray) -> float:
    if spec.task == "classify":
        return float(np.mean(ref.argmax(1) == got.argmax(1)))
    if spec.task == "mask":
        a, b = ref > 0.3, got > 0.3
        inter, union = np.logical_and(a, b).sum(axis=(1, 2, 3)), np.logical_or(a, b).sum(axis=(1, 2, 3))
        return float(np.mean(np.where(union > 0, inter / np.maximum(union, 1), 1.0)))
    agree = []
    for r, g in zip(ref, got):  # [4 + classes, anchors]
        k = np.unravel_index(np.argmax(r[4:]), r[4:].shape)
        kg = np.unravel_index(np.argmax(g[4:]), g[4:].shape)
        agree.append(k[0] == kg[0] and _iou(r[:4, k[1]], g[:4, kg[1]]) > 0.5)
    return float(np.mean(agree))


def _iou(a: np.ndarray, b: np.ndarray) -> float:  # cx, cy, w, h
    ax0, ay0, ax1, ay1 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx0, by0, bx1, by1 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def trtforge_int8(fp32: Path, calib: Path, out: Path, num: int, method: str) -> tuple[Path, float, dict]:
    import trtforge
    from trtforge.config import BuildConfig, CalibMethod, CalibrationConfig

    extra = {"allow_inaccurate": True} if "allow_inaccurate" in BuildConfig.__dataclass_fields__ else {}
    started = time.perf_counter()
    manifest = trtforge.build(
        fp32,
        out,
        BuildConfig(
            precision="int8",
            calibration=CalibrationConfig(data=calib, num=num, method=CalibMethod.parse(method)),
            **extra,
        ),
    )
    check = (manifest.calibration or {}).get("check", {})
    return out, time.perf_counter() - started, {"self_check_passed": check.get("passed") if check else None}


MODELOPT = """
import sys, numpy as np
from modelopt.onnx.quantization import quantize
quantize(onnx_path=sys.argv[1], quantize_mode="int8", calibration_data=np.load(sys.argv[2])[sys.argv[4]],
         output_path=sys.argv[3], calibration_eps=["cpu"])
"""


def modelopt_int8(python: str, fp32: Path, calib: Path, name: str, out: Path) -> tuple[Path | None, float, str]:
    started = time.perf_counter()
    proc = subprocess.run(
        [python, "-c", MODELOPT, str(fp32), str(calib), str(out), name], check=False, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0 or not out.exists():
        return None, seconds, (proc.stderr.strip().splitlines() or ["failed"])[-1][:200]
    return out, seconds, ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="yolov8n,ppocr_det,ppocr_cls")
    ap.add_argument("--calib", type=int, default=64, help="calibration crops (default 64)")
    ap.add_argument("--held", type=int, default=32, help="held-out crops measured (default 32)")
    ap.add_argument("--runs", type=int, default=30, help="timed runs per model for latency (default 30)")
    ap.add_argument("--methods", default="entropy", help="trtforge --calib-method(s) to build (default entropy)")
    ap.add_argument("--label", default="trtforge", help="name of the trtforge checkout on PYTHONPATH")
    ap.add_argument("--modelopt", metavar="PYTHON", help="python of an environment with nvidia-modelopt[onnx]")
    ap.add_argument("--json", metavar="FILE", help="append the rows as JSON lines")
    args = ap.parse_args()

    import onnxruntime

    import trtforge

    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, onnxruntime {onnxruntime.__version__}, {args.label} from "
        f"{Path(trtforge.__file__).parent}; calib {args.calib} crops, held-out {args.held} crops"
    )
    print("| model | tool | cosine mean / worst | max err / range (where) | task metric | latency ms | build s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    with tempfile.TemporaryDirectory(prefix="int8-fidelity-") as tmp:
        work = Path(tmp)
        for key in args.models.split(","):
            spec = SPECS[key]
            fp32 = work / f"{key}.onnx"
            fixed(MODELS / spec.path, fp32, spec)
            calib_x, held_x = crops(spec, args.calib, seed=0), crops(spec, args.held, seed=1)
            calib = work / f"{key}-calib.npz"
            np.savez(calib, **{spec.input: calib_x})
            ref = outputs(fp32, held_x)
            candidates: list[tuple[str, Path | None, float, str]] = [("fp32", fp32, 0.0, "")]
            for method in args.methods.split(","):
                started = time.perf_counter()
                try:
                    path, seconds, facts = trtforge_int8(fp32, calib, work / f"{key}-{method}.onnx", args.calib, method)
                except Exception as exc:  # the old checkout's opset bug: report it as a row
                    candidates.append(
                        (
                            f"{args.label} int8 {method}",
                            None,
                            time.perf_counter() - started,
                            str(exc).splitlines()[0][:160],
                        )
                    )
                    continue
                candidates.append(
                    (f"{args.label} int8 {method}", path, seconds, f"self-check passed: {facts['self_check_passed']}")
                )
            if args.modelopt:
                path2, seconds2, err = modelopt_int8(
                    args.modelopt, fp32, calib, spec.input, work / f"{key}-modelopt.onnx"
                )
                candidates.append(("modelopt int8", path2, seconds2, err))
            for tool, path, seconds, note in candidates:
                if path is None:
                    print(f"| {key} | {tool} | failed: {note} | | | | {seconds:.1f} |")
                    continue
                got = ref if tool == "fp32" else outputs(path, held_x)
                cos = cosines(ref, got)
                err, where = field_errors(ref, got)
                metric = task_metric(spec, ref, got)
                ms = latency_ms(path, held_x, args.runs)
                row = {
                    "model": key,
                    "tool": tool,
                    "cos_mean": float(cos.mean()),
                    "cos_worst": float(cos.min()),
                    "max_err": err,
                    "where": where,
                    "task": metric,
                    "latency_ms": ms,
                    "build_s": seconds,
                    "note": note,
                }
                rows.append(row)
                print(
                    f"| {key} | {tool} | {cos.mean():.4f} / {cos.min():.4f} | {err:.1%} ({where}) | "
                    f"{metric:.1%} | {ms:.2f} | {seconds:.1f} |",
                    flush=True,
                )
    if args.json:
        with open(args.json, "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    print(
        "task metric: yolov8n top detection class+box agree (IoU>0.5); ppocr_det text-mask IoU at 0.3; "
        "ppocr_cls top-1 agreement. All against FP32 on the held-out crops."
    )


if __name__ == "__main__":
    sys.exit(main())
