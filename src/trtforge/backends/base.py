"""The backend protocol and its registry.

A backend is small: it turns an ONNX model that already carries its precision into
engine bytes, and turns engine bytes back into a :class:`Runner`.  Calibration, Q/DQ
placement and casts happen before, in :mod:`trtforge.precision`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from trtforge.config import BuildConfig, TensorSpec
from trtforge.errors import TrtforgeError

if TYPE_CHECKING:
    import onnx

    from trtforge.engine import Manifest
    from trtforge.precision.quantize import QuantFlavour


class Runner(Protocol):
    """A loaded engine."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once on host arrays; returns host arrays by output name."""
        ...


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
    from trtforge.backends.tensorrt import usable

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
