"""Every trtforge stage on every model of the real-model corpus, with task-level checks.

For each model (benchmarks/realmodels/fetch.py fetches them): convert (sources that are not
ONNX), `reshape --batch 1` as a new user types it, reshape with `--shapes` where other dims are
dynamic, build FP32/FP16/INT8 on ONNX Runtime CPU (INT8: minmax ranges from 8 synthetic samples, to keep the
corpus run short),
a short bench, run, compare (FP16 engine against the ONNX model) and deploy.  Every stage is the
CLI in a subprocess; a cell is `ok`, `x2`/`x1` (exit code; the line is listed under the table),
`TB` (a traceback: a bug) or `-` (skipped: an earlier stage failed).  The task columns compare
the FP16 and INT8 engines' outputs with the FP32 engine's on 4 synthetic inputs: top-1 agreement
(classifiers), overlap of the 20 best-scored anchors and their box IoU (detectors), mask IoU
(segmenters, OCR text mask), landmark error in pixels, speech-probability difference (VAD).

Inputs are synthetic (no image data ships with the wheels): shapes and text drawn with PIL on
a smooth random background; OCR models get rendered text.  So the task columns measure agreement
between precisions, not accuracy against ground truth.

    python benchmarks/realmodels/run.py [--only NAME ...] [--work DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from fetch import MODELS, Model, model_path  # noqa: E402

Feeds = dict[str, np.ndarray]
Check = Callable[[Feeds, Feeds], str]


# ---------------------------------------------------------------- synthetic inputs
def scene(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """An HxWx3 uint8 picture: a smooth random background with a few filled shapes."""
    from PIL import Image, ImageDraw

    low = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    image = Image.fromarray(low).resize((w, h), Image.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w - 8)), int(rng.integers(0, h - 8))
        x1, y1 = x0 + int(rng.integers(8, max(9, w // 2))), y0 + int(rng.integers(8, max(9, h // 2)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    return np.asarray(image)


def text_image(h: int, w: int, rng: np.random.Generator, lines: int = 6) -> np.ndarray:
    """An HxWx3 uint8 page of dark text lines on a light background."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (w, h), tuple(int(c) for c in rng.integers(200, 256, 3)))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(10, h // (2 * lines + 1)))
    words = ["trtforge", "engine", "batch", "ONNX", "2026", "latency", "FP16", "model", "quantize"]
    for i in range(lines):
        text = " ".join(rng.choice(words, size=3))
        draw.text(
            (int(rng.integers(0, max(1, w // 4))), int((i + 0.3) * h / lines)),
            text,
            fill=tuple(int(c) for c in rng.integers(0, 80, 3)),
            font=font,
        )
    return np.asarray(image)


def nchw(images: np.ndarray, mean: float | tuple[float, ...], std: float | tuple[float, ...]) -> np.ndarray:
    x = (images.astype(np.float32) / 255.0 - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def nhwc(images: np.ndarray, low: float, high: float) -> np.ndarray:
    return (images.astype(np.float32) / 255.0 * (high - low) + low).astype(np.float32)


def gray(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32).mean(axis=-1, keepdims=True)


def pictures(n: int, h: int, w: int, rng: np.random.Generator, text: bool = False) -> np.ndarray:
    make = text_image if text else scene
    return np.stack([make(h, w, rng) for _ in range(n)])


def vad_feeds(n: int, rng: np.random.Generator) -> Feeds:
    t = np.arange(512) / 16000.0
    tones = [np.sin(2 * np.pi * rng.uniform(100, 400) * t) * rng.uniform(0, 0.5) for _ in range(n)]
    audio = np.stack(tones).astype(np.float32) + rng.normal(0, 0.02, (n, 512)).astype(np.float32)
    # state [2, batch, 128] is batched along axis 1; sr is a scalar and not batched.
    state = rng.normal(0, 0.1, (2, n, 128)).astype(np.float32)
    return {"input": audio, "state": state, "sr": np.array(16000, np.int64)}


# ---------------------------------------------------------------- task checks
def _top1(ref: Feeds, got: Feeds) -> str:
    name = next(iter(ref))
    a, b = ref[name].reshape(len(ref[name]), -1), got[name].reshape(len(got[name]), -1)
    return f"top-1 {100 * float(np.mean(a.argmax(1) == b.argmax(1))):.0f}%"


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of matching rows of two (N, 4) arrays of x0, y0, x1, y1."""
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    area = lambda x: np.abs((x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1]))  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def _anchors(scores_ref: np.ndarray, scores_got: np.ndarray, k: int = 20) -> tuple[float, np.ndarray]:
    """Per sample: share of the reference's k best anchors that are also the engine's k best."""
    shares, best = [], []
    for a, b in zip(scores_ref, scores_got):
        top_a, top_b = np.argsort(-a)[:k], np.argsort(-b)[:k]
        shares.append(len(set(top_a) & set(top_b)) / k)
        best.append(top_a)
    return float(np.mean(shares)), np.stack(best)


def _yolo(ref: Feeds, got: Feeds) -> str:
    a, b = next(iter(ref.values())), next(iter(got.values()))  # N x (4 + classes) x anchors
    share, best = _anchors(a[:, 4:].max(1), b[:, 4:].max(1))

    def xyxy(x: np.ndarray, i: int) -> np.ndarray:
        c = x[i, :4, best[i]]  # k x 4: cx, cy, w, h
        return np.stack([c[:, 0] - c[:, 2] / 2, c[:, 1] - c[:, 3] / 2, c[:, 0] + c[:, 2] / 2, c[:, 1] + c[:, 3] / 2], 1)

    iou = np.mean([_box_iou(xyxy(a, i), xyxy(b, i)).mean() for i in range(len(a))])
    return f"top20 {100 * share:.0f}%, IoU {iou:.3f}"


def _picodet(ref: Feeds, got: Feeds) -> str:
    names = [n for n, v in ref.items() if v.shape[-1] == 10]
    a = np.concatenate([ref[n].max(-1) for n in names], axis=1)
    b = np.concatenate([got[n].max(-1) for n in names], axis=1)
    share, _ = _anchors(a, b)
    return f"top20 {100 * share:.0f}%, score err {float(np.abs(a - b).max()):.3f}"


def _face(ref: Feeds, got: Feeds) -> str:
    boxes = next(n for n, v in ref.items() if v.shape[-1] == 16)
    scores = next(n for n, v in ref.items() if v.shape[-1] == 1)
    share, best = _anchors(ref[scores][..., 0], got[scores][..., 0])
    err = max(float(np.abs(ref[boxes][i, best[i], :4] - got[boxes][i, best[i], :4]).max()) for i in range(len(best)))
    return f"top20 {100 * share:.0f}%, box err {err:.2f} px"


def _mask(threshold: float) -> Check:
    def check(ref: Feeds, got: Feeds) -> str:
        a, b = next(iter(ref.values())) > threshold, next(iter(got.values())) > threshold
        union = np.logical_or(a, b).sum()
        iou = 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
        return f"mask IoU {iou:.3f} ({100 * a.mean():.1f}% on)"

    return check


def _landmarks(size: int) -> Check:
    def check(ref: Feeds, got: Feeds) -> str:
        name = max(ref, key=lambda n: ref[n][0].size)  # the landmark vector
        err = np.abs(ref[name] - got[name]).max()
        return f"max err {float(err):.2f} px of {size}"

    return check


def _vad(ref: Feeds, got: Feeds) -> str:
    a, b = ref["output"].ravel(), got["output"].ravel()
    return f"p err {float(np.abs(a - b).max()):.4f}, same {100 * float(np.mean((a > 0.5) == (b > 0.5))):.0f}%"


# ---------------------------------------------------------------- the plan per model
@dataclass(frozen=True)
class Plan:
    feeds: Callable[[int, np.random.Generator], Feeds]
    check: Check
    shapes: str = ""  # reshape --shapes for dims other than batch
    axes: dict[str, int | None] = field(default_factory=dict)  # batch axis per input (default 0)
    convert: tuple[str, ...] = ()  # extra convert options
    bench: tuple[str, ...] = ()  # extra bench options (sizes of dims left dynamic)
    fixed: dict[str, np.ndarray] = field(default_factory=dict)  # bench --inputs: values random ones must not take


IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
PLANS: dict[str, Plan] = {
    "yolov8n_det": Plan(
        lambda n, r: {"images": nchw(pictures(n, 320, 320, r), 0.0, 1.0)}, _yolo, shapes="images:1x3x320x320"
    ),
    "picodet_layout": Plan(lambda n, r: {"image": nchw(pictures(n, 800, 608, r, text=True), *IMAGENET)}, _picodet),
    "ppocr_det": Plan(
        lambda n, r: {"x": nchw(pictures(n, 320, 320, r, text=True), *IMAGENET)}, _mask(0.3), shapes="x:1x3x320x320"
    ),
    "ppocr_cls": Plan(
        lambda n, r: {"x": nchw(pictures(n, 48, 192, r, text=True)[:, :, :, :], 0.5, 0.5)}, _top1, shapes="x:1x3x48x192"
    ),
    # Fixing input to 1x512 makes ONNX Runtime's inference of the 8 kHz If branch fail: batch 1 only.
    "silero_vad": Plan(
        vad_feeds,
        _vad,
        axes={"state": 1, "sr": None},
        bench=("--shapes", "input:1x512"),
        fixed={"sr": np.array(16000, np.int64)},
    ),
    "face_detect": Plan(lambda n, r: {"input": nhwc(pictures(n, 128, 128, r), -1, 1)}, _face),
    "hand_landmark": Plan(lambda n, r: {"input_1": nhwc(pictures(n, 224, 224, r), 0, 1)}, _landmarks(224)),
    "iris_landmark": Plan(lambda n, r: {"input_1": nhwc(pictures(n, 64, 64, r), 0, 1)}, _landmarks(64)),
    "selfie_segment": Plan(lambda n, r: {"input_1": nhwc(pictures(n, 256, 256, r), 0, 1)}, _mask(0.5)),
    "fer_emotion": Plan(lambda n, r: {"input_1": gray(pictures(n, 64, 64, r)) / 127.5 - 1}, _top1),
    "micro_wakeword": Plan(
        lambda n, r: {"serving_default_input_audio:0": r.integers(-128, 127, (n, 3, 40)).astype(np.int8)}, _top1
    ),
}


# ---------------------------------------------------------------- running stages
@dataclass
class Cell:
    status: str = "-"
    seconds: float = 0.0
    line: str = ""


def trtforge(*args: str, timeout: float = 900) -> Cell:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "trtforge", *args], capture_output=True, text=True, env=env, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return Cell("T/O", time.perf_counter() - start, f"timed out after {timeout:.0f} s")
    seconds = time.perf_counter() - start
    lines = [text for text in done.stderr.splitlines() if text.strip()]
    if done.returncode == 0:
        warn = [text for text in lines if "warning" in text.lower()]
        return Cell("ok", seconds, warn[-1] if warn else "")
    status = "TB" if any(text.startswith("Traceback") for text in lines) else f"x{done.returncode}"
    return Cell(status, seconds, (lines or done.stdout.strip().splitlines() or [""])[-1][:160])


def onnx_inputs(path: Path) -> list[str]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    known = {t.name for t in graph.initializer}
    return [i.name for i in graph.input if i.name not in known]


def save_feeds(feeds: Feeds, names: list[str], path: Path) -> None:
    if set(feeds) != set(names):  # a converter may rename inputs: match by order
        feeds = dict(zip(names, feeds.values()))
    np.savez(path, **feeds)


def stack(samples: list[Feeds], plan: Plan) -> Feeds:
    """Samples joined along each input's batch axis (none: the input is not batched)."""
    joined: Feeds = {}
    for name, first in samples[0].items():
        axis = plan.axes.get(name, 0)
        joined[name] = first if axis is None else np.concatenate([s[name] for s in samples], axis=axis)
    return joined


def task(engines: dict[str, Path], samples: list[Feeds], names: list[str], plan: Plan) -> dict[str, str]:
    from trtforge.build import load

    outputs: dict[str, Feeds] = {}
    for precision, engine in engines.items():
        if not engine.exists():
            continue
        runner = load(engine)
        per = [runner.infer(dict(zip(names, s.values()))) for s in samples]
        outputs[precision] = {k: np.concatenate([p[k] for p in per]) for k in per[0]}
    ref = outputs.pop("fp32", None)
    if ref is None:
        return {}
    results = {}
    for precision, got in outputs.items():
        try:
            results[precision] = plan.check(ref, got)
        except Exception as error:  # a check that cannot read the outputs is reported, not hidden
            results[precision] = f"check failed: {type(error).__name__}: {error}"[:60]
    return results


CALIB, VAL = 8, 4  # samples: INT8 calibration, and the run/compare/deploy/task checks
STAGES = ("convert", "reshape b1", "reshape", "fp32", "fp16", "int8", "bench", "run", "compare", "deploy")


def run_model(model: Model, work: Path) -> tuple[dict[str, Cell], dict[str, str]]:
    plan = PLANS[model.name]
    source = model_path(model)
    folder = work / model.name
    folder.mkdir(parents=True, exist_ok=True)
    cells = {stage: Cell() for stage in STAGES}
    rng = np.random.default_rng(0)
    calib = [plan.feeds(1, rng) for _ in range(CALIB)]
    val = [plan.feeds(1, rng) for _ in range(VAL)]

    onnx_path = source
    if source.suffix != ".onnx":
        onnx_path = folder / "model.onnx"
        cells["convert"] = trtforge("convert", str(source), "-o", str(onnx_path), *plan.convert)
        if cells["convert"].status != "ok":
            return cells, {}
    names = onnx_inputs(onnx_path)
    save_feeds(stack(calib, plan), names, folder / "calib.npz")
    save_feeds(stack(val, plan), names, folder / "val.npz")

    b1 = folder / "model-bs1.onnx"
    cells["reshape b1"] = trtforge("reshape", str(onnx_path), "-o", str(b1), "--batch", "1")
    fixed = b1
    if plan.shapes:
        fixed = folder / "model-fixed.onnx"
        cells["reshape"] = trtforge("reshape", str(onnx_path), "-o", str(fixed), "--shapes", plan.shapes)
    if not fixed.exists():
        return cells, {}
    engines = {p: folder / f"{p}.engine" for p in ("fp32", "fp16", "int8")}
    for precision, engine in engines.items():
        extra = ["--calib-data", str(folder / "calib.npz"), "--calib-method", "minmax"] if precision == "int8" else []
        cells[precision] = trtforge("build", str(fixed), "-o", str(engine), "--precision", precision, *extra)
    if engines["fp32"].exists():
        given: tuple[str, ...] = ()
        if plan.fixed:
            np.savez(folder / "fixed.npz", **plan.fixed)
            given = ("--inputs", str(folder / "fixed.npz"))
        cells["bench"] = trtforge(
            "bench",
            str(engines["fp32"]),
            "--warmup",
            "50",
            "--iterations",
            "10",
            "--duration",
            "0.3",
            "--no-progress",
            *plan.bench,
            *given,
        )
        cells["run"] = trtforge(
            "run", str(engines["fp32"]), "--inputs", str(folder / "val.npz"), "-o", str(folder / "out.npz")
        )
    if engines["fp16"].exists():
        cells["compare"] = trtforge("compare", str(engines["fp16"]), str(fixed), "--inputs", str(folder / "val.npz"))
    cells["deploy"] = trtforge(
        "deploy",
        str(fixed),
        "-o",
        str(folder / "deploy"),
        "--force",
        "--precision",
        "fp32,fp16,int8",
        "--calib-data",
        str(folder / "calib.npz"),
        "--calib-method",
        "minmax",
        "--val-data",
        str(folder / "val.npz"),
        "--warmup",
        "50",
        "--iterations",
        "10",
        "--duration",
        "0.3",
    )
    return cells, task(engines, val, onnx_inputs(fixed), plan)


def table(results: dict[str, tuple[dict[str, Cell], dict[str, str]]]) -> str:
    head = ["model", *STAGES, "fp16 vs fp32", "int8 vs fp32"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes = []
    for name, (cells, checks) in results.items():
        row = [name] + [c.status for c in cells.values()] + [checks.get("fp16", "-"), checks.get("int8", "-")]
        rows.append("| " + " | ".join(row) + " |")
        notes += [
            f"- {name} {stage}: {c.status}: {c.line}"
            for stage, c in cells.items()
            if c.status not in ("ok", "-") or c.line
        ]
    return "\n".join(rows + [""] + notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="model names (default: all)")
    parser.add_argument("--work", type=Path, default=Path("build/realmodels"), help="where stages write")
    parser.add_argument("--json", type=Path, default=None, help="also write the cells as JSON")
    args = parser.parse_args()
    chosen = [m for m in MODELS if args.only is None or m.name in args.only]
    missing = [m.name for m in chosen if not model_path(m).exists()]
    if missing:
        raise SystemExit(f"not in the cache: {', '.join(missing)}; run benchmarks/realmodels/fetch.py first")
    results = {}
    for model in chosen:
        start = time.perf_counter()
        results[model.name] = run_model(model, args.work)
        print(f"{model.name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.uname().nodename}, "
        f"{os.cpu_count()} CPUs, ONNX Runtime CPU"
    )
    print(table(results))
    if args.json:
        args.json.write_text(
            json.dumps(
                {n: {"cells": {s: vars(c) for s, c in cells.items()}, "task": t} for n, (cells, t) in results.items()},
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
