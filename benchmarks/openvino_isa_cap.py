"""INT8 on a CPU without VNNI, measured on one with it: CPUID masked, or OpenVINO's kernels capped.

    python benchmarks/openvino_isa_cap.py MODEL_B1.onnx CALIB.npy [--nncf XML]
        [--caps cpuid:avx2,cpuid:avx512_core,AVX2,AVX512_CORE,none] [--float-ops OP,...]
        [--rounds 5] [--blocks 6] [--per-block 3] [--work DIR] [--json OUT.json]

``cpuid:avx2`` and ``cpuid:avx512_core`` run the whole measurement in a process that sees a CPU without
AVX-512 (or without VNNI) through tools/cpuid_mask.py: ONNX Runtime's MLAS, oneDNN in OpenVINO and
NumPy all pick the kernels such a CPU has (they run natively on this core), and trtforge builds the
flavour it builds there (7-bit weights). Those rows add trtforge's ONNX Runtime INT8 engine, and their
ONNX Runtime FP32 reference runs that CPU's FP32 kernels too: the speed-ups are the ones the issue asks
about. ``--float-ops`` keeps op types float in the ONNX Runtime INT8 build (MobileNetV2 with random
weights needs ``GlobalAveragePool``). The caps below (``AVX2``, ``AVX512_CORE``) limit OpenVINO only:

OpenVINO's CPU plugin takes its kernels from oneDNN, which honours ``ONEDNN_MAX_CPU_ISA``: with ``AVX2``
the convolutions run oneDNN's AVX2 int8 kernels (``jit_avx2_I8``), with ``AVX512_CORE`` its AVX-512
kernels without VNNI (the plugin then reports its ISA as "AVX-512 with AVX512BW, AVX512VL, and AVX512DQ",
no DL Boost). Each cap runs in a process of its own (the variable is read once), which builds trtforge's
OpenVINO INT8 engine there (a compiled blob is tied to the ISA it was compiled for), in two flavours:
as trtforge builds it on this CPU (8-bit weights) and as it builds it on a CPU without VNNI (7-bit
weights, ``reduce_range``: the non-VNNI ``vpmaddubsw`` sums pairs of u8 x s8 products into saturating
16 bits). Timed against FP32 ONNX Runtime (trtforge's engine: ONNX Runtime's MLAS picks its kernels
from CPUID and has no such cap, so it runs its AVX-512 FP32 kernels in every row: a real AVX2-only
CPU's FP32 would be slower, so the INT8 speed-up here is a lower bound), OpenVINO FP32 under the same
cap, and with ``--nncf`` OpenVINO+NNCF INT8 (compiled with ``INFERENCE_PRECISION_HINT=f32`` under a cap:
OpenVINO still sees the CPU's BF16 and fails to compile or runs BF16 kernels a CPU without VNNI lacks).

Printed per cap and engine: the median of the round medians, ORT FP32 / engine per round (the INT8
speed-up), worst cosine to ORT FP32 on the first 8 calibration arrays, and the convolution kernels.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import cpuid_mask  # noqa: E402

Run = Callable[[np.ndarray], np.ndarray]
REFERENCE = "trtforge onnxruntime fp32"


def _kernels(compiled: Any) -> dict[str, int]:
    counts: collections.Counter[str] = collections.Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) in ("Convolution", "GroupConvolution", "FullyConnected"):
            counts[info["primitiveType"].astype(str)] += 1
    return dict(counts)


def _trtforge(
    model: Path, calib: Path, work: Path, cap: str, float_ops: tuple[str, ...]
) -> tuple[dict[str, Run], dict[str, object]]:
    """trtforge's ORT FP32 engine and its OpenVINO INT8 engine in both weight flavours, built under ``cap``;
    under a CPUID mask also its ONNX Runtime INT8 engine (the flavour trtforge picks there)."""
    import trtforge
    from trtforge.backends import openvino as backend
    from trtforge.config import CalibrationConfig
    from trtforge.precision.quantize import openvino_flavour

    count = len(np.load(calib, mmap_mode="r"))
    calibration = CalibrationConfig(data=calib, num=count, method="minmax", cache=work / "ranges.cache")
    folder = work / f"cap-{cap.replace(':', '-')}"
    folder.mkdir(parents=True, exist_ok=True)
    runs: dict[str, Run] = {}
    kernels: dict[str, object] = {}
    builds = (
        (REFERENCE, "onnxruntime", "fp32", None),
        ("trtforge openvino int8 (8-bit weights: VNNI flavour)", "openvino", "int8", frozenset({"avx512_vnni"})),
        ("trtforge openvino int8 (7-bit weights: no-VNNI flavour)", "openvino", "int8", frozenset({"avx2"})),
    )
    if cap.startswith("cpuid:"):
        builds += (("trtforge onnxruntime int8 (this CPU's flavour)", "onnxruntime", "int8", None),)
    for label, name, precision, flags in builds:
        out = folder / f"{name}-{precision}-{len(runs)}.engine"
        if flags is not None:  # the flavour trtforge picks from /proc/cpuinfo, made explicit
            backend.openvino_flavour = lambda _=None, f=flags: openvino_flavour(f)  # type: ignore[misc]
        if not out.exists():
            config = trtforge.BuildConfig(
                precision=precision,
                backend=name,
                calibration=calibration if precision == "int8" else None,
                allow_inaccurate=precision == "int8",  # fidelity is printed below
                exclude_op_types=float_ops if (name, precision) == ("onnxruntime", "int8") else (),
            )
            trtforge.build(model, out, config)
        runner = trtforge.load(out)
        runs[label] = _call(runner)
        if name == "onnxruntime" and precision == "int8":
            kernels[label] = json.loads(Path(f"{out}.json").read_text())["calibration"]["flavour"]["reason"]
        if name == "openvino":
            kernels[label] = _kernels(runner.compiled)
            kernels["isa"] = str(runner.compiled.get_property("RUNTIME_REQUIREMENTS")).split("isa=")[-1]
    backend.openvino_flavour = openvino_flavour
    return runs, kernels


def _numpy_features() -> dict[str, bool]:
    from numpy.core._multiarray_umath import __cpu_features__

    return dict(__cpu_features__)


def _call(runner: Any) -> Run:
    name = runner.inputs[0].name
    return lambda x: next(iter(runner.infer({name: x}).values()))


def _openvino(path: Path, properties: dict[str, object]) -> tuple[Run, dict[str, int]]:
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", properties)
    request = compiled.create_infer_request()
    return (lambda x: request.infer([x])[0].copy()), _kernels(compiled)


def time_interleaved(
    runs: dict[str, Run], x: np.ndarray, rounds: int, blocks: int, per_block: int
) -> dict[str, list[float]]:
    """One median per engine per round; engines interleaved in blocks, the order rotating per block."""
    names = list(runs)
    medians: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        times: dict[str, list[float]] = {n: [] for n in names}
        for b in range(blocks):
            shift = (r + b) % len(names)
            for name in names[shift:] + names[:shift]:
                for _ in range(per_block):
                    start = time.perf_counter()
                    runs[name](x)
                    times[name].append((time.perf_counter() - start) * 1e3)
        for name in names:
            medians[name].append(statistics.median(times[name]))
    return medians


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-30))


def measure(
    runs: dict[str, Run], reference: str, samples: np.ndarray, rounds: int, blocks: int, per_block: int
) -> tuple[dict[str, float], dict[str, list[float]], tuple[float, float]]:
    """Each engine's worst cosine to ``reference`` over ``samples``, then, after a warm-up, its round medians
    on the first sample (:func:`time_interleaved`), and the load average before and after the timing."""
    expected = [runs[reference](s[None]) for s in samples]
    worst = {n: min(cosine(run(s[None]), r) for s, r in zip(samples, expected)) for n, run in runs.items()}
    x = samples[:1].copy()
    for _ in range(10):
        for run in runs.values():
            run(x)
    load = os.getloadavg()[0]
    medians = time_interleaved(runs, x, rounds, blocks, per_block)
    return worst, medians, (load, os.getloadavg()[0])


def child(args: argparse.Namespace) -> None:
    """One cap (already in the environment): build, time, print one JSON line."""
    f32 = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "INFERENCE_PRECISION_HINT": "f32"}
    float_ops = tuple(filter(None, args.float_ops.split(",")))
    runs, kernels = _trtforge(args.model, args.calib, args.work, args.child, float_ops)
    kernels["numpy_sees"] = ",".join(k for k in ("AVX2", "AVX512F", "AVX512VNNI") if _numpy_features().get(k))
    runs["OpenVINO fp32 (f32 hint)"], kernels["OpenVINO fp32 (f32 hint)"] = _openvino(args.model, f32)
    if args.nncf is not None:
        defaults = args.child == "none" or args.child.startswith("cpuid:")  # the CPU it sees has no BF16
        label = "OpenVINO + NNCF int8" + (" (its defaults)" if defaults else " (f32 hint)")
        runs[label], kernels[label] = _openvino(args.nncf, {} if defaults else f32)
    samples = np.load(args.calib, mmap_mode="r")[:8].astype(np.float32)
    worst, medians, load = measure(runs, REFERENCE, samples, args.rounds, args.blocks, args.per_block)
    print(
        json.dumps(
            {
                "cap": args.child,
                "load": list(load),
                "medians": medians,
                "cosine": worst,
                "kernels": kernels,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("calib", type=Path, help="calibration arrays, N x input shape (.npy)")
    parser.add_argument("--nncf", type=Path, metavar="XML", help="OpenVINO+NNCF INT8 IR from benchmarks/nncf_int8.py")
    parser.add_argument(
        "--caps",
        default="cpuid:avx2,cpuid:avx512_core,none",
        help="cpuid:PROFILE (tools/cpuid_mask.py), ONEDNN_MAX_CPU_ISA values, none: as this CPU is",
    )
    parser.add_argument("--float-ops", default="", help="op types kept float in the ONNX Runtime INT8 build")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--per-block", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/openvino_isa_cap"))
    parser.add_argument("--json", type=Path, metavar="OUT.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.child:
        child(args)
        return
    results = []
    for cap in args.caps.split(","):
        env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
        if cap.startswith("cpuid:"):
            reason = cpuid_mask.unsupported()
            if reason is not None:
                print(f"cap {cap}: skipped: {reason}")
                continue
            env = cpuid_mask.environ(cap.split(":", 1)[1], env)
        elif cap != "none":
            env["ONEDNN_MAX_CPU_ISA"] = cap
        command = [sys.executable, __file__, *sys.argv[1:], "--child", cap]
        proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"cap {cap}: failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(result)
        _print(result)
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "results": results}, indent=1) + "\n")


def _print(result: dict[str, Any]) -> None:
    medians = result["medians"]
    kernels = result["kernels"]
    cap = result["cap"]
    what = f"CPUID mask {cap[6:]}" if cap.startswith("cpuid:") else f"ONEDNN_MAX_CPU_ISA={cap}"
    print(
        f"\n### {what} (OpenVINO's ISA: {kernels.get('isa')}; NumPy sees {kernels.get('numpy_sees')}; "
        f"load {result['load']})"
    )
    print("| engine | ms | ORT fp32 / engine per round | median | worst cosine vs ORT fp32 | kernels |")
    print("|---|---|---|---|---|---|")
    for name, times in medians.items():
        speedups = [a / b for a, b in zip(medians[REFERENCE], times)]
        print(
            f"| {name} | {statistics.median(times):.2f} | {' '.join(f'{v:.2f}' for v in speedups)} "
            f"| {statistics.median(speedups):.2f} | {result['cosine'][name]:.6f} | {kernels.get(name, 'MLAS')} |"
        )


if __name__ == "__main__":
    main()
