"""A small CUDA runtime layer over cuda-python, shared by the GPU runners and the bench harness.

Only what a runner and a timer need: devices, streams, events, device buffers, pinned host
arrays, async copies and CUDA graphs.  Every call goes through :func:`check`, which turns a
CUDA error into an exception that names it.  cuda-python is imported on first use, so
``import trtforge`` works without it.
"""

from __future__ import annotations

import ctypes
from functools import cache
from types import ModuleType
from typing import Any

import numpy as np

from trtforge.errors import MissingDependencyError, TrtforgeError


class CudaError(RuntimeError):
    """A CUDA call failed; the message names the call and the CUDA error."""


@cache
def runtime() -> ModuleType:
    """``cuda.bindings.runtime`` (cuda-python ≥ 12.6), or the older ``cuda.cudart``."""
    try:
        from cuda.bindings import runtime as rt
    except ImportError:
        try:
            from cuda import cudart as rt  # type: ignore[no-redef]
        except ImportError:
            raise MissingDependencyError("cuda-python", "gpu", "the CUDA path") from None
    return rt


def check(result: Any, what: str = "CUDA call") -> Any:
    """Unpack a cuda-python result ``(err, *values)``: raise on error, else return the value(s)."""
    rt = runtime()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != rt.cudaError_t.cudaSuccess:
        _, name = rt.cudaGetErrorName(err)
        _, text = rt.cudaGetErrorString(err)
        raise CudaError(f"{what} failed: {_text(name)} ({_text(text)})")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# ---- devices ---------------------------------------------------------------------------------


def device_count() -> int:
    """CUDA devices visible to this process; 0 when there is no driver or no device."""
    rt = runtime()
    err, count = rt.cudaGetDeviceCount()
    return int(count) if err == rt.cudaError_t.cudaSuccess else 0


def require_device(index: int = 0) -> None:
    count = device_count()
    if index >= count:
        raise TrtforgeError(
            f"--device cuda needs an NVIDIA GPU (device {index}), but CUDA sees {count}; "
            "run on a machine with a GPU and its driver, or use --device cpu"
        )


def set_device(index: int) -> None:
    check(runtime().cudaSetDevice(index), f"cudaSetDevice({index})")


def _properties(index: int) -> Any:
    return check(runtime().cudaGetDeviceProperties(index), f"cudaGetDeviceProperties({index})")


def device_name(index: int = 0) -> str:
    return _text(_properties(index).name).rstrip("\x00")


def compute_capability(index: int = 0) -> tuple[int, int]:
    props = _properties(index)
    return int(props.major), int(props.minor)


def _version(number: int) -> str:
    return f"{number // 1000}.{number % 1000 // 10}"


def device_facts(index: int = 0) -> dict[str, object]:
    """What a manifest and a bench report record about the GPU."""
    rt = runtime()
    props = _properties(index)
    return {
        "kind": "cuda",
        "index": index,
        "name": device_name(index),
        "compute_capability": "{}.{}".format(*compute_capability(index)),
        "memory_gib": round(int(props.totalGlobalMem) / 2**30, 1),
        "multiprocessors": int(props.multiProcessorCount),
        "driver_cuda": _version(check(rt.cudaDriverGetVersion(), "cudaDriverGetVersion")),
        "runtime_cuda": _version(check(rt.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion")),
    }


# ---- streams and events ----------------------------------------------------------------------


class _Owned:
    """A CUDA resource that ``close`` releases, as garbage collection does too (errors ignored
    there: at interpreter exit the context may already be gone)."""

    def close(self) -> None:
        raise NotImplementedError

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class Stream(_Owned):
    """A non-blocking CUDA stream; ``handle`` is the raw ``cudaStream_t`` as an int."""

    def __init__(self) -> None:
        rt = runtime()
        self._stream = check(rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking), "cudaStreamCreate")

    @property
    def raw(self) -> Any:
        return self._stream

    @property
    def handle(self) -> int:
        return int(self._stream)

    def synchronize(self) -> None:
        check(runtime().cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    def close(self) -> None:
        if self._stream is not None:
            check(runtime().cudaStreamDestroy(self._stream), "cudaStreamDestroy")
            self._stream = None


class Event(_Owned):
    """A CUDA event for timing; ``blocking=True`` makes ``synchronize`` sleep instead of spin."""

    def __init__(self, blocking: bool = False) -> None:
        rt = runtime()
        flags = rt.cudaEventBlockingSync if blocking else rt.cudaEventDefault
        self._event = check(rt.cudaEventCreateWithFlags(flags), "cudaEventCreate")

    def record(self, stream: Stream) -> None:
        check(runtime().cudaEventRecord(self._event, stream.raw), "cudaEventRecord")

    def synchronize(self) -> None:
        check(runtime().cudaEventSynchronize(self._event), "cudaEventSynchronize")

    def query(self) -> bool:
        """True once all work before the recorded point has finished."""
        rt = runtime()
        result = rt.cudaEventQuery(self._event)
        err = result[0] if isinstance(result, tuple) else result
        if err == rt.cudaError_t.cudaErrorNotReady:
            return False
        check(result, "cudaEventQuery")
        return True

    def elapsed_ms(self, end: Event) -> float:
        """Milliseconds from this event to ``end`` (both recorded and complete)."""
        return float(check(runtime().cudaEventElapsedTime(self._event, end._event), "cudaEventElapsedTime"))

    def close(self) -> None:
        if self._event is not None:
            check(runtime().cudaEventDestroy(self._event), "cudaEventDestroy")
            self._event = None


# ---- memory ----------------------------------------------------------------------------------


class DeviceBuffer(_Owned):
    """``nbytes`` of device memory (cudaMalloc); ``ptr`` is its address."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = int(nbytes)
        self.ptr: int = int(check(runtime().cudaMalloc(max(self.nbytes, 1)), f"cudaMalloc({self.nbytes})"))

    def free(self) -> None:
        if self.ptr:
            check(runtime().cudaFree(self.ptr), "cudaFree")
            self.ptr = 0

    close = free


class PinnedArray(_Owned):
    """A page-locked host array (cudaHostAlloc); ``array`` is a numpy view of it."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype | str) -> None:
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(d) for d in shape)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        rt = runtime()
        self.ptr: int = int(
            check(rt.cudaHostAlloc(max(self.nbytes, 1), rt.cudaHostAllocDefault), f"cudaHostAlloc({self.nbytes})")
        )
        raw = (ctypes.c_uint8 * max(self.nbytes, 1)).from_address(self.ptr)
        flat = np.ctypeslib.as_array(raw)[: self.nbytes]
        self.array: np.ndarray = flat.view(self.dtype).reshape(self.shape)

    def free(self) -> None:
        if self.ptr:
            self.array = np.empty(0, self.dtype)
            check(runtime().cudaFreeHost(self.ptr), "cudaFreeHost")
            self.ptr = 0

    close = free


def memcpy_htod_async(dst: DeviceBuffer, src: PinnedArray, stream: Stream) -> None:
    rt = runtime()
    n = min(dst.nbytes, src.nbytes)
    check(
        rt.cudaMemcpyAsync(dst.ptr, src.ptr, n, rt.cudaMemcpyKind.cudaMemcpyHostToDevice, stream.raw),
        "cudaMemcpyAsync(host to device)",
    )


def memcpy_dtoh_async(dst: PinnedArray, src: DeviceBuffer, stream: Stream) -> None:
    rt = runtime()
    n = min(dst.nbytes, src.nbytes)
    check(
        rt.cudaMemcpyAsync(dst.ptr, src.ptr, n, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, stream.raw),
        "cudaMemcpyAsync(device to host)",
    )


class TensorBuffers:
    """A pinned host array and a device buffer per tensor name, for a runner's or a calibrator's IO.

    The host array is reallocated when a tensor's shape or dtype changes, the device buffer when
    it grows; callers that bound a device address elsewhere bind it again after :meth:`get`.
    """

    def __init__(self) -> None:
        self.host: dict[str, PinnedArray] = {}
        self.device: dict[str, DeviceBuffer] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: np.dtype | str) -> tuple[PinnedArray, DeviceBuffer]:
        host = self.host.get(name)
        if host is None or host.shape != tuple(shape) or host.dtype != np.dtype(dtype):
            host = self.host[name] = PinnedArray(shape, dtype)
        device = self.device.get(name)
        if device is None or device.nbytes < host.nbytes:
            device = self.device[name] = DeviceBuffer(host.nbytes)
        return host, device

    def upload(self, name: str, array: np.ndarray, stream: Stream, dtype: np.dtype | str | None = None) -> int:
        """Copy ``array`` to the device on ``stream`` (without waiting); returns its device address."""
        host, device = self.get(name, tuple(array.shape), array.dtype if dtype is None else dtype)
        host.array[...] = array
        memcpy_htod_async(device, host, stream)
        return device.ptr

    def free(self) -> None:
        for host in self.host.values():
            host.free()
        for device in self.device.values():
            device.free()
        self.host.clear()
        self.device.clear()


# ---- CUDA graphs -----------------------------------------------------------------------------


class Graph(_Owned):
    """Capture the work a callable enqueues on ``stream`` once, then replay it with ``launch``.

    >>> graph = Graph.capture(stream, runner.enqueue)
    >>> graph.launch(stream)
    """

    def __init__(self, graph: Any, exec_graph: Any) -> None:
        self._graph = graph
        self._exec = exec_graph

    @classmethod
    def capture(cls, stream: Stream, enqueue: Any) -> Graph:
        rt = runtime()
        mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        check(rt.cudaStreamBeginCapture(stream.raw, mode), "cudaStreamBeginCapture")
        try:
            enqueue()
        finally:
            graph = check(rt.cudaStreamEndCapture(stream.raw), "cudaStreamEndCapture")
        exec_graph = check(rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        return cls(graph, exec_graph)

    def launch(self, stream: Stream) -> None:
        check(runtime().cudaGraphLaunch(self._exec, stream.raw), "cudaGraphLaunch")

    def close(self) -> None:
        rt = runtime()
        if self._exec is not None:
            check(rt.cudaGraphExecDestroy(self._exec), "cudaGraphExecDestroy")
            self._exec = None
        if self._graph is not None:
            check(rt.cudaGraphDestroy(self._graph), "cudaGraphDestroy")
            self._graph = None
