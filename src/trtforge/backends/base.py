"""The backend protocol and its registry.

A backend is small: it turns an ONNX model that already carries its precision into
engine bytes, and turns engine bytes back into a :class:`Runner`.  Calibration, Q/DQ
placement and casts happen before, in :mod:`trtforge.precision`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from trtforge.backends import cuda
from trtforge.config import BuildConfig, TensorSpec
from trtforge.errors import TrtforgeError

if TYPE_CHECKING:
    import onnx

    from trtforge.engine import Manifest
    from trtforge.precision.quantize import QuantFlavour


class Runner(Protocol):
    """A loaded engine: its IO and one call. Optional capabilities are the protocols below."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once on host arrays; returns host arrays by output name."""
        ...


@runtime_checkable
class DeviceRunner(Protocol):
    """A GPU runner whose phases the harness times separately with CUDA events.

    ``trtforge.backends.cuda`` provides ``Event`` (``record(stream)``, ``synchronize()``,
    ``query() -> bool``, ``a.elapsed_ms(b)`` = ms from ``a`` to ``b``) and ``Stream``.
    When ``supports_cuda_graph`` is true, ``use_cuda_graph()`` captures ``enqueue`` once;
    later ``enqueue`` calls launch the graph.
    """

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    stream: cuda.Stream
    supports_cuda_graph: bool

    def set_inputs(self, feeds: Mapping[str, np.ndarray]) -> None: ...  # host arrays -> pinned staging

    def h2d(self) -> None: ...  # async pinned -> device on self.stream

    def enqueue(self) -> None: ...  # launch compute on self.stream

    def d2h(self) -> None: ...  # async device -> pinned on self.stream

    def outputs_host(self) -> dict[str, np.ndarray]: ...

    def use_cuda_graph(self) -> None: ...  # capture enqueue once; later enqueues launch the graph


def infer_on_device(runner: DeviceRunner, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One query through a device runner's phases, waited for: its ``infer``."""
    runner.set_inputs(feeds)
    runner.h2d()
    runner.enqueue()
    runner.d2h()
    runner.stream.synchronize()
    return runner.outputs_host()


class StagedRunner:
    """The staged phases both GPU runners share, over one :class:`~trtforge.backends.cuda.TensorBuffers` and one stream.

    Implements the staging half of :class:`DeviceRunner`: ``set_inputs``
    fills pinned host arrays (binding buffers again when the input shapes change), ``h2d`` and
    ``d2h`` enqueue the copies on ``stream`` and return, ``outputs_host`` reads the outputs once
    the stream is synchronised.  A runner says how its engine learns shapes and addresses:

    - ``_output_shapes(inputs)``: the output shapes that these input shapes give (and whatever the
      engine must hear about the new input shapes first);
    - ``_bind()``: hand the buffers' device addresses to the engine;
    - ``enqueue()``: launch the compute on ``stream``;
    - ``use_cuda_graph()``: replay a CUDA graph from now on, where ``supports_cuda_graph``.
    """

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    supports_cuda_graph: bool = False

    def __init__(self) -> None:
        self.stream = cuda.Stream()
        self.buffers = cuda.TensorBuffers()
        self.shapes: dict[str, tuple[int, ...]] = {}  # input shapes the buffers are bound for

    def _output_shapes(self, inputs: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        raise NotImplementedError

    def _bind(self) -> None:
        raise NotImplementedError

    def enqueue(self) -> None:
        raise NotImplementedError

    def use_cuda_graph(self) -> None:
        raise NotImplementedError

    def set_inputs(self, feeds: Mapping[str, np.ndarray]) -> None:
        from trtforge.data.arrays import engine_arrays

        arrays = engine_arrays(feeds, self.inputs)
        self.stream.synchronize()  # the previous query's copy may still read the staging arrays
        shapes = {name: tuple(a.shape) for name, a in arrays.items()}
        if shapes != self.shapes:
            everything = {**shapes, **self._output_shapes(shapes)}
            for spec in self.inputs + self.outputs:
                self.buffers.get(spec.name, everything[spec.name], spec.dtype)
            self.shapes = shapes
            self._bind()
        for name, array in arrays.items():
            np.copyto(self.buffers.host[name].array, array)

    def h2d(self) -> None:
        for spec in self.inputs:
            cuda.memcpy_htod_async(self.buffers.device[spec.name], self.buffers.host[spec.name], self.stream)

    def d2h(self) -> None:
        for spec in self.outputs:
            cuda.memcpy_dtoh_async(self.buffers.host[spec.name], self.buffers.device[spec.name], self.stream)

    def outputs_host(self) -> dict[str, np.ndarray]:
        return {spec.name: self.buffers.host[spec.name].array.copy() for spec in self.outputs}

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return infer_on_device(self, feeds)


def is_device_runner(runner: object) -> bool:
    """Whether ``runner`` has the staged phases the harness times with CUDA events."""
    return isinstance(runner, DeviceRunner)


@runtime_checkable
class Describable(Protocol):
    """A backend that can say what an engine holds beyond its manifest (IO formats, layers, profiles)."""

    def describe(self, data: bytes) -> dict[str, object]: ...


@runtime_checkable
class Forkable(Protocol):
    """A runner that can make another execution context of the same engine (its own stream)."""

    def fork(self) -> Runner: ...


@dataclass(frozen=True)
class BuiltEngine:
    data: bytes
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    facts: dict[str, object] = field(default_factory=dict)
    """Backend-specific facts recorded in the manifest (provider options, versions...)."""


class Backend(Protocol):
    name: str

    def version(self) -> str: ...

    def device_facts(self, device: str) -> dict[str, object]: ...

    def quant_flavour(self, config: BuildConfig) -> QuantFlavour: ...

    def build(self, model: onnx.ModelProto, config: BuildConfig) -> BuiltEngine: ...

    def load(self, data: bytes, manifest: Manifest, **options: object) -> Runner: ...


# name -> "module:attribute" of a zero-argument factory, imported only when asked for.
_REGISTRY: dict[str, str | Callable[[], Backend]] = {}


def register_backend(name: str, factory: str | Callable[[], Backend]) -> None:
    if name in _REGISTRY:
        raise ValueError(f"backend {name!r} is already registered")
    _REGISTRY[name] = factory


def backend_names() -> list[str]:
    return list(_REGISTRY)


def auto_backend() -> str:
    """``--backend auto``: TensorRT when it imports for real and a GPU is present, else ONNX Runtime."""
    from trtforge.backends.tensorrt._trt import usable

    return "tensorrt" if usable("tensorrt") else "onnxruntime"


def get_backend(name: str) -> Backend:
    if name == "auto":
        name = auto_backend()
    if name not in _REGISTRY:
        raise TrtforgeError(f"unknown backend {name!r}; available: {', '.join(_REGISTRY)}")
    factory = _REGISTRY[name]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
    return factory()


register_backend("onnxruntime", "trtforge.backends.onnxruntime:OnnxRuntimeBackend")
register_backend("tensorrt", "trtforge.backends.tensorrt:full")
register_backend("tensorrt-rtx", "trtforge.backends.tensorrt:rtx")
register_backend("openvino", "trtforge.backends.openvino:OpenVinoBackend")
