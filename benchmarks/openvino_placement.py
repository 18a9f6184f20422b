"""OpenVINO INT8 engines of one model with the openvino flavour's placement rules switched off one at a
time, timed against OpenVINO+NNCF INT8 in interleaved blocks, batch 1, one process.

    python benchmarks/openvino_placement.py MODEL_B1.onnx CALIB.npy NNCF.xml [--rounds 8]
        [--order before,adds,pad,now,nncf] [--work DIR] [--float-ops OP,...]

Engines: ``before`` (Q/DQ on a residual Add's skip input only, none on Pad inputs nor pool outputs: the
flavour before issue 17's placement passes), ``adds`` (both Add inputs), ``pad`` (and Pad inputs: the
flavour before the classifier-tail rule), ``now`` (and GlobalAveragePool outputs: the flavour as it is), and
``nncf`` (the IR from benchmarks/nncf_int8.py, OpenVINO's defaults). Each round runs 8 blocks of 5
queries per engine, the engines interleaved and the order rotating from block to block, so every engine
sees the same load; one median per engine per round. ``--order`` is also the order the engines are
compiled in: on this project's shared 2-core VM the first compiled model ran up to ~5% slower than the
same blob compiled later, so compare orders before reading a difference that small.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

VARIANTS: dict[str, dict[str, object]] = {
    "before": {"skip_only_adds": True, "extra_op_types": (), "output_op_types": ()},
    "adds": {"extra_op_types": (), "output_op_types": ()},
    "pad": {"output_op_types": ()},
    "now": {},
}


def build(model: Path, calib: Path, work: Path, float_ops: tuple[str, ...], wanted: set[str]) -> dict[str, Path]:
    import trtforge
    from trtforge.backends.openvino import OpenVinoBackend
    from trtforge.config import CalibrationConfig
    from trtforge.precision.quantize import QuantFlavour

    original = OpenVinoBackend.quant_flavour
    count = len(np.load(calib, mmap_mode="r"))
    calibration = CalibrationConfig(data=calib, num=count, method="minmax", cache=work / "ranges.cache")
    out = {}
    for name, changes in VARIANTS.items():
        if name not in wanted:
            continue
        out[name] = work / f"openvino-int8-{name}.engine"
        if out[name].exists():
            continue

        def flavour(self: OpenVinoBackend, config: trtforge.BuildConfig, ch: dict = changes) -> QuantFlavour:
            return dataclasses.replace(original(self, config), **ch)

        OpenVinoBackend.quant_flavour = flavour  # type: ignore[method-assign]
        config = trtforge.BuildConfig(
            precision="int8",
            backend="openvino",
            calibration=calibration,
            exclude_op_types=float_ops,
            allow_inaccurate=True,  # speed only here; cpu_peers.py measures fidelity
        )
        trtforge.build(model, out[name], config)
    OpenVinoBackend.quant_flavour = original  # type: ignore[method-assign]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("calib", type=Path)
    parser.add_argument("nncf", type=Path)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--order", default="before,adds,pad,now,nncf")
    parser.add_argument("--work", type=Path, default=Path("/tmp/openvino_placement"))
    parser.add_argument("--float-ops", default="")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    engines = build(
        args.model, args.calib, args.work, tuple(t for t in args.float_ops.split(",") if t), set(args.order.split(","))
    )

    import openvino as ov

    import trtforge

    runs: dict[str, Callable[[np.ndarray], object]] = {}
    for name in args.order.split(","):
        if name == "nncf":
            request = ov.Core().compile_model(str(args.nncf), "CPU").create_infer_request()
            runs[name] = request.infer
        else:
            runner = trtforge.load(engines[name])
            runs[name] = (lambda r: lambda x: r.infer({r.inputs[0].name: x}))(runner)
    x = np.load(args.calib, mmap_mode="r")[:1].astype(np.float32)
    for run in runs.values():
        run(x)
    names = list(runs)
    times: dict[str, list[float]] = {n: [] for n in names}
    loads = []
    for r in range(args.rounds):
        loads.append(round(os.getloadavg()[0], 1))
        block: dict[str, list[float]] = {n: [] for n in names}
        for b in range(8):
            for name in names[(r + b) % len(names) :] + names[: (r + b) % len(names)]:
                for _ in range(5):
                    start = time.perf_counter()
                    runs[name](x)
                    block[name].append((time.perf_counter() - start) * 1e3)
        for name in names:
            times[name].append(statistics.median(block[name]))
    print(f"compile order {names}; 1-min load average per round {loads}")
    for name in names:
        ratios = [a / b for a, b in zip(times[name], times["nncf"])]
        print(
            f"{name}: median {statistics.median(times[name]):.2f} ms; / nncf per round "
            f"{', '.join(f'{v:.2f}' for v in ratios)} (median {statistics.median(ratios):.3f}, "
            f"{sum(v <= 1 for v in ratios)} of {args.rounds} <= 1)"
        )
    print(json.dumps({"times_ms": times, "load1": loads}))


if __name__ == "__main__":
    main()
