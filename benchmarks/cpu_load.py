"""ONNX Runtime and OpenVINO on the CPU, quiet and with one core kept busy by a background process.

    python benchmarks/cpu_load.py MODEL.onnx [--rounds 3] [--runs 30]

Alternating rounds: in each round every setting runs ``--runs`` batch-1 queries, quiet, then the same
with a background process spinning on one core. Prints the median ms per setting and condition.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from collections.abc import Callable

import numpy as np


def _spin() -> None:
    while True:
        pass


def _ort(path: str, threads: int, spinning: bool) -> Callable[[dict[str, np.ndarray]], object]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(None, feeds)


def _openvino(path: str, threads: int) -> Callable[[dict[str, np.ndarray]], object]:
    import openvino as ov

    compiled = ov.Core().compile_model(path, "CPU", {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1",
                                                     "INFERENCE_NUM_THREADS": str(threads),
                                                     "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    return lambda feeds: request.infer(feeds)


def _time(run: Callable[[dict[str, np.ndarray]], object], feeds: dict[str, np.ndarray], runs: int) -> float:
    run(feeds)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(feeds)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    import onnxruntime as ort

    session = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    feeds = {i.name: np.random.default_rng(0).random([d if isinstance(d, int) else (1 if k == 0 else 320) for k, d in enumerate(i.shape)],
                                                     dtype=np.float32) for i in session.get_inputs()}
    settings = {
        "ort 2 threads, spinning (ORT default)": _ort(args.model, 2, True),
        "ort 2 threads, no spinning": _ort(args.model, 2, False),
        "ort 1 thread": _ort(args.model, 1, False),
        "openvino 2 threads": _openvino(args.model, 2),
        "openvino 1 thread": _openvino(args.model, 1),
    }
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for condition in ("quiet", "loaded"):
            load = multiprocessing.Process(target=_spin, daemon=True) if condition == "loaded" else None
            if load:
                load.start()
                time.sleep(0.2)
            for name, run in settings.items():
                results.setdefault((name, condition), []).append(_time(run, feeds, args.runs))
            if load:
                load.terminate()
                load.join()
    print("| setting | quiet ms (median of rounds) | loaded ms | loaded / quiet | per-round loaded ms |")
    print("|---|---|---|---|---|")
    for name in settings:
        quiet, loaded = (statistics.median(results[name, c]) for c in ("quiet", "loaded"))
        rounds = ", ".join(f"{v:.1f}" for v in results[name, "loaded"])
        print(f"| {name} | {quiet:.2f} | {loaded:.2f} | {loaded / quiet:.2f} | {rounds} |")


if __name__ == "__main__":
    main()
