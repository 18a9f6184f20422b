"""ONNX Runtime INT8 on a CPU without VNNI: trtforge's flavours timed and checked under tools/cpuid_mask.py avx2.

    python benchmarks/int8_avx2.py MODEL_B1.onnx[@OP,...] ... --calib CALIB.npy [--rounds 5] [--blocks 6]
        [--per-block 3] [--profile RUNS] [--work DIR]
    python benchmarks/int8_avx2.py --fidelity hand_landmark,face_detect,fer_emotion,yolov8n [--held 64]

Everything runs in a child process that sees an AVX2-only CPU (CPUID faulting hides AVX-512 and VNNI),
so ONNX Runtime's MLAS and OpenVINO's oneDNN run the kernels such a CPU runs, and trtforge picks its
no-VNNI flavour. ``@OP,...`` after a model keeps those op types float in its ONNX Runtime INT8 builds
(``mnv2_b1.onnx@GlobalAveragePool``: how a random-weight MobileNetV2 was built before trtforge widened a
pool's output range to what ONNX Runtime's QLinearGlobalAveragePool accepts).

Engines per model, built by trtforge with one shared min-max calibration (``--calib``, N x input):
ONNX Runtime FP32; ONNX Runtime INT8 in three weight flavours: 7-bit weights everywhere (trtforge before
``full_range_depthwise``), trtforge's no-VNNI flavour now (7-bit weights, 8-bit on depthwise Convs),
U8U8 with full 8-bit weights (MLAS's AVX2 U8U8 kernels widen to 16 bits: no saturation); OpenVINO FP32
and OpenVINO INT8 from trtforge's Q/DQ model. Timed in interleaved rounds (order rotating per block);
printed per engine: median of the round medians, ORT FP32 / engine per round and its median, worst
cosine to ORT FP32 on the last 8 calibration arrays. ``--profile RUNS``: where the ONNX Runtime engines
spend their time, by kind of convolution (1x1, larger kernels, depthwise) and the rest.

``--fidelity``: trained models of benchmarks/int8_fidelity.py (its photo crops: 64 to calibrate,
``--held`` others to measure), each ONNX Runtime INT8 flavour against ONNX Runtime FP32 under the
same mask: per-sample cosine (mean, worst) and the largest error relative to the FP32 output's range.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from openvino_isa_cap import cosine, measure  # noqa: E402  (the same interleaved timing)

REFERENCE = "ORT fp32"
Run = Callable[[np.ndarray], np.ndarray]


def _flavours() -> dict[str, Any]:
    """The ONNX Runtime INT8 flavours compared, by label (as this process's CPU sees them)."""
    from trtforge.precision.quantize import QuantFlavour, cpu_flavour

    now = cpu_flavour()
    return {
        "ORT int8 7-bit weights (before)": dataclasses.replace(now, full_range_depthwise=False),
        "ORT int8 trtforge now (8-bit depthwise)": now,
        "ORT int8 U8U8 8-bit weights": QuantFlavour(
            "onnxruntime-cpu", "uint8", "uint8", False, True, False, "U8U8: AVX2 kernels widen to 16 bits"
        ),
    }


@contextmanager
def _flavour(flavour: Any) -> Iterator[None]:
    """trtforge's ONNX Runtime backend building in ``flavour`` instead of the one it picks."""
    from trtforge.backends.onnxruntime import OnnxRuntimeBackend

    original = OnnxRuntimeBackend.quant_flavour
    OnnxRuntimeBackend.quant_flavour = lambda self, config: flavour  # type: ignore[method-assign]
    try:
        yield
    finally:
        OnnxRuntimeBackend.quant_flavour = original  # type: ignore[method-assign]


def _build(model: Path, out: Path, backend: str, precision: str, calibration: Any, exclude: tuple[str, ...]) -> Run:
    import trtforge

    if not out.exists():
        config = trtforge.BuildConfig(
            precision=precision,
            backend=backend,
            calibration=calibration if precision == "int8" else None,
            allow_inaccurate=precision == "int8",  # fidelity is printed below
            exclude_op_types=exclude if precision == "int8" and backend == "onnxruntime" else (),
        )
        trtforge.build(model, out, config)
    runner = trtforge.load(out)
    name = runner.inputs[0].name
    return lambda x: np.concatenate([v.ravel() for v in runner.infer({name: x}).values()])


def engines(model: Path, calib: Path, work: Path, exclude: tuple[str, ...], num: int) -> dict[str, Run]:
    from trtforge.config import CalibrationConfig

    work.mkdir(parents=True, exist_ok=True)
    calibration = CalibrationConfig(data=calib, num=num, method="minmax", cache=work / "ranges.cache")
    runs = {REFERENCE: _build(model, work / "ort-fp32.engine", "onnxruntime", "fp32", None, exclude)}
    for i, (label, flavour) in enumerate(_flavours().items()):
        with _flavour(flavour):
            runs[label] = _build(model, work / f"ort-int8-{i}.engine", "onnxruntime", "int8", calibration, exclude)
    runs["OpenVINO fp32"] = _build(model, work / "ov-fp32.engine", "openvino", "fp32", None, exclude)
    runs["OpenVINO int8 (trtforge Q/DQ)"] = _build(model, work / "ov-int8.engine", "openvino", "int8", calibration, ())
    return runs


def timed(args: argparse.Namespace) -> None:
    for spec in args.models:
        path, _, ops = spec.partition("@")
        model = Path(path)
        arrays = np.load(args.calib, mmap_mode="r")
        work = args.work / (model.stem + (f"-float-{ops.replace(',', '-')}" if ops else ""))
        runs = engines(model, args.calib, work, tuple(filter(None, ops.split(","))), len(arrays))
        held = np.asarray(arrays[-8:], np.float32)
        worst, medians, load = measure(runs, REFERENCE, held, args.rounds, args.blocks, args.per_block)
        kept = f", ONNX Runtime INT8 keeps {ops} float" if ops else ""
        print(f"\n### {model.name}{kept} (load average {load[0]:.2f} -> {load[1]:.2f})")
        print("| engine | ms | ORT fp32 / engine per round | median | worst cosine vs ORT fp32 |")
        print("|---|---|---|---|---|")
        for name, times in medians.items():
            speedups = [a / b for a, b in zip(medians[REFERENCE], times)]
            print(
                f"| {name} | {statistics.median(times):.2f} | {' '.join(f'{v:.2f}' for v in speedups)} "
                f"| {statistics.median(speedups):.2f} | {worst[name]:.5f} |"
            )
        if args.profile:
            paths = {REFERENCE: work / "ort-fp32.engine"}
            paths.update({label: work / f"ort-int8-{i}.engine" for i, label in enumerate(_flavours())})
            kinds = profile(paths, held[:1].copy(), args.profile)
            print(f"\nONNX Runtime's profiler, {args.profile} interleaved runs: sum of each node's fastest kernel, ms")
            print(f"| engine | {' | '.join(KINDS)} | total |")
            print("|---|" + "---|" * (len(KINDS) + 1))
            for label, ms in kinds.items():
                print(f"| {label} | {' | '.join(f'{ms[k]:.2f}' for k in KINDS)} | {sum(ms.values()):.2f} |")


def fidelity(args: argparse.Namespace) -> None:
    import int8_fidelity as corpus

    print("\n| model | ONNX Runtime INT8 flavour | mean cosine | worst cosine | worst max error / FP32 range |")
    print("|---|---|---|---|---|")
    for name in args.fidelity.split(","):
        spec = corpus.SPECS[name]
        work = args.work / "fidelity" / name
        work.mkdir(parents=True, exist_ok=True)
        model = work / "fp32.onnx"
        if not model.exists():
            corpus.fixed(corpus.onnx_source(spec, args.converted), model, spec)
        np.save(work / "calib.npy", corpus.crops(spec, 64, seed=1))
        held = corpus.crops(spec, args.held, seed=2)
        runs = engines_fidelity(model, work)
        reference = [runs[REFERENCE](s[None]) for s in held]
        for label, run in runs.items():
            if label == REFERENCE:
                continue
            got = [run(s[None]) for s in held]
            cos = [cosine(g, r) for g, r in zip(got, reference)]
            err = max(float(np.abs(g - r).max() / max(float(np.ptp(r)), 1e-30)) for g, r in zip(got, reference))
            print(f"| {name} | {label} | {statistics.mean(cos):.5f} | {min(cos):.5f} | {err:.4f} |")


def engines_fidelity(model: Path, work: Path) -> dict[str, Run]:
    from trtforge.config import CalibrationConfig

    calibration = CalibrationConfig(data=work / "calib.npy", num=64, method="minmax", cache=work / "ranges.cache")
    runs = {REFERENCE: _build(model, work / "ort-fp32.engine", "onnxruntime", "fp32", None, ())}
    for i, (label, flavour) in enumerate(_flavours().items()):
        with _flavour(flavour):
            runs[label] = _build(model, work / f"ort-int8-{i}.engine", "onnxruntime", "int8", calibration, ())
    return runs


KINDS = ("conv 1x1", "conv kxk", "depthwise", "other")


def _kinds(path: Path) -> dict[str, str]:
    """``{Conv node: kind}`` of an ONNX Runtime engine (its Q/DQ or float ONNX)."""
    import onnx

    model = onnx.load(str(path))
    dims = {i.name: tuple(i.dims) for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    kinds = {}
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        weight = node.input[1]
        while weight not in dims and weight in producers:  # through its DequantizeLinear
            weight = producers[weight].input[0]
        kinds[node.name] = _kind(dims.get(weight, ()), next((a.i for a in node.attribute if a.name == "group"), 1))
    return kinds


def _kind(weight: tuple[int, ...], group: int) -> str:
    if group > 1 and weight[:2] == (group, 1):
        return "depthwise"
    return "conv 1x1" if len(weight) == 4 and weight[2:] == (1, 1) else "conv kxk"


def profile(paths: dict[str, Path], x: np.ndarray, runs: int) -> dict[str, dict[str, float]]:
    """Per engine, the sum over its nodes of each node's fastest kernel time (ms) in ``runs`` interleaved runs,
    by kind (ONNX Runtime's profiler; the minimum is what load leaves least changed)."""
    import onnxruntime as ort

    from trtforge.backends.onnxruntime import CPU_SESSION_CONFIG

    sessions = {}
    for label, path in paths.items():
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(path.with_suffix(""))
        options.log_severity_level = 3
        for key, value in CPU_SESSION_CONFIG.items():
            options.add_session_config_entry(key, value)
        sessions[label] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        for session in sessions.values():
            session.run(None, {session.get_inputs()[0].name: x})
    result = {}
    for label, session in sessions.items():
        events = json.loads(Path(session.end_profiling()).read_text())
        kinds, fastest = _kinds(paths[label]), {}
        for e in events:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                name = e["name"][: -len("_kernel_time")]
                fastest[name] = min(fastest.get(name, (1e18, ""))[0], e["dur"] / 1e3), _event_kind(e, kinds, name)
        unknown = sorted({kind for _, kind in fastest.values() if kind not in KINDS})
        assert not unknown, f"{label}: convolutions not found in the engine: {unknown[:3]}"
        result[label] = {k: sum(t for t, kind in fastest.values() if kind == k) for k in KINDS}
    return result


def _event_kind(event: dict[str, Any], kinds: dict[str, str], name: str) -> str:
    if "Conv" not in event["args"]["op_name"]:
        return "other"
    name = re.sub(r"_token_\d+$", "", name)  # ONNX Runtime's name for the QLinearConv it fused from a Conv
    if name in kinds:
        return kinds[name]
    if event["args"]["op_name"] != "Conv":
        return f"unknown {name}"
    shapes = [next(iter(s.values())) for s in event["args"].get("input_type_shape", [])]  # a float NCHWc Conv
    return _kind(tuple(shapes[1]), shapes[0][1] if len(shapes[1]) == 4 and shapes[1][1] == 1 else 1)


def _masked() -> dict[str, str]:
    spec = importlib.util.spec_from_file_location("cpuid_mask", ROOT / "tools" / "cpuid_mask.py")
    assert spec is not None and spec.loader is not None
    mask = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mask)
    reason = mask.unsupported()
    if reason is not None:
        sys.exit(f"int8_avx2: cannot hide AVX-512/VNNI here: {reason}")
    env: dict[str, str] = mask.environ("avx2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("models", nargs="*", help="batch-1 ONNX models, each optionally MODEL@OP,... (see above)")
    parser.add_argument("--calib", type=Path, help="calibration arrays for the timed models, N x input (.npy)")
    parser.add_argument("--fidelity", default="", help="trained models of benchmarks/int8_fidelity.py, comma-separated")
    parser.add_argument("--held", type=int, default=64, help="held-out crops per trained model")
    parser.add_argument(
        "--converted", type=Path, default=Path("/work/cache/fidelity"), help="where TFLite/Keras models are converted"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--per-block", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0, metavar="RUNS", help="also profile ONNX Runtime's kernels")
    parser.add_argument("--work", type=Path, default=Path("/tmp/int8_avx2"))
    args = parser.parse_args()
    if args.models and args.calib is None:
        parser.error("timed models need --calib")
    if os.environ.get("TRTFORGE_CPUID_MASK") != "avx2":  # run again in a process that sees AVX2 only
        sys.exit(subprocess.run([sys.executable, __file__, *sys.argv[1:]], env=_masked(), check=False).returncode)
    import warnings

    warnings.simplefilter("ignore")  # the builds' notes; what matters is printed
    from trtforge.precision.quantize import cpu_flags

    print(f"CPU as this process sees it: AVX-512F {'avx512f' in cpu_flags()}, VNNI {'avx512_vnni' in cpu_flags()}")
    if args.models:
        timed(args)
    if args.fidelity:
        fidelity(args)


if __name__ == "__main__":
    main()
