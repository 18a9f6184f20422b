"""trtforge's default INT8 in its OpenVINO flavour (Q/DQ on weighted-op inputs), against FP32.

Two measurements on the data of ``int8_fidelity.py`` (64 seeded calibration crops, ``--held`` others):
the INT8 engine ``trtforge build --backend openvino --precision int8`` makes, run in OpenVINO through
``trtforge.load`` (latency: the runner's defaults, median of 35 calls, batch 1); and, with ``--in-ort``,
the same flavour's Q/DQ ONNX next to the ONNX Runtime flavour's, both run in ONNX Runtime CPU (one
thread), to see what the placement alone changes.

    PYTHONPATH=src python benchmarks/int8_openvino_fidelity.py --models yolov8n,hand_landmark [--in-ort]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from int8_fidelity import SPECS, Spec, cosines, crops, fixed, latencies_ms, onnx_source, outputs, session, task_metric  # noqa: E402


def engines(spec: Spec, fp32: Path, calib: Path, held: np.ndarray, name: str, ref: np.ndarray, work: Path) -> None:
    import trtforge
    from trtforge.config import BuildConfig, CalibrationConfig

    for precision in ("fp32", "int8"):
        calibration = CalibrationConfig(data=calib, num=64) if precision == "int8" else None
        out = work / f"{precision}.engine"
        config = BuildConfig(
            precision=precision, backend="openvino", calibration=calibration, allow_inaccurate=precision == "int8"
        )
        started = time.perf_counter()
        trtforge.build(fp32, out, config)
        built = time.perf_counter() - started
        runner = trtforge.load(out)
        got = np.concatenate([runner.infer({spec.input: held[i : i + 1]})[name] for i in range(len(held))])
        times = []
        for i in range(40):
            started = time.perf_counter()
            runner.infer({spec.input: held[i % len(held) : i % len(held) + 1]})
            times.append((time.perf_counter() - started) * 1000)
        row(spec, f"trtforge {precision}, OpenVINO engine", ref, got, statistics.median(times[5:]), built)


def in_ort(spec: Spec, fp32: Path, calib: Path, held: np.ndarray, name: str, ref: np.ndarray, work: Path) -> None:
    import onnx

    from trtforge.config import BuildConfig, CalibrationConfig
    from trtforge.precision.apply import apply
    from trtforge.precision.quantize import cpu_flavour, openvino_flavour

    config = BuildConfig(precision="int8", calibration=CalibrationConfig(data=calib, num=64), allow_inaccurate=True)
    for label, flavour in (("onnxruntime-cpu", cpu_flavour()), ("openvino", openvino_flavour())):
        started = time.perf_counter()
        quantized, _ = apply(onnx.load(str(fp32)), config, flavour)
        out = work / f"{label}.onnx"
        onnx.save(quantized, str(out))
        built = time.perf_counter() - started
        ms = latencies_ms({label: out}, held, 30)[label]
        row(spec, f"trtforge int8, {label} flavour in ONNX Runtime", ref, outputs(out, held)[name], ms, built)


def row(spec: Spec, tool: str, ref: np.ndarray, got: np.ndarray, ms: float, built: float) -> None:
    cos = cosines(ref, got)
    _, text = task_metric(spec, ref, got)
    print(
        f"| {spec.name} | {tool} | {cos.mean():.4f} / {cos.min():.4f} | {text} | {ms:.2f} | {built:.1f} |", flush=True
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="yolov8n,hand_landmark")
    ap.add_argument("--held", type=int, default=96)
    ap.add_argument("--in-ort", action="store_true", help="also both flavours' Q/DQ ONNX in ONNX Runtime")
    ap.add_argument("--converted", type=Path, default=Path("/work/cache/fidelity"))
    args = ap.parse_args()
    print("| model | tool | cosine mean / worst | task metric | latency ms | build s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for key in args.models.split(","):
        spec = SPECS[key]
        with tempfile.TemporaryDirectory(prefix="int8-ov-") as tmp:
            work = Path(tmp)
            fp32, calib = work / "m.onnx", work / "calib.npz"
            fixed(onnx_source(spec, args.converted), fp32, spec)
            np.savez(calib, **{spec.input: crops(spec, 64, seed=0)})
            held = crops(spec, args.held, seed=1)
            name = spec.output or session(fp32).get_outputs()[0].name
            ref = outputs(fp32, held)[name]
            engines(spec, fp32, calib, held, name, ref, work)
            if args.in_ort:
                in_ort(spec, fp32, calib, held, name, ref, work)


if __name__ == "__main__":
    main()
