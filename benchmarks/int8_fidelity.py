"""INT8 fidelity on trained models: trtforge's INT8 (per method) vs NNCF's and ModelOpt's ONNX INT8, against FP32.

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
    ... --nncf /work/cache/venvs/nncf/bin/python                            # also NNCF's ONNX INT8
    ... --methods mse,mse-nobc,entropy-nobc   # a method, "-nobc": without bias correction
    ... --methods mse,mse-noeq                # "-noeq": without channel equalisation
    ... --methods mse-qout,mse               # before / after the layout-path rule (graph outputs' carriers float)

More trained models (``--models face_detect,hand_landmark,fer_emotion``): MediaPipe's face detector
and hand landmarker (TFLite) and fer's Keras emotion classifier, converted once by ``trtforge
convert`` into ``--converted`` (NHWC inputs; grayscale for fer). Their task metrics: the face
detector's top-20 anchors by score shared with FP32; the hand's 21 landmarks, largest error in
pixels of 224 (lower is better); fer's top-1 agreement.

``--models resnet50_random`` is the issue's first case: Keras ResNet-50 with random weights
(``keras.utils.set_random_seed(0); keras.applications.ResNet50(weights=None)``, saved once as
/work/cache/models/resnet50_random/resnet50.keras). Its softmax is nearly uniform, so the task
column is the issue's centred-logit cosine (log of the softmax, centred per sample) and top-1.

NNCF (``pip install nncf onnxruntime``) quantizes the ONNX model itself (its ONNX backend,
``nncf.quantize(model, nncf.Dataset(...))``, defaults: symmetric activations, fast bias correction),
giving a Q/DQ ONNX that ONNX Runtime CPU runs, like trtforge's. NNCF and ModelOpt run in their own
environments, never trtforge's. Latency: every candidate of a model is timed in alternating
rounds (each round runs each one ``--runs / 10`` times), so load changes hit all alike.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODELS = Path(os.environ.get("TRTFORGE_MODEL_CACHE", "/work/cache/models"))
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Spec:
    name: str
    path: str  # under MODELS; a non-ONNX source is converted first
    input: str
    size: tuple[int, int]  # H, W
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    task: str
    layout: str = "nchw"
    gray: bool = False
    output: str = ""  # the output the cosine and error columns read (default: the first)


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
    "face_detect": Spec(
        "face_detect",
        "face_detect/face_detection_short_range.tflite",
        "input",
        (128, 128),
        (0.5, 0.5, 0.5),
        (0.5, 0.5, 0.5),
        "anchors",
        "nhwc",
        output="classificators",
    ),
    "hand_landmark": Spec(
        "hand_landmark",
        "hand_landmark/hand_landmark_lite.tflite",
        "input_1",
        (224, 224),
        (0, 0, 0),
        (1, 1, 1),
        "landmarks",
        "nhwc",
        output="Identity",
    ),
    "fer_emotion": Spec(
        "fer_emotion",
        "fer_emotion/emotion_model.hdf5",
        "input_1",
        (64, 64),
        (0.5,) * 3,
        (0.5,) * 3,
        "classify",
        "nhwc",
        True,
    ),
    # The issue's own first case: Keras ResNet-50 with random weights (keras.applications.ResNet50(weights=None)
    # after keras.utils.set_random_seed(0), saved once as .keras; nothing trained can be downloaded here).
    # Random weights make logits near-ties, so top-1 agreement is a harsh, noisy metric on it.
    "resnet50_random": Spec(
        "resnet50_random",
        "resnet50_random/resnet50.keras",
        "input_layer",
        (224, 224),
        (0.5,) * 3,
        (0.5,) * 3,
        "logits",
        "nhwc",
    ),
    # The same model fed as keras.applications.resnet50.preprocess_input feeds it ("caffe": 0..255 minus the
    # ImageNet channel means, no scaling): inputs of +-128, so the logits spread and top-1 means something.
    "resnet50_caffe": Spec(
        "resnet50_caffe",
        "resnet50_random/resnet50.keras",
        "input_layer",
        (224, 224),
        (0.485, 0.456, 0.406),
        (1 / 255,) * 3,
        "logits",
        "nhwc",
    ),
}


def onnx_source(spec: Spec, converted: Path) -> Path:
    """The model as ONNX: the cached file, or ``trtforge convert`` of it (once, into ``converted``)."""
    source = MODELS / spec.path
    if source.suffix == ".onnx":
        return source
    out = converted / f"{spec.name}.onnx"
    if not out.exists():
        converted.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "trtforge", "convert", str(source), "-o", str(out)], check=True)
    return out


def fixed(source: Path, out: Path, spec: Spec) -> None:
    """The model with its input fixed to batch 1 at ``spec.size``. (``trtforge reshape`` refuses the Paddle
    exports: their value_info entries lack shapes, which onnx's checker rejects; this edits the input only.)"""
    import onnx

    model = onnx.load(str(source))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    channels = 1 if spec.gray else 3
    shape = (1, channels, *spec.size) if spec.layout == "nchw" else (1, *spec.size, channels)
    for dim, value in zip(dims, shape):
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
    out = np.empty((n, 1 if spec.gray else 3, h, w), np.float32)
    for i in range(n):
        img = images[int(rng.integers(len(images)))]
        side = int(min(img.size) * rng.uniform(0.3, 1.0))
        cw, ch = (side, max(1, side * h // w)) if w >= h else (max(1, side * w // h), side)
        x0, y0 = int(rng.integers(0, img.size[0] - cw + 1)), int(rng.integers(0, img.size[1] - ch + 1))
        crop = img.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.BILINEAR)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        if spec.name.startswith("ppocr"):
            crop = with_text(crop, rng)
        if spec.gray:
            crop = crop.convert("L").convert("RGB")
        arr = (np.asarray(crop, np.float32) / 255 - np.array(spec.mean, np.float32)) / np.array(spec.std, np.float32)
        out[i] = arr.transpose(2, 0, 1)[:1] if spec.gray else arr.transpose(2, 0, 1)
    return out if spec.layout == "nchw" else np.ascontiguousarray(out.transpose(0, 2, 3, 1))


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


UNFUSED: set[Path] = set()  # Q/DQ models ONNX Runtime's fusions cannot run: measured with them off


def session(path: Path, threads: int = 1):  # -> ort.InferenceSession
    """An ONNX Runtime CPU session; for a model in UNFUSED, without graph optimizations (so Q/DQ stays fake-quant:
    NNCF's Q/DQ of a depthwise Conv gets a per-channel activation zero point QLinearConv refuses)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 4
    if path in UNFUSED:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def runnable(path: Path, x: np.ndarray) -> str:
    """ "" when ONNX Runtime runs ``path`` as is; else it goes in UNFUSED and the note says why."""
    try:
        session(path).run(None, {session(path).get_inputs()[0].name: x[:1]})
        return ""
    except Exception as exc:
        UNFUSED.add(path)
        why = str(exc).split("Status Message:")[-1][-90:].strip()
        return f"ONNX Runtime's fused kernels refuse it ({why}): run unfused"


def outputs(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    s = session(path, threads=0)
    name, names = s.get_inputs()[0].name, [o.name for o in s.get_outputs()]
    runs = [s.run(None, {name: x[i : i + 1]}) for i in range(len(x))]
    return {n: np.concatenate([r[k] for r in runs]) for k, n in enumerate(names)}


def latencies_ms(paths: dict[str, Path], x: np.ndarray, runs: int, rounds: int = 10) -> dict[str, float]:
    """Median ms per candidate, timed in ``rounds`` alternating rounds (batch 1, one thread)."""
    sessions = {tool: session(path, threads=1) for tool, path in paths.items()}
    feeds = {tool: s.get_inputs()[0].name for tool, s in sessions.items()}
    for tool, s in sessions.items():
        for _ in range(3):
            s.run(None, {feeds[tool]: x[:1]})
    times: dict[str, list[float]] = {tool: [] for tool in sessions}
    for r in range(rounds):
        for tool, s in sessions.items():
            for i in range(max(1, runs // rounds)):
                j = (r * runs + i) % len(x)
                started = time.perf_counter()
                s.run(None, {feeds[tool]: x[j : j + 1]})
                times[tool].append((time.perf_counter() - started) * 1000)
    return {tool: statistics.median(t) for tool, t in times.items()}


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


def cosines(ref: np.ndarray, got: np.ndarray, centre: bool = False) -> np.ndarray:
    a, b = ref.reshape(len(ref), -1).astype(np.float64), got.reshape(len(got), -1).astype(np.float64)
    if centre:
        a, b = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    cos = np.where((na > 0) & (nb > 0), np.sum(a * b, axis=1) / np.maximum(na * nb, 1e-300), 0.0)
    return np.where((na == 0) & (nb == 0), 1.0, cos)


def task_metric(spec: Spec, ref: np.ndarray, got: np.ndarray) -> tuple[float, str]:
    """The task metric on the main output, as (value, text); only "landmarks" is lower-is-better."""
    if spec.task == "classify":
        value = float(np.mean(ref.argmax(1) == got.argmax(1)))
    elif spec.task == "logits":  # softmax output: the centred-logit cosine, logits = log p up to a constant
        cos = cosines(*(np.log(np.maximum(x.astype(np.float64), 1e-30)) for x in (ref, got)), centre=True)
        top1 = float(np.mean(ref.argmax(1) == got.argmax(1)))
        return float(cos.mean()), f"logit cos {cos.mean():.4f} / {cos.min():.4f}, top-1 {top1:.1%}"
    elif spec.task == "mask":
        a, b = ref > 0.3, got > 0.3
        inter, union = np.logical_and(a, b).sum(axis=(1, 2, 3)), np.logical_or(a, b).sum(axis=(1, 2, 3))
        value = float(np.mean(np.where(union > 0, inter / np.maximum(union, 1), 1.0)))
    elif spec.task == "anchors":  # share of FP32's 20 best-scored anchors among the INT8 model's 20 best
        a, b = ref.reshape(len(ref), -1), got.reshape(len(got), -1)
        value = float(np.mean([len(set(np.argsort(-p)[:20]) & set(np.argsort(-q)[:20])) / 20 for p, q in zip(a, b)]))
    elif spec.task == "landmarks":  # the largest landmark error in pixels, mean over samples
        value = float(np.mean(np.abs(ref - got).max(axis=1)))
        return value, f"{value:.2f} px"
    else:
        value = _top_detection(ref, got)
    return value, f"{value:.1%}"


def _top_detection(ref: np.ndarray, got: np.ndarray) -> float:
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
    """``method``: a --calib-method, with ``-nobc`` appended for no bias correction, ``-noemp`` for the
    weight-error correction only (no measured one), ``-noeq`` for no channel equalisation, ``-xOp+Op`` for
    those op types left float, ``-qout`` for the placement before the layout-path rule (Q/DQ kept on tensors
    that Transpose/Reshape/Concat carry to a graph output) and before baking float-output ops' weights: both
    functions are swapped for no-ops during this build."""
    import trtforge
    from trtforge.config import BuildConfig, CalibMethod, CalibrationConfig

    extra = {"allow_inaccurate": True} if "allow_inaccurate" in BuildConfig.__dataclass_fields__ else {}
    name, _, suffix = method.partition("-")
    corrected = (
        {"bias_correction": suffix != "nobc"} if "bias_correction" in CalibrationConfig.__dataclass_fields__ else {}
    )
    if "empirical_bias_correction" in CalibrationConfig.__dataclass_fields__:
        corrected["empirical_bias_correction"] = suffix not in ("nobc", "noemp")
    if "equalize" in CalibrationConfig.__dataclass_fields__:
        corrected["equalize"] = suffix != "noeq"
    if suffix.startswith("x"):  # "-xAdd+Concat": those op types left float (the ones the model has)
        import onnx

        present = {n.op_type for n in onnx.load(str(fp32)).graph.node}
        extra["exclude_op_types"] = tuple(t for t in suffix[1:].split("+") if t in present)
    started = time.perf_counter()
    with _output_paths_quantized(suffix == "qout"):
        manifest = trtforge.build(
            fp32,
            out,
            BuildConfig(
                precision="int8",
                calibration=CalibrationConfig(data=calib, num=num, method=CalibMethod.parse(name), **corrected),
                **extra,
            ),
        )
    check = (manifest.calibration or {}).get("check", {})
    return out, time.perf_counter() - started, {"self_check_passed": check.get("passed") if check else None}


@contextlib.contextmanager
def _output_paths_quantized(wanted: bool) -> Iterator[None]:
    """While ``wanted``: trtforge's placement as before the layout-path rule and the baked float-op weights
    (a checkout without them is left as it is)."""
    from trtforge.precision import quantize

    rule, bake = getattr(quantize, "_keep_float_output_paths", None), getattr(quantize, "bake_float_weights", None)
    if not wanted or rule is None or bake is None:
        yield
        return
    quantize._keep_float_output_paths = lambda model, original: None  # type: ignore[attr-defined]
    quantize.bake_float_weights = lambda model, flavour: []  # type: ignore[attr-defined]
    try:
        yield
    finally:
        quantize._keep_float_output_paths, quantize.bake_float_weights = rule, bake  # type: ignore[attr-defined]


MODELOPT = """
import sys, numpy as np
from modelopt.onnx.quantization import quantize
quantize(onnx_path=sys.argv[1], quantize_mode="int8", calibration_data=np.load(sys.argv[2])[sys.argv[4]],
         output_path=sys.argv[3], calibration_eps=["cpu"])
"""

NNCF = """
import sys, numpy as np, onnx, nncf
x = np.load(sys.argv[2])[sys.argv[4]]
dataset = nncf.Dataset([{sys.argv[4]: x[i : i + 1]} for i in range(len(x))])
onnx.save(nncf.quantize(onnx.load(sys.argv[1]), dataset, subset_size=len(x)), sys.argv[3])
"""


def peer_int8(
    script: str, python: str, fp32: Path, calib: Path, name: str, out: Path
) -> tuple[Path | None, float, str]:
    """A peer's INT8 of ``fp32`` (its own venv's ``python`` runs ``script``), seconds, and why it failed."""
    started = time.perf_counter()
    proc = subprocess.run(
        [python, "-c", script, str(fp32), str(calib), str(out), name], check=False, capture_output=True, text=True
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
    ap.add_argument("--nncf", metavar="PYTHON", help="python of an environment with nncf and onnxruntime")
    ap.add_argument("--converted", type=Path, default=Path("/work/cache/fidelity"), help="ONNX of non-ONNX sources")
    ap.add_argument("--json", metavar="FILE", help="append the rows as JSON lines")
    args = ap.parse_args()

    import onnxruntime

    import trtforge

    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, onnxruntime {onnxruntime.__version__}, "
        f"{args.label} from {Path(trtforge.__file__).parent}; calib {args.calib} crops, held-out {args.held} crops"
    )
    print("| model | tool | cosine mean / worst | max err / range (where) | task metric | latency ms | build s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    with tempfile.TemporaryDirectory(prefix="int8-fidelity-") as tmp:
        work = Path(tmp)
        for key in args.models.split(","):
            rows += measure(SPECS[key], work, args)
    if args.json:
        with open(args.json, "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    print(
        "task metric: yolov8n top detection class+box agree (IoU>0.5); ppocr_det text-mask IoU at 0.3; "
        "ppocr_cls, fer_emotion top-1 agreement; face_detect top-20 anchors shared; hand_landmark largest "
        "landmark error (px of 224, lower is better); resnet50_random centred-logit cosine and top-1. All against "
        f"FP32 on the held-out crops. Load now "
        f"{os.getloadavg()[0]:.2f}."
    )


def candidates(spec: Spec, fp32: Path, calib: Path, work: Path, args: argparse.Namespace) -> list[tuple]:
    """``(tool, path or None, build seconds, note)`` for FP32, each trtforge method and each peer."""
    calib_sample = np.load(calib)[spec.input][:1]
    found: list[tuple[str, Path | None, float, str]] = [("fp32", fp32, 0.0, "")]
    for method in args.methods.split(","):
        started = time.perf_counter()
        try:
            path, seconds, facts = trtforge_int8(fp32, calib, work / f"{spec.name}-{method}.onnx", args.calib, method)
        except Exception as exc:  # an old checkout's bug: report it as a row
            found.append((f"{args.label} int8 {method}", None, time.perf_counter() - started, str(exc)[:160]))
            continue
        found.append((f"{args.label} int8 {method}", path, seconds, f"self-check passed: {facts['self_check_passed']}"))
    for peer, python, script in (("nncf", args.nncf, NNCF), ("modelopt", args.modelopt, MODELOPT)):
        if python:
            out = work / f"{spec.name}-{peer}.onnx"
            path, seconds, note = peer_int8(script, python, fp32, calib, spec.input, out)
            found.append((f"{peer} int8", path, seconds, note or (runnable(path, calib_sample) if path else "")))
    return found


def measure(spec: Spec, work: Path, args: argparse.Namespace) -> list[dict]:
    fp32 = work / f"{spec.name}.onnx"
    fixed(onnx_source(spec, args.converted), fp32, spec)
    calib_x, held_x = crops(spec, args.calib, seed=0), crops(spec, args.held, seed=1)
    calib = work / f"{spec.name}-calib.npz"
    np.savez(calib, **{spec.input: calib_x})
    reference = outputs(fp32, held_x)
    main_output = spec.output or next(iter(reference))
    ref = reference[main_output]
    found = candidates(spec, fp32, calib, work, args)
    built = {tool: path for tool, path, _, _ in found if path is not None}
    timings = latencies_ms(built, held_x, args.runs)
    rows = []
    for tool, path, seconds, note in found:
        if path is None:
            print(f"| {spec.name} | {tool} | failed: {note} | | | | {seconds:.1f} |")
            continue
        got = ref if tool == "fp32" else outputs(path, held_x)[main_output]
        cos = cosines(ref, got)
        err, where = field_errors(ref, got)
        metric, text = task_metric(spec, ref, got)
        rows.append(
            {
                "model": spec.name,
                "tool": tool,
                "cos_mean": float(cos.mean()),
                "cos_worst": float(cos.min()),
                "max_err": err,
                "where": where,
                "task": metric,
                "latency_ms": timings[tool],
                "build_s": seconds,
                "note": note,
            }
        )
        print(
            f"| {spec.name} | {tool}{' (unfused)' if path in UNFUSED else ''} | {cos.mean():.4f} / {cos.min():.4f} | "
            f"{err:.1%} ({where}) | {text} | {timings[tool]:.2f} | {seconds:.1f} |",
            flush=True,
        )
        if path in UNFUSED:
            print(f"<!-- {spec.name} {tool}: {note} -->")
    return rows


if __name__ == "__main__":
    sys.exit(main())
