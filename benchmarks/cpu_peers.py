"""trtforge's CPU engines against plain OpenVINO on one ONNX model, batch 1, quiet and with one core busy.

    python benchmarks/cpu_peers.py MODEL_B1.onnx CALIB.npy [--rounds 3] [--runs 20] [--work DIR]

Engines: trtforge ONNX Runtime FP32/INT8, trtforge OpenVINO FP32/INT8 (trtforge's Q/DQ), and OpenVINO
reading the ONNX itself with its defaults (the peer), and with ``--nncf XML`` OpenVINO+NNCF INT8
(made by benchmarks/nncf_int8.py in NNCF's own venv).
Alternating rounds: every engine runs ``--runs`` queries per round, quiet then loaded (a background
process spinning on one core); prints the median ms and each round's ratio to OpenVINO FP32, and the
fidelity of each engine to trtforge's ONNX Runtime FP32 on 16 other random inputs.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _spin() -> None:
    while True:
        pass


def _engines(
    model: Path, calib: Path, work: Path, nncf_xml: Path | None
) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    import openvino as ov

    import trtforge
    from trtforge.config import CalibrationConfig

    runs: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    for backend in ("onnxruntime", "openvino"):
        for precision in ("fp32", "int8"):
            out = work / f"{backend}-{precision}.engine"
            calibration = CalibrationConfig(data=calib, num=64) if precision == "int8" else None
            trtforge.build(
                model, out, trtforge.BuildConfig(precision=precision, backend=backend, calibration=calibration)
            )
            runner = trtforge.load(out)
            name = runner.inputs[0].name
            runs[f"trtforge {backend} {precision}"] = (lambda r, n: lambda x: next(iter(r.infer({n: x}).values())))(
                runner, name
            )
    for label, properties in (("its defaults", {}), ("f32 hint", {"INFERENCE_PRECISION_HINT": "f32"})):
        compiled = ov.Core().compile_model(str(model), "CPU", properties)
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        request = compiled.create_infer_request()
        runs[f"OpenVINO fp32 ({label}: runs {hint})"] = (lambda r: lambda x: r.infer([x])[0].copy())(request)
    if nncf_xml is not None:  # written by benchmarks/nncf_int8.py in NNCF's own venv
        nncf_request = ov.Core().compile_model(str(nncf_xml), "CPU").create_infer_request()
        runs["OpenVINO + NNCF int8 (its defaults)"] = lambda x: nncf_request.infer([x])[0].copy()
    return runs


def _median_ms(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        run(x)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", type=Path)
    parser.add_argument("calib", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--work", type=Path, default=Path("/tmp/cpu_peers"))
    parser.add_argument("--nncf", type=Path, metavar="XML", help="OpenVINO+NNCF INT8 IR from benchmarks/nncf_int8.py")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    runs = _engines(args.model, args.calib, args.work, args.nncf)
    shape = np.load(args.calib).shape[1:]
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (1, *shape)).astype(np.float32)
    for run in runs.values():
        run(x)
    peer = next(name for name in runs if name.startswith("OpenVINO fp32 (its defaults"))
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for condition in ("quiet", "loaded"):
            load = multiprocessing.Process(target=_spin, daemon=True) if condition == "loaded" else None
            if load:
                load.start()
                time.sleep(0.2)
            for name, run in runs.items():
                times.setdefault((name, condition), []).append(_median_ms(run, x, args.runs))
            if load:
                load.terminate()
                load.join()
    samples = rng.uniform(-1, 1, (16, 1, *shape)).astype(np.float32)
    reference = [runs["trtforge onnxruntime fp32"](s) for s in samples]
    print(
        "| engine | quiet ms | loaded ms | quiet / OV fp32 per round | loaded / OV fp32 per round "
        "| min cosine vs FP32 | top-1 agree |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, run in runs.items():
        out = [run(s) for s in samples]
        cos = min(
            float((a * b).sum() / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30)) for a, b in zip(out, reference)
        )  # 0 when an output is all zeros
        agree = np.mean([a.argmax() == b.argmax() for a, b in zip(out, reference)])
        cells = [f"{statistics.median(times[name, c]):.2f}" for c in ("quiet", "loaded")]
        ratios = [
            ", ".join(f"{a / b:.2f}" for a, b in zip(times[name, c], times[peer, c])) for c in ("quiet", "loaded")
        ]
        print(f"| {name} | {' | '.join(cells)} | {' | '.join(ratios)} | {cos:.5f} | {agree:.0%} |")


if __name__ == "__main__":
    main()
