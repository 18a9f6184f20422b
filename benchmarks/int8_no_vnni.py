"""INT8 engines on a CPU without VNNI (issue 17): does an engine built with 8-bit weights go wrong there?

trtforge's ONNX Runtime CPU INT8 writes full 8-bit weights when the building CPU has VNNI, 7-bit
(``reduce_range``) when it lacks it. This script builds both on trained models and runs each
normally and as on a CPU without VNNI (``tools/cpuid_mask.py``: CPUID hides AVX-512/VNNI, so ONNX
Runtime's MLAS picks the kernels such a CPU runs, natively), against the FP32 model run normally:

- ``8-bit``: built in a normal process (this CPU has VNNI), the engine a VNNI build machine writes;
- ``7-bit``: built under the mask, the engine trtforge writes on a CPU without VNNI;
- ``fp32``: the model itself, as a control for what the masked kernels change without INT8.

Each engine (and FP32) runs in a subprocess on ONNX Runtime CPU as trtforge loads it (full graph
optimisation, so Q/DQ fuses into the integer kernels), on held-out crops of the photos that ship in
sklearn and matplotlib; the models, crops and task metrics are those of ``int8_fidelity.py``.

    PYTHONPATH=src python benchmarks/int8_no_vnni.py                         # default models, avx2
    PYTHONPATH=src python benchmarks/int8_no_vnni.py --models ppocr_cls --profiles avx2,avx512_core
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import int8_fidelity as fid  # noqa: E402

_spec = importlib.util.spec_from_file_location("cpuid_mask", ROOT / "tools" / "cpuid_mask.py")
assert _spec is not None and _spec.loader is not None
cpuid_mask = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cpuid_mask)

DEFAULT_MODELS = "ppocr_cls,fer_emotion,face_detect,hand_landmark,ppocr_det,yolov8n,resnet50_caffe"


def _env(profile: str | None) -> dict[str, str]:
    env = dict(os.environ) if profile is None else cpuid_mask.environ(profile)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return env


def _child(profile: str | None, *args: str) -> str:
    """This script's ``args`` in a subprocess, under the mask for ``profile`` (None: as this CPU is)."""
    proc = subprocess.run(
        [sys.executable, __file__, *args], env=_env(profile), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} under {profile or 'no mask'} failed: {proc.stderr.strip()[-400:]}")
    return proc.stdout.strip()


def build(fp32: str, calib: str, out: str, num: str) -> None:
    """Child: trtforge's default ONNX Runtime CPU INT8 engine; prints the flavour's reduce_range."""
    import trtforge
    from trtforge.config import BuildConfig, CalibrationConfig

    calibration = CalibrationConfig(data=Path(calib), num=int(num))
    config = BuildConfig(precision="int8", calibration=calibration, allow_inaccurate=True)  # measured here
    manifest = trtforge.build(fp32, out, config)
    flavour = (manifest.calibration or {}).get("flavour", {})
    print("7-bit" if flavour.get("reduce_range") else "8-bit")  # type: ignore[union-attr]


def run(model: str, held: str, out: str) -> None:
    """Child: ``model`` (an engine's ONNX bytes or an .onnx) on ONNX Runtime CPU as trtforge loads it, one
    sample at a time; the outputs saved to ``out`` (.npz). The engine's bytes are read as is, so a refusal
    by ``trtforge.load`` does not stop the measurement of what ONNX Runtime computes."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 4
    session = ort.InferenceSession(Path(model).read_bytes(), options, providers=["CPUExecutionProvider"])
    name, names = session.get_inputs()[0].name, [o.name for o in session.get_outputs()]
    x = np.load(held)["x"]
    runs = [session.run(None, {name: x[i : i + 1]}) for i in range(len(x))]
    np.savez(out, **{n: np.concatenate([r[k] for r in runs]) for k, n in enumerate(names)})


def measure(spec: fid.Spec, work: Path, args: argparse.Namespace) -> None:
    fp32 = work / f"{spec.name}.onnx"
    fid.fixed(fid.onnx_source(spec, args.converted), fp32, spec)
    calib, held = work / f"{spec.name}-calib.npz", work / f"{spec.name}-held.npz"
    np.savez(calib, **{spec.input: fid.crops(spec, args.calib, seed=0)})
    np.savez(held, x=fid.crops(spec, args.held, seed=1))
    profiles = args.profiles.split(",")
    engines = {"fp32": fp32}
    for label, profile in (("8-bit", None), ("7-bit", profiles[0])):
        path = work / f"{spec.name}-{label}.engine"
        started = time.perf_counter()
        written = _child(profile, "build", str(fp32), str(calib), str(path), str(args.calib)).splitlines()[-1]
        assert written == label, f"built under {profile or 'no mask'}: expected {label} weights, got {written}"
        print(
            f"<!-- {spec.name} {label} built under {profile or 'no mask'} in {time.perf_counter() - started:.0f} s -->"
        )
        engines[label] = path
    reference = None
    main_output = spec.output
    for label, path in engines.items():
        for profile in (None, *profiles):
            out = work / f"{spec.name}-{label}-{profile or 'host'}.npz"
            _child(profile, "run", str(path), str(held), str(out))
            got_all = dict(np.load(out))
            main_output = main_output or next(iter(got_all))
            got = got_all[main_output]
            if reference is None:  # fp32 on this CPU, first
                reference = got
            _row(spec, label, profile, reference, got)


def _row(spec: fid.Spec, label: str, profile: str | None, ref: np.ndarray, got: np.ndarray) -> None:
    cos = fid.cosines(ref, got)
    err, where = fid.field_errors(ref, got)
    _, text = fid.task_metric(spec, ref, got)
    runs_on = (
        "this CPU (VNNI)" if profile is None else f"masked: {profile}" + (" (no VNNI)" if profile != "none" else "")
    )
    print(
        f"| {spec.name} | {label} | {runs_on} | {cos.mean():.4f} / {cos.min():.4f} | {err:.1%} ({where}) | {text} |",
        flush=True,
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("build", "run"):
        {"build": build, "run": run}[sys.argv[1]](*sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=DEFAULT_MODELS, help=f"from: {', '.join(fid.SPECS)}")
    ap.add_argument("--profiles", default="avx2", help="cpuid_mask profiles to run under; the first builds 7-bit")
    ap.add_argument("--calib", type=int, default=64, help="calibration crops (default 64)")
    ap.add_argument("--held", type=int, default=32, help="held-out crops measured (default 32)")
    ap.add_argument("--converted", type=Path, default=Path("/work/cache/fidelity"), help="ONNX of non-ONNX sources")
    args = ap.parse_args()
    reason = cpuid_mask.unsupported()
    if reason is not None:
        sys.exit(f"int8_no_vnni: the CPUID mask cannot run here: {reason}")
    import onnxruntime

    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, onnxruntime {onnxruntime.__version__}; "
        f"calib {args.calib} crops, held-out {args.held} crops; reference: FP32 on this CPU"
    )
    print("| model | weights | runs on | cosine mean / worst | max err / range (where) | task metric |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory(prefix="int8-no-vnni-") as tmp:
        for key in args.models.split(","):
            measure(fid.SPECS[key], Path(tmp), args)
    print(
        "task metric (against FP32 on this CPU): ppocr_cls, fer_emotion top-1 agreement; face_detect top-20 anchors "
        "shared; hand_landmark largest landmark error (px of 224, lower is better); ppocr_det text-mask IoU at 0.3; "
        f"yolov8n top detection class+box agree; resnet50_caffe centred-logit cosine and top-1. Load now "
        f"{os.getloadavg()[0]:.2f}."
    )


if __name__ == "__main__":
    main()
