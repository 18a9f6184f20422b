"""What ``trtforge exec`` does with a trtexec command line: build, then benchmark.

This is library code: :func:`execute` takes a parsed :class:`ExecRequest`, so the mapping
from trtexec's options to trtforge's stages is testable without a shell.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TextIO

from trtforge.cli.trtexec import ExecRequest
from trtforge.config import BuildConfig, CalibrationConfig, Precision
from trtforge.errors import TrtforgeError


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


def build_config(req: ExecRequest) -> BuildConfig:
    precision = _precision(req)
    calibration = None
    if precision is Precision.INT8:
        if not req.calib_data:
            raise TrtforgeError(
                "--int8 needs calibration data: add --calib-data=DIR (images, with --preprocess=...) "
                "or FILE.npz; trtforge does not build INT8 engines from made-up ranges"
            )
        from trtforge.precision.data import Preprocess

        calibration = CalibrationConfig(
            data=Path(req.calib_data),
            preprocess=Preprocess.parse(req.preprocess) if req.preprocess else None,
        )
    if req.workspace_mib is not None and req.backend == "onnxruntime":
        req.notes.append(f"--workspace={req.workspace_mib:g}: a TensorRT builder pool; "
                         "onnxruntime has none, so it does not change this engine")
    if req.strongly_typed and precision is not Precision.FP32:
        raise TrtforgeError("--stronglyTyped builds the graph's own types; drop --fp16/--bf16/--int8 with it")
    return BuildConfig(precision=precision, backend=req.backend, device=req.device, calibration=calibration)


def execute(req: ExecRequest, out: TextIO) -> int:
    from trtforge.benchmark import BenchSettings, bench
    from trtforge.builder import build, load_with_manifest
    from trtforge.cli.bench import parse_percentiles
    from trtforge.report import performance_summary

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
        print(f"[I] Building {config.precision} engine for {req.onnx} with {config.backend} ({config.device})",
              file=out)
        manifest = build(req.onnx, engine, config)
        for spec in manifest.inputs:
            print(f"[I] Input  {spec.name}: {spec.dtype} {spec.shape_text()}", file=out)
        for spec in manifest.outputs:
            print(f"[I] Output {spec.name}: {spec.dtype} {spec.shape_text()}", file=out)
        print(f"[I] Engine built in {manifest.build['seconds']} s", file=out)
        if req.save_engine:
            print(f"[I] Engine saved to {req.save_engine} (manifest {req.save_engine}.json)", file=out)
    for note in req.notes:
        print(f"[I] {note}", file=out)
    assert engine is not None
    if not req.skip_inference:
        settings = BenchSettings(req.warmup_ms, req.iterations, req.duration_s, parse_percentiles(req.percentiles))
        runner, manifest = load_with_manifest(engine)
        result = bench(runner, settings=settings, context={"backend": manifest.backend,
                                                             "precision": manifest.precision})
        print(performance_summary(result), file=out)
    if scratch is not None:
        scratch.cleanup()
    print("&&&& PASSED trtforge exec", file=out)
    return 0
