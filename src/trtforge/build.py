"""``build`` and ``load``: the precision stage, then a backend, then the artifact.

The rules every front shares (the CLI, ``exec``, ``deploy`` and library callers) live here, in
:func:`settle`: ``--backend auto`` is resolved once, and options the chosen backend does not have
are refused rather than dropped.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from trtforge import engine as artifact
from trtforge._files import sha256_bytes
from trtforge._host import usable_cores
from trtforge.backends.base import Forkable, Runner, auto_backend, get_backend
from trtforge.config import BuildConfig, Precision, TensorSpec
from trtforge.errors import TrtforgeError

if TYPE_CHECKING:
    import numpy as np

TENSORRT_FAMILY = ("tensorrt", "tensorrt-rtx")


def settle(config: BuildConfig) -> BuildConfig:
    """``config`` with ``auto`` resolved to a backend, or a user error for options that backend lacks."""
    backend = auto_backend() if config.backend == "auto" else config.backend
    if config.tensorrt is not None and backend not in TENSORRT_FAMILY:
        found = " (--backend auto found no TensorRT with a GPU)" if config.backend == "auto" else ""
        raise TrtforgeError(
            f"TensorRT builder options were given, but the backend is {backend}{found}, which "
            "has none; use --backend tensorrt or tensorrt-rtx, or drop them"
        )
    if config.calibration is not None and config.calibration.reduce_range:
        _check_reduce_range(config, backend)
    if config.backend == "auto" and backend == "onnxruntime" and config.device == "cpu" and _openvino_imports():
        return config  # stays auto: build() measures ONNX Runtime and OpenVINO and keeps the faster
    return config if backend == config.backend else dataclasses.replace(config, backend=backend)


def _check_reduce_range(config: BuildConfig, backend: str) -> None:
    """``reduce_range`` (7-bit weights, for an engine that also runs on CPUs without VNNI) is for ONNX Runtime CPU
    engines: an OpenVINO engine is compiled for this CPU's instruction set, TensorRT's INT8 does not saturate."""
    chosen = "auto (which may keep OpenVINO)" if config.backend == "auto" and backend == "onnxruntime" else backend
    if chosen != "onnxruntime" or config.device != "cpu":
        raise TrtforgeError(
            f"--reduce-range makes ONNX Runtime CPU engines that also run on CPUs without VNNI, but this build is "
            f"{chosen} on {config.device}; use --backend onnxruntime --device cpu, or drop --reduce-range "
            "(an OpenVINO engine loads only on the instruction set it was compiled for: build it where it serves)"
        )


CPU_CANDIDATES = ("onnxruntime", "openvino")


def _openvino_imports() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def build(
    onnx_path: str | os.PathLike[str], output: str | os.PathLike[str], config: BuildConfig | None = None
) -> artifact.Manifest:
    """Build an engine from ``onnx_path`` into ``output`` (+ ``output.json``); returns its manifest."""
    from trtforge.graph.model import load as load_model
    from trtforge.precision import apply as precision

    config = settle(config or BuildConfig())
    _check_outputs(onnx_path, output, config)
    if config.backend == "auto":
        return _build_fastest(onnx_path, output, config)
    backend = get_backend(config.backend)
    model = load_model(onnx_path)
    config = precision.resolve(config, model)
    flavour = backend.quant_flavour(config) if config.precision is Precision.INT8 else None
    if config.max_accuracy_drop is not None:
        from trtforge.precision.mixed import apply_budget

        model, facts = apply_budget(model, config, flavour)  # type: ignore[arg-type]
    else:
        model, facts = precision.apply(model, config, flavour)
    started = time.perf_counter()
    built = backend.build(model, config)
    built.facts.update({k: v for k, v in facts.items() if k != "calibration" and v})
    manifest = artifact.Manifest(
        backend=backend.name,
        backend_version=backend.version(),
        precision=str(config.precision),
        device=backend.device_facts(config.device),
        inputs=built.inputs,
        outputs=built.outputs,
        build={"device": config.device, "seconds": round(time.perf_counter() - started, 3), **built.facts},
        calibration=facts["calibration"],
        source_sha256=artifact.source_digest(onnx_path),
        engine_sha256=sha256_bytes(built.data),
    )
    artifact.save(output, built.data, manifest)
    return manifest


def _build_fastest(
    onnx_path: str | os.PathLike[str], output: str | os.PathLike[str], config: BuildConfig
) -> artifact.Manifest:
    """``--backend auto`` on a CPU with OpenVINO: build with each CPU backend, time them in
    alternating rounds at batch 1 on the usable cores, keep the faster, record both medians."""
    import tempfile
    from pathlib import Path

    from trtforge.data.arrays import random_feeds
    from trtforge.graph.model import graph_inputs
    from trtforge.graph.model import load as load_model

    shapes = _auto_shapes(graph_inputs(load_model(onnx_path)), config)  # before any build: a user error is cheap
    with tempfile.TemporaryDirectory(prefix=".trtforge-auto-", dir=Path(output).parent) as scratch:
        paths = {name: Path(scratch) / f"{name}.engine" for name in CPU_CANDIDATES}
        for name, path in paths.items():
            build(onnx_path, path, dataclasses.replace(config, backend=name))
        runners = {name: load(path) for name, path in paths.items()}
        feeds = random_feeds(runners[CPU_CANDIDATES[0]].inputs, shapes, seed=0)
        times: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(_AUTO_ROUNDS):
            for name, runner in runners.items():
                times[name].append(_median_ms(runner, feeds, _AUTO_ROUND_S))
        medians = {name: round(statistics.median(t), 4) for name, t in times.items()}
        chosen = min(medians, key=medians.__getitem__)
        data, manifest = artifact.read_verified(paths[chosen])
    manifest.build["auto"] = {
        "chosen": chosen,
        "median_ms": medians,
        "how": f"{_AUTO_ROUNDS} alternating rounds of {_AUTO_ROUND_S}s per backend, batch 1, "
        "random inputs, each backend's default threads; the median of the round medians",
    }
    artifact.save(output, data, manifest)
    return manifest


def _auto_shapes(specs: list[TensorSpec], config: BuildConfig) -> dict[str, tuple[int, ...]]:
    """Input shapes for timing: batch 1, other dynamic dims from the first profile's opt shapes."""
    from trtforge.data.arrays import concrete_shapes

    given = config.profiles[0].validate(specs).opt if config.profiles else {}
    try:
        shapes = {**concrete_shapes([s for s in specs if s.name not in given]), **given}
    except TrtforgeError as exc:
        raise TrtforgeError(
            f"--backend auto times both CPU engines, but {str(exc).split(';')[0]}; give it with "
            "--opt-shapes NAME:DIMS, or choose --backend onnxruntime or openvino"
        ) from None
    return shapes


_AUTO_ROUNDS = 5
_AUTO_ROUND_S = 0.2


def _median_ms(runner: Runner, feeds: Mapping[str, np.ndarray], seconds: float) -> float:
    runner.infer(feeds)
    times: list[float] = []
    end = time.perf_counter() + seconds
    while not times or time.perf_counter() < end:
        start = time.perf_counter()
        runner.infer(feeds)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def _check_outputs(onnx_path: str | os.PathLike[str], output: str | os.PathLike[str], config: BuildConfig) -> None:
    """Refuse an output (engine, manifest, caches) that is an input, before any work."""
    from trtforge._files import check_outputs

    calib, trt = config.calibration, config.tensorrt
    cache = calib.cache if calib is not None else None
    outputs: list[tuple[str, str | os.PathLike[str] | None]] = [
        ("-o", output),
        ("-o (its manifest)", artifact.manifest_path(output)),
        ("--calib-cache", cache),
        ("--calib-cache (its sidecar)", artifact.manifest_path(cache) if cache else None),
        ("--timing-cache", getattr(trt, "timing_cache", None)),
    ]
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


def load_runners(
    engine_path: str | os.PathLike[str], streams: int = 1, threads: int | None = None, **options: object
) -> tuple[list[Runner], artifact.Manifest]:
    """``streams`` runners of one engine, from one read of the file and one check of its manifest.

    CPU engines: ``threads`` intra-op threads per runner; without it, the usable cores are shared
    out among the streams. Runners that can ``fork`` make the others from the first: GPU runners
    another context on a stream of their own, OpenVINO another infer request of one compiled model
    with ``streams`` streams (ONNX Runtime loads a session per stream).
    """
    data, manifest = artifact.read_verified(engine_path)
    backend = get_backend(manifest.backend)
    if manifest.device.get("kind", "cpu") == "cpu":
        options["threads"] = cpu_threads(threads, streams)
        if streams > 1:
            options["streams"] = streams  # a backend with streams of its own (openvino) runs them in one model
    first = backend.load(data, manifest, **options)
    runners: list[Runner] = [first]
    for _ in range(streams - 1):
        runners.append(first.fork() if isinstance(first, Forkable) else backend.load(data, manifest, **options))
    return runners, manifest
