"""ONNX Runtime on a CPU that other work shares: intra-op threads and spin-waiting, quiet and loaded.

Builds FP32 and INT8 engines of one ONNX model with trtforge (ONNX Runtime, and OpenVINO when it
is installed), then times batch-1 latency in alternating rounds, first on the machine as it is
("quiet") and then with one core kept busy by a background process ("loaded"). ONNX Runtime is
timed with every combination of intra-op threads (1, the usable cores) and
``session.intra_op.allow_spinning`` (1: ONNX Runtime's default, worker threads spin while waiting
for work; 0: they sleep). Prints one markdown table: median ms per setting, and loaded / quiet.

    python benchmarks/ort_load.py MODEL.onnx --shape 1x3x320x320 [--rounds 3] [--seconds 1]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _busy() -> None:
    while True:
        pass


def _median_ms(infer: Callable[[], object], seconds: float) -> float:
    infer()
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        infer()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def _engines(model: Path, shape: tuple[int, ...], folder: Path) -> dict[str, Path]:
    import onnx

    from trtforge.build import build
    from trtforge.config import BuildConfig, CalibrationConfig

    name = onnx.load(str(model)).graph.input[0].name
    calib = folder / "calib.npz"
    np.savez(calib, **{name: np.random.default_rng(0).random((32, *shape[1:]), dtype=np.float32)})
    calibration = CalibrationConfig(data=calib, num=32, method="minmax")
    backends = ["onnxruntime"]
    try:
        import openvino  # noqa: F401

        backends.append("openvino")
    except ImportError:
        pass
    out = {}
    for backend in backends:
        for precision in ("fp32", "int8"):
            path = folder / f"{backend}-{precision}.engine"
            build(
                model,
                path,
                BuildConfig(
                    precision=precision, backend=backend, calibration=calibration if precision == "int8" else None
                ),
            )
            out[f"{backend} {precision}"] = path
    return out


def _runners(engines: dict[str, Path], x: np.ndarray, cores: int) -> dict[tuple[str, int, str], Callable[[], object]]:
    import onnxruntime as ort

    from trtforge.build import load

    runners: dict[tuple[str, int, str], Callable[[], object]] = {}
    for label, path in engines.items():
        if label.startswith("onnxruntime"):
            for threads in sorted({1, cores}):
                for spin in ("1", "0"):
                    options = ort.SessionOptions()
                    options.intra_op_num_threads = threads
                    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
                    session = ort.InferenceSession(path.read_bytes(), options, providers=["CPUExecutionProvider"])
                    feeds = {session.get_inputs()[0].name: x}
                    runners[(label, threads, spin)] = lambda s=session, f=feeds: s.run(None, f)
        else:
            runner = load(path, threads=cores)
            feeds = {runner.inputs[0].name: x}
            runners[(label, cores, "-")] = lambda r=runner, f=feeds: r.infer(f)
    return runners


def main() -> None:
    from trtforge._host import usable_cores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--shape", required=True, help="input shape, e.g. 1x3x320x320")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0, help="timing per setting per round")
    args = parser.parse_args()
    shape = tuple(int(d) for d in args.shape.split("x"))
    cores = usable_cores()
    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    with tempfile.TemporaryDirectory() as folder:
        runners = _runners(_engines(args.model, shape, Path(folder)), x, cores)
        results: dict[str, dict[tuple[str, int, str], list[float]]] = {"quiet": {}, "loaded": {}}
        for load in results:
            busy = multiprocessing.Process(target=_busy, daemon=True) if load == "loaded" else None
            if busy is not None:
                busy.start()
            try:
                for _ in range(args.rounds):
                    for key, infer in runners.items():
                        results[load].setdefault(key, []).append(_median_ms(infer, args.seconds))
            finally:
                if busy is not None:
                    busy.terminate()
                    busy.join()
    print(
        f"{args.model.name} {args.shape}, {cores} usable cores, {args.rounds} alternating rounds of "
        f"{args.seconds}s per setting; loaded = one core kept busy by a background process\n"
    )
    print("| engine | intra-op threads | allow_spinning | quiet median ms | loaded median ms | loaded / quiet |")
    print("|---|---|---|---|---|---|")
    for key in runners:
        quiet, loaded = (statistics.median(results[k][key]) for k in ("quiet", "loaded"))
        print(f"| {key[0]} | {key[1]} | {key[2]} | {quiet:.2f} | {loaded:.2f} | {loaded / quiet:.2f} |")


if __name__ == "__main__":
    main()
