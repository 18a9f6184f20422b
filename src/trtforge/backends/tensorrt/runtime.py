"""The TensorRT runtime side: whether a plan can run here, the runner, and what a plan holds.

:class:`TensorRTRunner` is what ``TensorRTBackend.load`` returns, for both ``tensorrt`` and
``tensorrt_rtx``: one execution context on its own stream, pinned host arrays and device buffers
from :mod:`trtforge.backends.cuda` (no pycuda), ``execute_async_v3`` with the input shapes and
tensor addresses set when the shapes change, optional CUDA-graph replay.  It implements the bench
harness's :class:`~trtforge.backends.base.DeviceRunner`, so ``trtforge bench`` times H2D, compute and
D2H with CUDA events as it does for ONNX Runtime's CUDA runner.  Nothing here runs without a GPU;
it is type-checked against the ``tensorrt`` stubs (tests/backends/test_tensorrt_types.py) and run
by tests/gpu/test_tensorrt_runner.py where a TensorRT that supports the GPU is installed.
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import TYPE_CHECKING

from trtforge.backends import cuda
from trtforge.backends.base import StagedRunner
from trtforge.backends.tensorrt._trt import _DTYPES, _cuda_device, _dims, _logger, _using
from trtforge.config import TensorSpec
from trtforge.errors import TrtforgeError

if TYPE_CHECKING:
    import tensorrt as trt

    from trtforge.backends.base import DeviceRunner
    from trtforge.backends.tensorrt import TensorRTBackend
    from trtforge.engine import Manifest
else:
    from trtforge.backends.tensorrt._trt import trt


class TensorRTRunner(StagedRunner):
    """A deserialised plan: one execution context on its own stream, bound to pinned host and device buffers.

    The staged phases (``set_inputs``, ``h2d``, ``d2h``, ``outputs_host``) are
    :class:`~trtforge.backends.base.StagedRunner`'s, shared with ``OrtCudaRunner``; here the input
    shapes go to the context, which gives the output shapes, and the tensor addresses follow.
    With ``cuda_graph`` (or ``use_cuda_graph()``, as ``bench --cuda-graph`` calls it) ``enqueue``
    captures ``execute_async_v3`` once per set of input shapes and replays the graph.
    """

    supports_cuda_graph = True

    def __init__(self, module: ModuleType, engine: trt.ICudaEngine, cuda_graph: bool = False) -> None:
        super().__init__()
        self.module, self.engine, self.cuda_graph = module, engine, cuda_graph
        with _using(module):
            self.context = engine.create_execution_context()
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            is_input = {n: engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
            specs = {
                n: TensorSpec(
                    n, _DTYPES.get(engine.get_tensor_dtype(n).name, "float32"), _dims(engine.get_tensor_shape(n))
                )
                for n in names
            }
        self.inputs = [specs[n] for n in names if is_input[n]]
        self.outputs = [specs[n] for n in names if not is_input[n]]
        self._graph: cuda.Graph | None = None

    def fork(self) -> TensorRTRunner:
        """Another context and stream on the same engine, for running several streams at once."""
        return TensorRTRunner(self.module, self.engine, self.cuda_graph)

    def use_cuda_graph(self) -> None:
        self.cuda_graph = True

    def _output_shapes(self, inputs: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        for spec in self.inputs:
            self.context.set_input_shape(spec.name, inputs[spec.name])
        return {t.name: _dims(self.context.get_tensor_shape(t.name)) for t in self.outputs}

    def _bind(self) -> None:
        for spec in self.inputs + self.outputs:
            self.context.set_tensor_address(spec.name, self.buffers.device[spec.name].ptr)
        self._graph = None  # a graph holds the old shapes and addresses

    def enqueue(self) -> None:
        if not self.cuda_graph:
            if not self.context.execute_async_v3(self.stream.handle):
                raise RuntimeError("execute_async_v3 failed")
            return
        if self._graph is None:  # captured again when the shapes change
            self.context.execute_async_v3(self.stream.handle)  # settles shape-dependent allocations first
            self._graph = cuda.Graph.capture(self.stream, lambda: self.context.execute_async_v3(self.stream.handle))
        self._graph.launch(self.stream)


def why_not_here(backend: TensorRTBackend, manifest: Manifest) -> str | None:
    """One line saying why the plan cannot run here (version, GPU, compute capability), or None."""
    facts = manifest.build.get("tensorrt")
    targets = facts.get("runs_on", {}) if isinstance(facts, dict) else {}
    label, version = backend.label, backend.version()
    if manifest.backend_version != version and not targets.get("version_compatible"):
        return (
            f"the engine was built with {label} {manifest.backend_version}, but {version} "
            "is installed; rebuild it here (or build with --version-compat on TensorRT)"
        )
    gpu = _cuda_device()
    if gpu is None:
        return f"no CUDA GPU here: {label} engines run on NVIDIA GPUs (cuda-python finds none)"
    cc = str(gpu["compute_capability"])
    if backend.rtx and cc.split(".")[0] in ("9", "10"):
        return (
            f"this GPU ({gpu['name']}, sm {cc}) is a datacenter Hopper/Blackwell part, which TensorRT-RTX "
            "engines do not support; use --backend tensorrt"
        )
    allowed = [str(c) for c in targets.get("compute_capabilities", [])]
    later = targets.get("and_later") and _cc(cc) >= min(map(_cc, allowed), default=(0, 0))
    if allowed and cc not in allowed and not later:
        return (
            f"the engine was built for compute capability {', '.join(allowed)}, but this GPU "
            f"({gpu['name']}) is {cc}; rebuild it here, or build with --hardware-compat ampere+"
        )
    return None


def _cc(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def _validity(runtime: trt.Runtime, data: bytes) -> tuple[str, list[str]] | None:
    """The runtime's header check (TensorRT-RTX, newer TensorRT): ``(VALID|INVALID|..., [reasons])``."""
    if not hasattr(runtime, "get_engine_validity"):
        return None
    validity, diagnostics = runtime.get_engine_validity(data)
    bits = getattr(trt, "EngineInvalidityDiagnostics")  # noqa: B009  (newer than the stubs)
    return validity.name, [n for n in dir(bits) if n.isupper() and int(diagnostics) & int(getattr(bits, n))]


def deserialize(backend: TensorRTBackend, data: bytes) -> trt.ICudaEngine:
    """The plan as an engine, or a user error when the runtime calls it invalid here or cannot read it."""
    label = f"{backend.label} {backend.version()}"
    runtime = trt.Runtime(_logger([]))
    validity = _validity(runtime, data)
    if validity and validity[0] == "INVALID":
        raise TrtforgeError(
            f"cannot run this engine here: {label} says it is invalid on this system "
            f"({', '.join(validity[1]) or 'no reason given'}); rebuild it here"
        )
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        raise TrtforgeError(f"{label} could not deserialise the engine; rebuild it here")
    return engine


def describe(backend: TensorRTBackend, data: bytes) -> dict[str, object]:
    """Validity, IO tensors, profiles and layers, where the runtime can deserialise the plan on this machine."""
    runtime = trt.Runtime(_logger([]))
    details: dict[str, object] = {}
    validity = _validity(runtime, data)
    if validity:
        details["validity"] = {"result": validity[0], "diagnostics": validity[1]}
    if _cuda_device() is None:
        details["note"] = (
            f"{backend.label} cannot deserialise plans without a GPU; IO and build settings come from the manifest"
        )
        return details
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        details["note"] = f"{backend.label} {backend.version()} could not deserialise this plan on this GPU"
        return details
    details["io"] = engine_io(engine)
    layers = engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
    details["layers"] = json.loads(layers)  # names only unless built with --profiling-verbosity detailed
    return details


def engine_io(engine: trt.ICudaEngine) -> list[dict[str, object]]:
    """Each IO tensor of a deserialised plan: mode, dtype, shape, format and (inputs) profile shapes."""
    io: list[dict[str, object]] = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        io.append(
            {
                "name": name,
                "mode": engine.get_tensor_mode(name).name,
                "dtype": engine.get_tensor_dtype(name).name,
                "shape": list(_dims(engine.get_tensor_shape(name))),
                "format": engine.get_tensor_format_desc(name),
                "profiles": [
                    [list(_dims(d)) for d in engine.get_tensor_profile_shape(name, p)]
                    for p in range(engine.num_optimization_profiles)
                ]
                if is_input
                else [],
            }
        )
    return io


if TYPE_CHECKING:

    def _implements_the_bench_protocol(runner: TensorRTRunner) -> DeviceRunner:
        return runner  # mypy checks TensorRTRunner against DeviceRunner here
