"""``--backend auto`` on the CPU: build the model with ONNX Runtime and OpenVINO, time both, keep the faster.

Both engines come from the same ONNX after the precision stage (one calibration; the Q/DQ flavour is
ONNX Runtime's, which OpenVINO runs too). Timing is short and alternating: rounds of a few batch-1
queries on each engine in turn, so a burst of other work on a shared machine hits both; the median
per engine decides. Both times are recorded in the manifest.
"""

from __future__ import annotations

import importlib.util
import statistics
import time

import onnx

from trtforge.backends.base import Backend, BuiltEngine, Runner, get_backend
from trtforge.config import BuildConfig
from trtforge.engine import Manifest

ROUNDS, RUNS = 5, 5


def openvino_available() -> bool:
    return importlib.util.find_spec("openvino") is not None


def _runner(backend: Backend, built: BuiltEngine, config: BuildConfig) -> Runner:
    manifest = Manifest(backend=backend.name, backend_version="", precision=str(config.precision),
                        device={"kind": "cpu"}, inputs=built.inputs, outputs=built.outputs,
                        build=dict(built.facts), source_sha256="", engine_sha256="")
    return backend.load(built.data, manifest)


def fastest(model: onnx.ModelProto, config: BuildConfig) -> tuple[Backend, BuiltEngine]:
    """The faster of the onnxruntime and openvino engines of ``model``; its facts hold both times."""
    from trtforge.data.arrays import random_inputs

    backends = [get_backend("onnxruntime"), get_backend("openvino")]
    built = [b.build(model, config) for b in backends]
    runners = [_runner(b, e, config) for b, e in zip(backends, built)]
    feeds = random_inputs(runners[0].inputs, seed=0)
    for runner in runners:
        runner.infer(feeds)  # warm-up
    times: list[list[float]] = [[] for _ in runners]
    for _ in range(ROUNDS):
        for runner, kept in zip(runners, times):
            for _ in range(RUNS):
                start = time.perf_counter()
                runner.infer(feeds)
                kept.append((time.perf_counter() - start) * 1e3)
    medians = [statistics.median(t) for t in times]
    best = medians.index(min(medians))
    built[best].facts["auto"] = {
        "chosen": backends[best].name, "median_ms": {b.name: round(m, 4) for b, m in zip(backends, medians)},
        "timing": f"{ROUNDS} alternating rounds of {RUNS} batch-1 queries per engine, at build time"}
    return backends[best], built[best]
