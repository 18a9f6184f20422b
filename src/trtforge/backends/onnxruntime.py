"""ONNX Runtime backend: the embedded default, CPU everywhere, and NVIDIA GPUs through the
CUDA execution provider.

The engine is the ONNX model after the precision stage (Q/DQ or casts included),
serialised; loading it creates an ``InferenceSession`` with full graph optimisation.
On ``--device cuda`` the build also chooses the CUDA provider options (timed on the GPU)
and records them in the manifest; the runner then binds device buffers (IO binding) so
host-to-device copies, compute and device-to-host copies are separate steps on one stream.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnx

from trtforge._host import usable_cores
from trtforge.backends.base import BuiltEngine, StagedRunner
from trtforge.config import BuildConfig, Precision, TensorSpec
from trtforge.engine import Manifest, cpu_facts
from trtforge.errors import TrtforgeError
from trtforge.precision.quantize import VNNI_FLAGS, QuantFlavour, cpu_flags, cpu_flavour, has_vnni, integer_pads

_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
# Session config entries of every CPU engine, recorded in its manifest and applied at load.
# Intra-op worker threads sleep rather than spin while they wait for work: on a CPU shared with
# other work, spinning threads take the cores the busy ones need (benchmarks/ort_load.py, issue 17).
CPU_SESSION_CONFIG: Mapping[str, str] = {"session.intra_op.allow_spinning": "0"}


def _specs(args: list) -> list[TensorSpec]:  # list[onnxruntime.NodeArg]
    kinds = {
        "tensor(float)": "float32",
        "tensor(float16)": "float16",
        "tensor(double)": "float64",
        "tensor(int64)": "int64",
        "tensor(int32)": "int32",
        "tensor(int8)": "int8",
        "tensor(uint8)": "uint8",
        "tensor(bool)": "bool",
        "tensor(bfloat16)": "bfloat16",
    }
    return [
        TensorSpec(a.name, kinds.get(a.type, a.type), tuple(d if isinstance(d, int) else str(d) for d in a.shape))
        for a in args
    ]


class OnnxRuntimeRunner:
    def __init__(self, session) -> None:  # session: onnxruntime.InferenceSession
        self.session = session
        self.inputs = _specs(session.get_inputs())
        self.outputs = _specs(session.get_outputs())
        self._output_names = [o.name for o in self.outputs]

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self.session.run(self._output_names, dict(feeds))
        return dict(zip(self._output_names, results))


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def version(self) -> str:
        import onnxruntime

        return onnxruntime.__version__

    def device_facts(self, device: str) -> dict[str, object]:
        if device == "cuda":
            from trtforge.backends import cuda

            return cuda.device_facts(0)
        return cpu_facts()

    def quant_flavour(self, config: BuildConfig) -> QuantFlavour:
        return cpu_flavour(reduce_range=config.calibration is not None and config.calibration.reduce_range)

    def _session(
        self, data: bytes, device: str, threads: int | None = None, config: Mapping[str, object] | None = None
    ):
        import onnxruntime as ort

        provider = _PROVIDERS.get(device)
        if provider is None:
            raise TrtforgeError(f"unknown device {device!r} for onnxruntime; expected: {', '.join(_PROVIDERS)}")
        if provider not in ort.get_available_providers():
            raise TrtforgeError(
                f"this onnxruntime has no {provider}; for --device cuda install onnxruntime-gpu "
                "(pip install 'trtforge[gpu]') on a machine with an NVIDIA GPU"
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Fatal only: a failed run raises, and trtforge reports that exception in one line;
        # ORT's own coloured copy of it on stderr would be a second, garbled report.
        options.log_severity_level = 4
        if threads:
            options.intra_op_num_threads = threads
        for key, value in (config or {}).items():
            options.add_session_config_entry(key, str(value))
        return ort.InferenceSession(data, options, providers=[provider])

    def build(self, model: onnx.ModelProto, config: BuildConfig) -> BuiltEngine:
        for fmt in config.input_formats + config.output_formats:
            if not fmt.linear:
                raise TrtforgeError(
                    f"IO format {fmt}: onnxruntime reads and writes linear (chw) tensors only; "
                    f"use {fmt.dtype_word}:chw, or build with --backend tensorrt/tensorrt-rtx "
                    f"for {'+'.join(fmt.formats)}"
                )
        pads: list[str] = []
        if config.device == "cpu" and any(n.op_type == "Pad" for n in model.graph.node):
            model = _copy(model)
            pads = integer_pads(model)
        data = model.SerializeToString()
        profiles = _checked_profiles(model, config)
        if config.device == "cuda":
            built = build_cuda(data)
            built.facts.update(profiles)
            return built
        try:
            session = self._session(data, config.device, config=CPU_SESSION_CONFIG)
        except TrtforgeError:
            raise
        except Exception as exc:
            first = str(exc).splitlines()[0]
            if config.precision is Precision.BF16:
                raise TrtforgeError(
                    f"onnxruntime cannot run this BF16 graph ({first}); ONNX Runtime has few BF16 "
                    "kernels: build bf16 with --backend tensorrt-rtx or tensorrt, "
                    "or use fp16 here"
                ) from None
            raise TrtforgeError(f"onnxruntime cannot load the model: {first}") from None
        if config.precision in (Precision.FP16, Precision.BF16) and config.device == "cpu":
            warnings.warn(
                f"{config.precision} on ONNX Runtime's CPU provider: it has no fast {config.precision} "
                "kernels, so this engine is likely slower than FP32 (bench shows by how much); "
                "it is built as asked",
                stacklevel=2,
            )
        runner = OnnxRuntimeRunner(session)
        return BuiltEngine(
            data,
            runner.inputs,
            runner.outputs,
            {
                "providers": session.get_providers(),
                "graph_optimization_level": "ORT_ENABLE_ALL",
                "runtime_settings": dict(CPU_SESSION_CONFIG),
                **({"integer_pads": pads} if pads else {}),
                **profiles,
            },
        )

    def load(self, data: bytes, manifest: Manifest, **options: object) -> OnnxRuntimeRunner | OrtCudaRunner:
        threads = options.get("threads")
        device = str(options.get("device") or manifest.device.get("kind", "cpu"))
        if device == "cuda":
            recorded = manifest.build.get("provider_options")
            chosen = dict(recorded) if isinstance(recorded, dict) else cuda_provider_options()
            graph = options.get("cuda_graph")
            return OrtCudaRunner(data, chosen, None if graph is None else bool(graph))
        if device == "cpu":
            check_int8_weights_fit_cpu(manifest)
        recorded = manifest.build.get("runtime_settings")  # engines before issue 17: ONNX Runtime's defaults
        config = recorded if isinstance(recorded, dict) else None
        try:
            session = self._session(data, device, int(str(threads)) if threads else None, config)
        except TrtforgeError:
            raise
        except Exception as exc:  # bytes that match the manifest's sha but are no model
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise TrtforgeError(
                f"onnxruntime cannot load this engine ({first}); rebuild it with trtforge build"
            ) from None
        return OnnxRuntimeRunner(session)


def full_8bit_weights(manifest: Manifest) -> bool:
    """Whether an INT8 engine has signed weights using all 8 bits, from its manifest: the Q/DQ flavour's
    ``reduce_range`` (False: 8-bit), or for a manifest without one, VNNI among the building CPU's flags.
    Unsigned (U8U8) weights do not count: ONNX Runtime's U8U8 kernels widen to 16 bits before they add."""
    if manifest.precision != "int8":
        return False
    calibration = manifest.calibration or {}
    flavour = calibration.get("flavour")
    if isinstance(flavour, dict) and flavour.get("weight_type") == "uint8":
        return False
    if isinstance(flavour, dict) and "reduce_range" in flavour:
        return not flavour["reduce_range"]
    built_flags = manifest.device.get("flags")
    return has_vnni(frozenset(built_flags)) if isinstance(built_flags, list) else False


def vnni_only_note(manifest: Manifest) -> str | None:
    """The line that says where an ONNX Runtime CPU INT8 engine with 8-bit weights runs, or None for any other
    engine: ``build`` prints it, ``deploy`` adds it to the engine's notes, ``export triton`` warns with it."""
    if manifest.backend != "onnxruntime" or manifest.device.get("kind", "cpu") != "cpu":
        return None
    if not full_8bit_weights(manifest):
        return None
    return (
        f"8-bit weights: this engine loads on CPUs with VNNI only ({', '.join(VNNI_FLAGS)}); "
        "for one without, build there or with --reduce-range (7-bit weights)"
    )


def saturates_8bit_weights(flags: frozenset[str] | None = None, machine: str | None = None) -> bool:
    """Whether ONNX Runtime's U8S8 kernels saturate on 8-bit weights here: an x86-64 CPU whose flags (as
    this process's CPUID shows them) have no VNNI. Not on Arm (the saturating ``vpmaddubsw`` is x86's; not
    measured here), nor where the flags cannot be read (no ``/proc/cpuinfo``): trtforge cannot tell there, and
    builds 7-bit weights itself."""
    import platform

    flags = cpu_flags() if flags is None else flags
    machine = (machine or platform.machine()).lower()
    return machine in ("x86_64", "amd64") and bool(flags) and not has_vnni(flags)


def check_int8_weights_fit_cpu(manifest: Manifest) -> None:
    """Refuse an INT8 engine with 8-bit weights on a CPU without VNNI (as this process's CPUID shows it).

    There ONNX Runtime's U8S8 kernels add pairs of u8 x s8 products in saturating 16-bit sums
    (``vpmaddubsw``): full 8-bit weights overflow them and the answers go wrong with no error
    (benchmarks/int8_no_vnni.py: top-1 agreement with FP32 96.9% -> 81.2% on PP-OCR's classifier,
    top-20 face anchors 77% -> 21%). trtforge writes 7-bit weights when it builds on such a CPU.
    """
    if not full_8bit_weights(manifest) or not saturates_8bit_weights():
        return
    built_on = manifest.device.get("name") or "another CPU"
    built_flags = manifest.device.get("flags")
    vnni = [f for f in (built_flags if isinstance(built_flags, list) else []) if f in VNNI_FLAGS]
    raise TrtforgeError(
        f"this INT8 engine has full 8-bit weights, built for a CPU with VNNI ({built_on}"
        f"{', ' + ', '.join(vnni) if vnni else ''}), but this CPU has no VNNI ({' / '.join(VNNI_FLAGS)}): "
        "ONNX Runtime's integer kernels here saturate on 8-bit weights and give wrong answers; "
        "rebuild the engine on this machine with trtforge build, or anywhere with --reduce-range "
        "(7-bit weights, which run on any CPU)"
    )


def _checked_profiles(model: onnx.ModelProto, config: BuildConfig) -> dict[str, object]:
    """Shape profiles checked against the model's inputs (a user error if they do not fit), to record.

    ONNX Runtime runs any shape without them; the engine's manifest keeps them as the range asked for.
    """
    if not config.profiles:
        return {}
    from trtforge.graph.model import graph_inputs
    from trtforge.graph.ranges import validate_profiles

    return {"profiles": [r.to_json() for r in validate_profiles(config.profiles, graph_inputs(model))]}


def default_threads() -> int:
    return usable_cores()


# ---- CUDA execution provider ------------------------------------------------------------------

# Options every CUDA engine gets: cuDNN tries every convolution algorithm once at load and keeps
# the fastest (the search is cached per shape for the session), with as much workspace as it
# wants; copies ORT makes itself go to the default stream. Layout and CUDA graphs are timed.
_CUDA_BASE_OPTIONS = {
    "device_id": "0",
    "cudnn_conv_algo_search": "EXHAUSTIVE",
    "cudnn_conv_use_max_workspace": "1",
    "do_copy_in_default_stream": "1",
}
# Candidates the build times, fastest kept: NHWC kernels (cuDNN's native tensor-core layout for
# FP16), cuDNN's conv+bias fusion when ORT accepts it, and cuDNN's heuristic pick (which can
# reach engines the exhaustive legacy search does not).
_CUDA_CANDIDATES = (
    {"prefer_nhwc": "1"},
    {"prefer_nhwc": "0"},
    {"prefer_nhwc": "1", "fuse_conv_bias": "1"},
    {"prefer_nhwc": "1", "cudnn_conv_algo_search": "HEURISTIC"},
)
_TUNE_RUNS = 50


def cuda_provider_options(prefer_nhwc: bool = True, cuda_graph: bool = True) -> dict[str, str]:
    return {
        **_CUDA_BASE_OPTIONS,
        "prefer_nhwc": "1" if prefer_nhwc else "0",
        "enable_cuda_graph": "1" if cuda_graph else "0",
    }


def session_provider_options(options: Mapping[str, str]) -> dict[str, str]:
    """``options`` as handed to ONNX Runtime: ``device_id`` left out when it is 0, the CUDA provider's default.

    Since 1.26 ONNX Runtime's Python binding first looks for a registered *plugin* EP device for the
    provider and, finding none for the built-in CUDA provider, logs ``No registered plugin EP device
    found for 'CUDAExecutionProvider' with device_id=0`` on stderr for every session, but only when
    the options name a ``device_id`` (``CreateExecutionProviderFactoryInstance`` in
    onnxruntime_pybind_state.cc; a WARNING of its default logger, which no session option reaches).
    Leaving out the default device silences exactly that line; ORT's other warnings still show.
    """
    return {k: v for k, v in options.items() if not (k == "device_id" and str(v) == "0")}


def _require_cuda_provider():  # -> onnxruntime module
    import onnxruntime as ort

    from trtforge.backends import cuda

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise TrtforgeError(
            f"onnxruntime {ort.__version__} here has no CUDAExecutionProvider; for --device cuda install "
            "onnxruntime-gpu (pip install 'trtforge[gpu]') on a machine with an NVIDIA GPU"
        )
    cuda.require_device(0)
    return ort


def placed_off(session: Any, provider: str) -> list[str]:
    """``op (name)`` of each node the session placed on another provider than ``provider``.

    Needs ``session.record_ep_graph_assignment_info`` set when the session was made (ONNX Runtime
    records it then); an ONNX Runtime without the API gives an empty list.
    """
    info = getattr(session, "get_provider_graph_assignment_info", None)  # ONNX Runtime >= 1.22
    if info is None:
        return []
    return [f"{n.op_type} ({n.name})" for sub in info() if sub.ep_name != provider for n in sub.get_nodes()]


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _time_compute(runner: OrtCudaRunner, runs: int = _TUNE_RUNS) -> float:
    """Median GPU time of ``enqueue`` in ms (CUDA events), two queries in flight as bench keeps them,
    after warm-up runs (cuDNN's algorithm search, graph capture)."""
    from trtforge.backends import cuda
    from trtforge.data.arrays import random_inputs

    runner.set_inputs(random_inputs(runner.inputs, seed=0))  # a dynamic batch runs at 1
    runner.h2d()
    for _ in range(3):
        runner.enqueue()
    pairs = [(cuda.Event(), cuda.Event()) for _ in range(2)]
    times = []
    for i in range(runs + 2):
        start, end = pairs[i % 2]
        if i >= 2:
            end.synchronize()
            times.append(start.elapsed_ms(end))
        start.record(runner.stream)
        runner.enqueue()
        end.record(runner.stream)
    runner.stream.synchronize()
    return float(np.median(times))


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def build_cuda(data: bytes) -> BuiltEngine:
    """Time the candidate provider options on this GPU, keep the fastest, record them all.

    Each candidate is timed in a fresh Python process, as the engine will run. With ONNX Runtime
    1.31 on an H200, every CUDA-provider session of a process ran ~12% slower (ResNet-50 b1 FP16:
    0.506 -> 0.566 ms) once a second session had been created in it, even after that one was freed;
    in one process only the first candidate would be timed at full speed.
    """
    _require_cuda_provider()
    timings: dict[str, object] = {}
    best: tuple[float, dict[str, str], dict[str, object]] | None = None
    with tempfile.TemporaryDirectory(prefix="trtforge-tune-") as scratch:
        model_path = Path(scratch) / "model.onnx"
        model_path.write_bytes(data)
        for candidate in _CUDA_CANDIDATES:
            for graph in (True, False):
                options = {**cuda_provider_options(cuda_graph=graph), **candidate}
                label = ",".join(f"{k}={options[k]}" for k in (*candidate, "enable_cuda_graph"))
                result = _time_in_child(model_path, options, graph)
                if "error" in result:  # an option this ORT lacks, or a graph CUDA graphs cannot hold
                    timings[label] = f"failed: {result['error']}"
                    continue
                ms = float(result["ms"])  # type: ignore[arg-type]
                timings[label] = round(ms, 4)
                if best is None or ms < best[0]:
                    best = (ms, options, result)
                break
    if best is None:
        raise TrtforgeError(f"onnxruntime cannot run the model on the CUDA provider: {timings}")
    ms, options, result = best
    inputs, outputs = ([TensorSpec.from_json(t) for t in cast(list, result[key])] for key in ("inputs", "outputs"))
    off_gpu = [str(n) for n in cast(list, result.get("cpu_nodes") or [])]
    if off_gpu:
        warnings.warn(
            f"{len(off_gpu)} node(s) run on the CPU provider, not the GPU: {', '.join(off_gpu[:6])}"
            + (" ..." if len(off_gpu) > 6 else "")
            + f"; each adds host-device copies to every query (GPU compute with them: {ms:.3f} ms) and rules out "
            "a CUDA graph. The manifest lists them (build.cpu_nodes)",
            stacklevel=2,
        )
    return BuiltEngine(
        data,
        inputs,
        outputs,
        {
            "providers": result["providers"],
            "graph_optimization_level": "ORT_ENABLE_ALL",
            "provider_options": options,
            "cuda_graph": options.get("enable_cuda_graph") == "1",
            "cpu_nodes": off_gpu,
            "tuning_compute_ms": timings,
            "tuning": f"median GPU compute of {_TUNE_RUNS} runs per candidate at batch 1 for dynamic dims, "
            "each candidate in a fresh process",
        },
    )


def _time_in_child(model_path: Path, options: Mapping[str, str], graph: bool) -> dict[str, object]:
    """``{"ms", "inputs", "outputs", "providers"}`` or ``{"error"}`` from ``python -m
    trtforge.backends._cuda_timing MODEL OPTIONS_JSON GRAPH`` (see :func:`_child_main`)."""
    import trtforge

    package_root = str(Path(trtforge.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (package_root, os.environ.get("PYTHONPATH"))))}
    command = [
        sys.executable,
        "-m",
        "trtforge.backends._cuda_timing",
        str(model_path),
        json.dumps(dict(options)),
        "1" if graph else "0",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(_CHILD_TAG):
            return json.loads(line[len(_CHILD_TAG) :])
    tail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    return {"error": f"the timing process failed: {tail[:300]}"}


_CHILD_TAG = "TRTFORGE-CUDA-TIMING "


def _child_main(argv: list[str]) -> int:
    """Time one candidate: open the session, time ``enqueue``, print one tagged JSON line."""
    model_path, options, graph = Path(argv[0]), json.loads(argv[1]), argv[2] == "1"
    try:
        runner = OrtCudaRunner(model_path.read_bytes(), options, cuda_graph=graph)
        result: dict[str, object] = {
            "ms": _time_compute(runner),
            "providers": runner.session.get_providers(),
            "cpu_nodes": placed_off(runner.session, "CUDAExecutionProvider"),
            "inputs": [t.to_json() for t in runner.inputs],
            "outputs": [t.to_json() for t in runner.outputs],
        }
    except Exception as exc:
        result = {"error": _first_line(exc)}
    print(_CHILD_TAG + json.dumps(result), flush=True)
    return 0


def _resolve(spec: TensorSpec, symbols: dict[str, int], batch: int) -> tuple[int, ...]:
    dims = []
    for i, d in enumerate(spec.shape):
        if isinstance(d, int) and d > 0:
            dims.append(d)
        elif str(d) in symbols:
            dims.append(symbols[str(d)])
        elif i == 0:
            dims.append(batch)
        else:
            raise TrtforgeError(
                f"output {spec.name!r} has a data-dependent dimension {d!r}; the CUDA runner binds "
                "outputs to fixed device buffers: give it a static shape with trtforge reshape"
            )
    return tuple(dims)


class OrtCudaRunner(StagedRunner):
    """An engine on the CUDA execution provider, bound to device buffers on its own stream.

    The staged phases (``set_inputs``, ``h2d``, ``d2h``, ``outputs_host``) are
    :class:`~trtforge.backends.base.StagedRunner`'s, shared with ``TensorRTRunner``; here the
    buffers are bound to the session with an IO binding, and ``enqueue`` runs it on ``stream``.

    CUDA graphs are ONNX Runtime's own (``enable_cuda_graph``): it captures the graph on the
    first runs and replays it, reading the bound buffers, which therefore never move.
    ``supports_cuda_graph`` says the build found the graph capturable; ``cuda_graph=True``
    (or ``use_cuda_graph()``, as ``bench --cuda-graph`` calls it) turns replay on.
    """

    def __init__(self, data: bytes, provider_options: Mapping[str, str], cuda_graph: bool | None = None) -> None:
        self._ort = _require_cuda_provider()  # before any CUDA call: the clearer refusal
        super().__init__()
        self._data = data
        self.provider_options = dict(provider_options)
        allowed = self.provider_options.get("enable_cuda_graph") == "1"
        self.supports_cuda_graph = allowed if cuda_graph is None else bool(cuda_graph)
        self.cuda_graph = bool(cuda_graph)
        self._run_options = self._ort.RunOptions()
        # Return once the work is enqueued; the stream orders it before our copies.
        self._run_options.add_run_config_entry("disable_synchronize_execution_providers", "1")
        self._open()

    def _open(self) -> None:
        ort = self._ort
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")  # see cpu_nodes()
        provider = {
            **session_provider_options(self.provider_options),
            "enable_cuda_graph": "1" if self.cuda_graph else "0",
            "user_compute_stream": str(self.stream.handle),
        }
        self.session = ort.InferenceSession(self._data, options, providers=[("CUDAExecutionProvider", provider)])
        if self.session.get_providers()[0] != "CUDAExecutionProvider":  # ORT fell back to the CPU
            raise RuntimeError(f"the CUDA provider refused options {provider}")
        self.inputs = _specs(self.session.get_inputs())
        self.outputs = _specs(self.session.get_outputs())
        self._binding = self.session.io_binding()
        if self.shapes:  # a new session (use_cuda_graph) reads the buffers already bound
            self._bind()

    def use_cuda_graph(self) -> None:
        """Replay a CUDA graph from now on (a new session: ORT decides this when it creates one)."""
        if not self.supports_cuda_graph:
            raise TrtforgeError(
                "this engine's build found no capturable CUDA graph (see tuning_compute_ms "
                "in its manifest); bench it without --cuda-graph"
            )
        if not self.cuda_graph:
            self.stream.synchronize()
            self.cuda_graph = True
            self._open()

    def _output_shapes(self, inputs: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        if self.shapes and self.cuda_graph:
            raise TrtforgeError(
                f"this runner replays a CUDA graph captured for input shapes {self.shapes}, got {inputs}; "
                "load the engine with cuda_graph=False to change shapes between queries"
            )
        symbols: dict[str, int] = {}
        batch = 1
        for spec in self.inputs:
            shape = inputs[spec.name]
            batch = shape[0] if shape else batch
            symbols.update({str(d): n for d, n in zip(spec.shape, shape) if not isinstance(d, int)})
        return {spec.name: _resolve(spec, symbols, batch) for spec in self.outputs}

    def _bind(self) -> None:
        self._binding.clear_binding_inputs()
        self._binding.clear_binding_outputs()
        for spec in self.inputs + self.outputs:
            host, device = self.buffers.host[spec.name], self.buffers.device[spec.name]
            bind = self._binding.bind_input if spec in self.inputs else self._binding.bind_output
            bind(spec.name, "cuda", 0, host.dtype, list(host.shape), device.ptr)

    def enqueue(self) -> None:
        self.session.run_with_iobinding(self._binding, self._run_options)
