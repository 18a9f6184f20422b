"""Backends: build an engine from an ONNX model and a BuildConfig; load one into a runner."""

from trtforge.backends.base import Backend, BuiltEngine, Runner, get_backend, register_backend

__all__ = ["Backend", "BuiltEngine", "Runner", "get_backend", "register_backend"]
