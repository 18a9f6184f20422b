"""``build`` and ``load``: the precision stage, then a backend, then the artifact.

The rules every front shares (the CLI, ``exec``, ``deploy`` and library callers) live here, in
:func:`settle`: ``--backend auto`` is resolved once, and options the chosen backend does not have
are refused rather than dropped.
"""

from __future__ import annotations

import dataclasses
import os
import time

from trtforge import engine as artifact
from trtforge._files import sha256_bytes
from trtforge._host import usable_cores
from trtforge.backends.base import Forkable, Runner, auto_backend, get_backend
from trtforge.config import BuildConfig, Precision
from trtforge.errors import TrtforgeError

TENSORRT_FAMILY = ("tensorrt", "tensorrt-rtx")


def settle(config: BuildConfig) -> BuildConfig:
    """``config`` with ``auto`` resolved to a backend, or a user error for options that backend lacks."""
    backend = auto_backend() if config.backend == "auto" else config.backend
    if config.tensorrt is not None and backend not in TENSORRT_FAMILY:
        found = " (--backend auto found no TensorRT with a GPU)" if config.backend == "auto" else ""
        raise TrtforgeError(f"TensorRT builder options were given, but the backend is {backend}{found}, which "
                            "has none; use --backend tensorrt or tensorrt-rtx, or drop them")
    return config if backend == config.backend else dataclasses.replace(config, backend=backend, auto=True)


def build(onnx_path: str | os.PathLike[str], output: str | os.PathLike[str],
          config: BuildConfig | None = None) -> artifact.Manifest:
    """Build an engine from ``onnx_path`` into ``output`` (+ ``output.json``); returns its manifest."""
    from trtforge.backends import choose
    from trtforge.graph.model import load as load_model
    from trtforge.precision import apply as precision

    config = settle(config or BuildConfig())
    _check_outputs(onnx_path, output, config)
    backend = get_backend(config.backend)
    model = load_model(onnx_path)
    config = precision.resolve(config, model)
    flavour = backend.quant_flavour(config) if config.precision is Precision.INT8 else None
    model, facts = precision.apply(model, config, flavour)
    started = time.perf_counter()
    if config.auto and config.backend == "onnxruntime" and config.device == "cpu" and choose.openvino_available():
        backend, built = choose.fastest(model, config)  # both built and timed; the faster kept
    else:
        built = backend.build(model, config)
    built.facts.update({k: v for k, v in facts.items() if k != "calibration" and v})
    manifest = artifact.Manifest(
        backend=backend.name, backend_version=backend.version(), precision=str(config.precision),
        device=backend.device_facts(config.device), inputs=built.inputs, outputs=built.outputs,
        build={"device": config.device, "seconds": round(time.perf_counter() - started, 3), **built.facts},
        calibration=facts["calibration"], source_sha256=artifact.source_digest(onnx_path),
        engine_sha256=sha256_bytes(built.data),
    )
    artifact.save(output, built.data, manifest)
    return manifest


def _check_outputs(onnx_path: str | os.PathLike[str], output: str | os.PathLike[str], config: BuildConfig) -> None:
    """Refuse an output (engine, manifest, caches) that is an input, before any work."""
    from trtforge._files import check_outputs

    calib, trt = config.calibration, config.tensorrt
    cache = calib.cache if calib is not None else None
    outputs: list[tuple[str, str | os.PathLike[str] | None]] = [
        ("-o", output), ("-o (its manifest)", artifact.manifest_path(output)), ("--calib-cache", cache),
        ("--calib-cache (its sidecar)", artifact.manifest_path(cache) if cache else None),
        ("--timing-cache", getattr(trt, "timing_cache", None))]
    loader = calib.loader.rpartition(":")[0] or calib.loader if calib is not None and calib.loader else None
    check_outputs(outputs, [onnx_path, calib.data if calib is not None else None, loader])


def load(engine_path: str | os.PathLike[str], **options: object) -> Runner:
    """Load an engine built by trtforge into a runner, after verifying it against its manifest."""
    return load_with_manifest(engine_path, **options)[0]


def load_with_manifest(engine_path: str | os.PathLike[str], **options: object) -> tuple[Runner, artifact.Manifest]:
    """A runner and the manifest it was verified against (read and hashed once)."""
    data, manifest = artifact.read_verified(engine_path)
    return get_backend(manifest.backend).load(data, manifest, **options), manifest


def cpu_threads(threads: int | None, streams: int) -> int:
    """Intra-op threads per CPU runner: as asked, or the usable cores shared out among the streams."""
    return threads or max(1, usable_cores() // streams)


def load_runners(engine_path: str | os.PathLike[str], streams: int = 1, threads: int | None = None,
                 **options: object) -> tuple[list[Runner], artifact.Manifest]:
    """``streams`` runners of one engine, from one read of the file and one check of its manifest.

    CPU engines: ``threads`` intra-op threads per runner; without it, the usable cores are shared
    out among the streams. GPU runners that can ``fork`` make another context on a stream of its own.
    """
    data, manifest = artifact.read_verified(engine_path)
    backend = get_backend(manifest.backend)
    if manifest.device.get("kind", "cpu") == "cpu":
        options["threads"] = cpu_threads(threads, streams)
    first = backend.load(data, manifest, **options)
    runners: list[Runner] = [first]
    for _ in range(streams - 1):
        runners.append(first.fork() if isinstance(first, Forkable) else backend.load(data, manifest, **options))
    return runners, manifest
