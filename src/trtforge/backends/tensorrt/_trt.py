"""What the TensorRT modules share: the ``trt`` name, the package switch, loggers, dims, the GPU probe.

The code is written once against the name ``trt``: for mypy that is the ``tensorrt`` stubs; at run
time it is whichever package the calling backend activated with :func:`_using` (``tensorrt`` or
``tensorrt_rtx``). Private to :mod:`trtforge.backends.tensorrt`; a leaf, so its modules import it
and not each other.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

from trtforge.errors import MissingDependencyError

if TYPE_CHECKING:
    import tensorrt as trt

else:

    class _Active:
        """``trt.X`` -> ``X`` of the package the calling backend activated."""

        def __getattr__(self, name: str) -> Any:
            return getattr(_ACTIVE.get(), name)

    trt = _Active()

_ACTIVE: contextvars.ContextVar[ModuleType] = contextvars.ContextVar("trtforge_tensorrt")

PACKAGES = {"tensorrt": "tensorrt", "tensorrt-rtx": "tensorrt_rtx"}
_DTYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "INT32": "int32",
    "INT64": "int64",
    "UINT8": "uint8",
    "BOOL": "bool",
    "FP8": "float8e4m3fn",
}


@contextlib.contextmanager
def _using(module: ModuleType) -> Iterator[None]:
    token = _ACTIVE.set(module)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def _logger(errors: list[str]) -> trt.ILogger:
    """A logger that keeps errors (for the one-line message) and prints warnings to stderr."""

    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                errors.append(msg.strip())
            elif severity == trt.ILogger.Severity.WARNING:
                print(f"[W] {msg.strip()}", file=sys.stderr)

    return Logger()


def _progress_monitor() -> trt.IProgressMonitor | None:
    """Top-level build phases on stderr, where the package has ``IProgressMonitor`` (TensorRT >= 10)."""
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class Progress(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            if parent_phase is None:
                print(f"[I] build phase: {phase_name} ({num_steps} steps)", file=sys.stderr)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            pass

    return Progress()


def _dims(dims: trt.Dims) -> tuple[int, ...]:
    return tuple(dims[i] for i in range(len(dims)))


def _cuda_device() -> dict[str, object] | None:
    """CUDA device 0's facts (name, compute capability...), or None without cuda-python or a GPU."""
    from trtforge.backends import cuda

    try:
        return cuda.device_facts(0) if cuda.device_count() else None
    except MissingDependencyError:
        return None


def gpu_available() -> bool:
    return _cuda_device() is not None


def usable(name: str = "tensorrt") -> bool:
    """True when the package imports for real (not a stub folder) and a GPU is present: ``--backend auto``."""
    try:
        module = importlib.import_module(PACKAGES[name])
    except ImportError:
        return False
    return hasattr(module, "Builder") and gpu_available()
