"""What ``trtforge exec`` does with a trtexec command line: build, then benchmark.

This is library code: :func:`execute` takes a parsed :class:`ExecRequest`, so the mapping
from trtexec's options to trtforge's stages is testable without a shell.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np

from trtforge.cli.parse import mem_pools, percentiles
from trtforge.cli.trtexec.flags import ExecRequest
from trtforge.config import BuildConfig, CalibrationConfig, Precision, TensorRTOptions
from trtforge.errors import TrtforgeError
from trtforge.graph.ranges import ShapeRange

if TYPE_CHECKING:
    from trtforge.bench import BenchSettings


def _precision(req: ExecRequest) -> Precision:
    asked = req.precisions
    if "best" in asked:
        asked = asked - {"best"} | ({"int8"} if (req.calib_data or req.calib_cache) else {"fp16"})
        req.notes.append(
            "--best: trtforge builds one precision per engine; chose "
            + ("INT8 (calibration was given)" if "int8" in asked else "FP16 (no calibration given)")
        )
    if "int8" in asked:
        if "fp16" in asked or "bf16" in asked:
            req.notes.append("--int8 with --fp16/--bf16: layers left out of Q/DQ stay FP32 in the graph")
        return Precision.INT8
    if "fp16" in asked and "bf16" in asked:
        raise TrtforgeError("--fp16 and --bf16 together: pick one")
    if "fp16" in asked:
        return Precision.FP16
    if "bf16" in asked:
        return Precision.BF16
    return Precision.FP32


_TENSORRT_FAMILY = ("tensorrt", "tensorrt-rtx")


def _mem_pools(req: ExecRequest) -> tuple[tuple[str, int], ...]:
    return mem_pools(req.mem_pools, "--memPoolSize", req.workspace_mib)


def _profiles(req: ExecRequest) -> tuple[ShapeRange, ...]:
    if req.min_shapes or req.opt_shapes or req.max_shapes:
        if not (req.min_shapes and req.opt_shapes and req.max_shapes):
            raise TrtforgeError("give --minShapes, --optShapes and --maxShapes together (or only --shapes)")
        return (ShapeRange.parse(req.min_shapes, req.opt_shapes, req.max_shapes),)
    if req.shapes:
        return (ShapeRange.fixed(req.shapes),)  # trtexec: --shapes alone builds min = opt = max
    return ()


def build_config(req: ExecRequest) -> BuildConfig:
    from trtforge.precision.ioformat import parse_formats

    precision = _precision(req)
    if req.strongly_typed and precision is not Precision.FP32:
        raise TrtforgeError("--stronglyTyped builds the graph's own types; drop --fp16/--bf16/--int8 with it")
    calibration = None
    if precision is Precision.INT8:
        if not (req.calib_data or req.calib_cache):
            raise TrtforgeError(
                "--int8 needs calibration: add --calib-data=DIR (images, with --preprocess=...) or FILE.npz, "
                "or --calib=CACHE; trtforge does not build INT8 engines from made-up ranges"
            )
        from trtforge.data.preprocess import Preprocess

        calibration = CalibrationConfig(
            data=Path(req.calib_data) if req.calib_data else None,
            preprocess=Preprocess.parse(req.preprocess) if req.preprocess else None,
            cache=Path(req.calib_cache) if req.calib_cache else None,
            equalize=req.equalize,
            reduce_range=req.reduce_range,
        )
    elif req.calib_cache or req.calib_data:
        req.notes.append("--calib/--calib-data given without --int8 or --best: no calibration was done")
    if req.reduce_range and calibration is None:
        req.notes.append("--reduce-range given without INT8: no weights were quantized")
    tensorrt = None
    pools = _mem_pools(req)
    if req.backend in _TENSORRT_FAMILY:
        workspace = dict(pools).get("workspace")
        tensorrt = TensorRTOptions(
            workspace_mib=workspace >> 20 if workspace else None,
            mem_pools=pools,
            timing_cache=Path(req.timing_cache) if req.timing_cache else None,
            opt_level=req.opt_level,
            profiling_verbosity=req.profiling_verbosity
            or ("detailed" if (req.export_layer_info or req.dump_profile) else None),
            plugins=tuple(Path(p) for p in req.plugins),
            hardware_compat=req.hardware_compat,
            version_compat=req.version_compat,
        )
    else:
        for given, flag in (
            (pools, "--workspace/--memPoolSize"),
            (req.timing_cache, "--timingCacheFile"),
            (req.opt_level is not None, "--builderOptimizationLevel"),
            (req.plugins, "--plugins"),
            (req.hardware_compat, "--hardwareCompatibilityLevel"),
            (req.version_compat, "--versionCompatible"),
            (req.profiling_verbosity, "--profilingVerbosity"),
        ):
            if given:
                req.notes.append(
                    f"{flag}: a TensorRT builder setting; {req.backend} has none, so it does not change this engine"
                )
    profiles = _profiles(req)
    if profiles and req.backend not in _TENSORRT_FAMILY:
        req.notes.append(
            f"shape profiles: {req.backend} runs any shape in range without profiles; "
            "they are checked against the model and recorded"
        )
    return BuildConfig(
        precision=precision,
        backend=req.backend,
        device=req.device,
        calibration=calibration,
        input_formats=parse_formats(req.input_formats),
        output_formats=parse_formats(req.output_formats),
        profiles=profiles,
        tensorrt=tensorrt,
    )


_GPU_FLAGS = (
    ("cuda_graph", "--useCudaGraph"),
    ("no_data_transfers", "--noDataTransfers"),
    ("spin_wait", "--useSpinWait"),
)


def bench_settings(req: ExecRequest, on_gpu: bool) -> BenchSettings:
    """trtexec's inference flags as BenchSettings; GPU-only ones on a CPU engine become notes."""
    from trtforge.bench import BenchSettings

    gpu = {attr: getattr(req, attr) for attr, _ in _GPU_FLAGS}
    if not on_gpu:
        for attr, flag in _GPU_FLAGS:
            if gpu[attr]:
                req.notes.append(
                    f"{flag}: the engine runs on the CPU, which has no CUDA graph, host-device "
                    "copies or event waits; timed without it"
                )
                gpu[attr] = False
    return BenchSettings(
        req.warmup_ms,
        req.iterations,
        req.duration_s,
        percentiles(req.percentiles),
        streams=req.streams,
        cuda_graph=gpu["cuda_graph"],
        data_transfers=not gpu["no_data_transfers"],
        spin_wait=gpu["spin_wait"],
        avg_runs=req.avg_runs,
    )


def export_output(outputs: Mapping[str, np.ndarray], path: str) -> None:
    """trtexec's ``--exportOutput`` file: ``[{"name", "dimensions", "values"}, ...]``."""
    import json

    from trtforge._files import write_text_atomic

    entries = [
        {
            "name": name,
            "dimensions": "x".join(str(d) for d in np.shape(v)),
            "values": np.asarray(v, dtype=np.float64).ravel().tolist(),
        }
        for name, v in outputs.items()
    ]
    write_text_atomic(path, json.dumps(entries, indent=1) + "\n")


def _inference(req: ExecRequest, engine: str, out: TextIO) -> None:
    from trtforge.bench import bench
    from trtforge.bench.report import performance_summary, write_times
    from trtforge.build import load_runners
    from trtforge.data.arrays import concrete_shapes, load_trtexec_inputs, random_feeds

    runners, manifest = load_runners(engine, max(1, req.streams))  # one read of the manifest, one hash
    runner = runners[0]
    settings = bench_settings(req, on_gpu=str(manifest.device.get("kind", "cpu")) != "cpu")
    if req.dump_profile:
        req.notes.append(
            f"--dumpProfile: per-layer profiles need a TensorRT engine; {manifest.backend} "
            "gives none, so none is printed"
        )
    shapes = concrete_shapes(runner.inputs, req.shapes)
    feed_notes: list[str] = []
    if req.load_inputs:
        feeds = load_trtexec_inputs(req.load_inputs, runner.inputs, shapes, feed_notes)
    else:
        feeds = random_feeds(runner.inputs, shapes)
    for note in req.notes + feed_notes:
        print(f"[I] {note}", file=out)
    req.notes.clear()
    if req.export_output:
        export_output(runner.infer(feeds), req.export_output)
        print(f"[I] Outputs written to {req.export_output}", file=out)
    context = {
        "engine": engine,
        "backend": manifest.backend,
        "precision": manifest.precision,
        "device": manifest.device.get("kind", "cpu"),
    }
    result = bench(runners, feeds, settings, context=context)
    print(performance_summary(result, verbose=req.verbose), file=out)
    if req.export_times:
        write_times(result, req.export_times)
        print(f"[I] Per-query times written to {req.export_times}", file=out)


def _export_layer_info(req: ExecRequest, engine: str) -> None:
    """``--exportLayerInfo``: the engine inspector's JSON, where the backend has one."""
    from trtforge._files import write_text_atomic
    from trtforge.engine import describe as describe_engine

    details = describe_engine(engine)
    backend = details.get("backend")
    layers = backend.get("layers") if isinstance(backend, dict) else None
    if isinstance(layers, str) and req.export_layer_info:
        write_text_atomic(req.export_layer_info, layers if layers.endswith("\n") else layers + "\n")
        req.notes.append(f"Layer information written to {req.export_layer_info}")
        return
    why = backend.get("note") if isinstance(backend, dict) and backend.get("note") else "no layer information"
    name = details["manifest"]["backend"]  # type: ignore[index]
    req.notes.append(f"--exportLayerInfo: {name} gives {why}; nothing was written")


def execute(req: ExecRequest, out: TextIO) -> int:
    from trtforge._files import check_outputs
    from trtforge.build import build

    check_outputs(
        [
            ("--saveEngine", req.save_engine),
            ("--exportTimes", req.export_times),
            ("--exportOutput", req.export_output),
            ("--exportLayerInfo", req.export_layer_info),
        ],
        [req.onnx, req.load_engine, req.load_inputs, req.calib_data, *req.plugins],
    )
    print("&&&& RUNNING trtforge exec", file=out)
    engine = req.load_engine
    scratch = None
    if req.onnx:
        config = build_config(req)
        if req.save_engine:
            engine = req.save_engine
        else:
            scratch = tempfile.TemporaryDirectory(prefix="trtforge-exec-")
            engine = os.path.join(scratch.name, "model.engine")
        print(
            f"[I] Building {config.precision} engine for {req.onnx} with {config.backend} ({config.device})", file=out
        )
        manifest = build(req.onnx, engine, config)
        for spec in manifest.inputs:
            print(f"[I] Input  {spec.name}: {spec.dtype} {spec.shape_text()}", file=out)
        for spec in manifest.outputs:
            print(f"[I] Output {spec.name}: {spec.dtype} {spec.shape_text()}", file=out)
        print(f"[I] Engine built in {manifest.build['seconds']} s", file=out)
        if req.save_engine:
            print(f"[I] Engine saved to {req.save_engine} (manifest {req.save_engine}.json)", file=out)
    assert engine is not None
    if req.export_layer_info:
        _export_layer_info(req, engine)
    try:
        if req.skip_inference:
            for note in req.notes:
                print(f"[I] {note}", file=out)
        else:
            _inference(req, engine, out)
    finally:
        if scratch is not None:
            scratch.cleanup()
    print("&&&& PASSED trtforge exec", file=out)
    return 0
