"""``build`` and ``load``: the precision stage, then a backend, then the artifact."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import onnx

from trtforge import engine as artifact
from trtforge._files import sha256_bytes
from trtforge.backends.base import Backend, Runner, get_backend
from trtforge.config import BuildConfig, CalibrationConfig, Precision
from trtforge.errors import TrtforgeError
from trtforge.graph import model as onnx_model
from trtforge.graph.model import graph_inputs


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, dynamic_ncols=True,
                disable=None, leave=False)


def quantize_int8(model: onnx.ModelProto, calibration: CalibrationConfig,
                  backend: Backend, config: BuildConfig) -> tuple[onnx.ModelProto, dict[str, object]]:
    """Calibrate ``model`` on the configured data and insert Q/DQ nodes in the backend's flavour."""
    from trtforge.precision.calibrate import calibrate
    from trtforge.precision.data import CalibrationSource, Preprocess
    from trtforge.precision.quantize import quantize

    preprocess = calibration.preprocess
    assert preprocess is None or isinstance(preprocess, Preprocess)
    source = CalibrationSource(
        calibration.data, [t.name for t in graph_inputs(model)], preprocess,
        calibration.num, calibration.batch_size, calibration.seed,
    )
    started = time.perf_counter()
    used = 0

    def advance(n: int) -> None:
        nonlocal used
        used += n
        bar.update(n)

    with _progress(len(source), f"calibrating ({calibration.method})") as bar:
        ranges = calibrate(model, source.batches(), calibration.method, calibration.percentile,
                           progress=advance)
    if source.skipped.files:
        print(f"skipped {len(source.skipped.files)} unreadable file(s) in {calibration.data}", file=sys.stderr)
    flavour = backend.quant_flavour(config)
    quantized = quantize(model, ranges, flavour)
    facts: dict[str, object] = {
        "data": str(calibration.data), "samples": used, "skipped": len(source.skipped.files),
        "method": str(calibration.method), "batch_size": calibration.batch_size,
        "preprocess": preprocess.to_json() if preprocess else None,
        "flavour": flavour.to_json(), "seconds": round(time.perf_counter() - started, 2),
    }
    if calibration.method.value == "percentile":
        facts["percentile"] = calibration.percentile
    return quantized, facts


def build(onnx_path: str | os.PathLike[str], output: str | os.PathLike[str],
          config: BuildConfig | None = None) -> artifact.Manifest:
    """Build an engine from ``onnx_path`` into ``output`` (+ ``output.json``); returns its manifest."""
    config = config or BuildConfig()
    backend = get_backend(config.backend)
    model = onnx_model.load(onnx_path)
    calibration_facts = None
    if config.precision is Precision.INT8:
        assert config.calibration is not None
        model, calibration_facts = quantize_int8(model, config.calibration, backend, config)
    elif config.precision is not Precision.FP32:
        raise TrtforgeError(
            f"--precision {config.precision} is not available yet for backend {backend.name}; use fp32 or int8"
        )
    started = time.perf_counter()
    built = backend.build(model, config)
    manifest = artifact.Manifest(
        backend=backend.name, backend_version=backend.version(), precision=str(config.precision),
        device=backend.device_facts(config.device), inputs=built.inputs, outputs=built.outputs,
        build={"device": config.device, "seconds": round(time.perf_counter() - started, 3), **built.facts},
        calibration=calibration_facts, source_sha256=artifact.source_digest(onnx_path),
        engine_sha256=sha256_bytes(built.data),
    )
    artifact.save(output, built.data, manifest)
    return manifest


def load(engine_path: str | os.PathLike[str], **options: object) -> Runner:
    """Load an engine built by trtforge into a runner, after verifying it against its manifest."""
    data, manifest = artifact.read_verified(engine_path)
    return get_backend(manifest.backend).load(data, manifest, **options)


def load_with_manifest(engine_path: str | os.PathLike[str], **options: object) -> tuple[Runner, artifact.Manifest]:
    data, manifest = artifact.read_verified(engine_path)
    return get_backend(manifest.backend).load(data, manifest, **options), manifest


