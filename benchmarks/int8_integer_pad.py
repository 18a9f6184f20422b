"""ONNX Runtime CPU INT8 with and without integer Pads (trtforge.precision.quantize.integer_pads).

ONNX Runtime has no rule to drop a DequantizeLinear -> Pad -> QuantizeLinear chain, so each Pad of a
Q/DQ model runs in float between a dequantize and a quantize. The onnxruntime backend's CPU build
pads the integer tensor instead (with the zero point). This script quantizes each model once with
trtforge's defaults (the int8_fidelity.py crops), then times the Q/DQ model as quantized against the
same model with its Pads rewritten, and FP32, in alternating rounds (batch 1, one thread), and checks
that the two INT8 models give identical outputs on the held-out crops.

    PYTHONPATH=src python benchmarks/int8_integer_pad.py --models face_detect,hand_landmark
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    import int8_fidelity as fid
    import onnx
    import onnxruntime as ort

    from trtforge.config import BuildConfig, CalibrationConfig
    from trtforge.precision.apply import apply
    from trtforge.precision.quantize import cpu_flavour, integer_pads

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="face_detect,hand_landmark")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=100, help="runs per engine per round")
    ap.add_argument("--work", type=Path, default=Path("/tmp/int8-integer-pad"))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.2f}, "
        f"onnxruntime {ort.__version__}, {args.rounds} rounds x {args.runs} runs, batch 1, 1 thread"
    )
    print("| model | Pads rewritten | FP32 ms | INT8 ms (Pads in float) | INT8 ms (integer Pads) | ratio | outputs |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for key in args.models.split(","):
        spec = fid.SPECS[key]
        fp32 = args.work / f"{key}.onnx"
        fid.fixed(fid.onnx_source(spec, Path("/work/cache/fidelity")), fp32, spec)
        np.savez(args.work / f"{key}-calib.npz", **{spec.input: fid.crops(spec, 64, 0)})
        config = BuildConfig(
            precision="int8",
            calibration=CalibrationConfig(data=args.work / f"{key}-calib.npz"),
            allow_inaccurate=True,
        )
        quantized, _ = apply(onnx.load(str(fp32)), config, cpu_flavour())
        rewritten = onnx.ModelProto()
        rewritten.CopyFrom(quantized)
        names = integer_pads(rewritten)
        held = fid.crops(spec, 16, 1)
        sessions = {}
        for label, model in (("fp32", onnx.load(str(fp32))), ("float", quantized), ("integer", rewritten)):
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            sessions[label] = ort.InferenceSession(
                model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        name = sessions["fp32"].get_inputs()[0].name
        same = all(
            all(
                np.array_equal(a, b)
                for a, b in zip(
                    sessions["float"].run(None, {name: held[i : i + 1]}),
                    sessions["integer"].run(None, {name: held[i : i + 1]}),
                )
            )
            for i in range(len(held))
        )
        times: dict[str, list[float]] = {k: [] for k in sessions}
        x = {name: held[:1]}
        for _ in range(args.rounds):
            for label, session in sessions.items():
                start = time.perf_counter()
                for _ in range(args.runs):
                    session.run(None, x)
                times[label].append((time.perf_counter() - start) * 1000 / args.runs)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"| {key} | {len(names)} | {med['fp32']:.3f} | {med['float']:.3f} | {med['integer']:.3f} | "
            f"{med['integer'] / med['float']:.2f} | {'identical' if same else 'DIFFERENT'} on {len(held)} |",
            flush=True,
        )
    print(f"load now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
