"""Where ResNet-50's batch-1 GPU time goes on the CUDA provider, and how much it moves between sessions.

A diagnostic, not a goal check (gpu_resnet50.py checks the goals). It prints:
  1. the spread of GPU compute across fresh sessions with the same provider options
     (cuDNN's exhaustive search runs once per session);
  2. the optimised graph's op counts per layout (what ORT fused);
  3. a kernel profile (CUPTI through torch.profiler): kernels per query, their summed time,
     and the top kernels;
  4. extra provider-option candidates;
  5. naive ``session.run`` on the FP32 export, in rounds.

Everything here runs in one process after the build, so every session is in the slowed state that
gpu_session_order.py and gpu_session_free.py found (a second CUDA-provider session in a process
slows them all by ~12%); compare its numbers with each other, not with the engine's.

    python benchmarks/gpu_b1_probe.py --out DIR
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpu_resnet50 import export, fp16_engine, log, naive_session  # noqa: E402


def runner_for(data: bytes, extra: dict[str, str], graph: bool = True):
    from trtforge.backends.onnxruntime import OrtCudaRunner, cuda_provider_options

    return OrtCudaRunner(data, {**cuda_provider_options(cuda_graph=graph), **extra}, cuda_graph=graph)


def op_counts(data: bytes, extra: dict[str, str], work: Path) -> dict[str, int]:
    import onnx
    import onnxruntime as ort

    from trtforge.backends.onnxruntime import cuda_provider_options

    path = work / f"opt-{len(list(work.glob('opt-*')))}.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(path)
    options.log_severity_level = 3
    ort.InferenceSession(
        data, options, providers=[("CUDAExecutionProvider", {**cuda_provider_options(cuda_graph=False), **extra})]
    )
    model = onnx.load(path)
    return dict(collections.Counter(f"{n.domain or 'ai.onnx'}:{n.op_type}" for n in model.graph.node))


def kernel_profile(runner, queries: int) -> dict[str, object]:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from trtforge.data.arrays import random_inputs

    runner.set_inputs(random_inputs(runner.inputs, seed=0))
    runner.h2d()
    for _ in range(5):
        runner.enqueue()
    runner.stream.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(queries):
            runner.enqueue()
        runner.stream.synchronize()
        torch.cuda.synchronize()
    trace = Path(tempfile.mkdtemp()) / "trace.json"
    prof.export_chrome_trace(str(trace))
    events = json.loads(trace.read_text()).get("traceEvents", [])
    kernels = [e for e in events if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset") and "dur" in e]
    by_name: dict[str, list[float]] = collections.defaultdict(list)
    for e in kernels:
        by_name[e["name"]].append(float(e["dur"]))
    total_us = sum(sum(v) for v in by_name.values())
    span_us = (max(e["ts"] + e["dur"] for e in kernels) - min(e["ts"] for e in kernels)) if kernels else 0.0
    top = sorted(((sum(v) / queries, len(v) / queries, k[:110]) for k, v in by_name.items()), reverse=True)[:25]
    return {
        "kernels_per_query": len(kernels) / queries,
        "kernel_us_per_query": total_us / queries,
        "span_us_per_query": span_us / queries,
        "top": [{"us_per_query": round(t, 2), "count_per_query": c, "name": n} for t, c, n in top],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sessions", type=int, default=5)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, object] = {}

    def save() -> None:
        (args.out / "probe.json").write_text(json.dumps(report, indent=2, default=str) + "\n")

    import onnxruntime
    import torch
    import torchvision

    from trtforge.backends.onnxruntime import _time_compute

    onnxruntime.set_default_logger_severity(3)
    work = Path(tempfile.mkdtemp())
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    fp32 = work / "resnet50-b1.onnx"
    export(model, 1, fp32)
    engine, cast = fp16_engine(fp32, work, 1)
    data = engine.read_bytes()
    from trtforge.build import load_with_manifest

    _, manifest = load_with_manifest(engine)
    report["build"] = {
        "provider_options": manifest.build.get("provider_options"),
        "tuning_compute_ms": manifest.build.get("tuning_compute_ms"),
    }
    log(f"build: {report['build']}")
    save()

    # 1. Spread across sessions, each timed twice (interleaved) to tell session from clock.
    runners = [runner_for(data, {"prefer_nhwc": "1"}) for _ in range(args.sessions)]
    spread = [[round(_time_compute(r, 300), 4) for r in runners] for _ in range(2)]
    report["session_spread_nhwc"] = spread
    log(f"session spread (nhwc, graph; two rounds): {spread}")
    save()
    del runners

    # 2. Optimised graphs.
    for label, extra in (
        ("nhwc", {"prefer_nhwc": "1"}),
        ("nchw", {"prefer_nhwc": "0"}),
        ("nhwc+fuse", {"prefer_nhwc": "1", "fuse_conv_bias": "1"}),
    ):
        try:
            report[f"ops_{label}"] = op_counts(data, extra, work)
        except Exception as exc:
            report[f"ops_{label}"] = f"failed: {exc}"
        log(f"ops {label}: {report[f'ops_{label}']}")
    save()

    # 3. Kernel profiles.
    for label, extra, graph in (
        ("nhwc eager", {"prefer_nhwc": "1"}, False),
        ("nhwc graph", {"prefer_nhwc": "1"}, True),
        ("nhwc+fuse eager", {"prefer_nhwc": "1", "fuse_conv_bias": "1"}, False),
    ):
        try:
            report[f"profile_{label}"] = prof = kernel_profile(runner_for(data, extra, graph), 20)
            log(
                f"profile {label}: {prof['kernels_per_query']} kernels/query, {prof['kernel_us_per_query']:.1f} us "
                f"summed, span {prof['span_us_per_query']:.1f} us/query"
            )
            for row in prof["top"][:12]:  # type: ignore[index]
                log(f"    {row}")
        except Exception as exc:
            report[f"profile_{label}"] = f"failed: {exc}"
            log(f"profile {label} failed: {exc}")
        save()

    # 4. More candidates (graph on).
    extras = {
        "nhwc": {"prefer_nhwc": "1"},
        "nhwc DEFAULT search": {"prefer_nhwc": "1", "cudnn_conv_algo_search": "DEFAULT"},
        "nhwc+fuse": {"prefer_nhwc": "1", "fuse_conv_bias": "1"},
        "nhwc+fuse HEURISTIC": {"prefer_nhwc": "1", "fuse_conv_bias": "1", "cudnn_conv_algo_search": "HEURISTIC"},
        "nchw+fuse": {"prefer_nhwc": "0", "fuse_conv_bias": "1"},
        "nhwc tf32=0": {"prefer_nhwc": "1", "use_tf32": "0"},
        "nhwc unified stream": {"prefer_nhwc": "1", "use_ep_level_unified_stream": "1"},
    }
    timings = {}
    for label, extra in extras.items():
        try:
            timings[label] = round(_time_compute(runner_for(data, extra), 300), 4)
        except Exception as exc:
            timings[label] = f"failed: {str(exc)[:160]}"
        log(f"candidate {label}: {timings[label]}")
    report["candidates"] = timings
    save()

    # 5. Naive session.run, FP32 export and FP16 model, in rounds.
    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)
    naive = {"fp32": [], "fp16": []}
    for _ in range(3):
        naive["fp32"].append(round(naive_session(fp32, x, 500)["median"], 4))
        naive["fp16"].append(round(naive_session(engine, x, 500)["median"], 4))
    report["naive_medians_ms"] = naive
    log(f"naive medians: {naive}")
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
