"""ONNX Runtime backend: the embedded default, CPU everywhere.

The engine is the ONNX model after the precision stage (Q/DQ or casts included),
serialised; loading it creates an ``InferenceSession`` with full graph optimisation.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping

import numpy as np
import onnx

from trtforge.config import BuildConfig, Precision, TensorSpec
from trtforge.engine import Manifest, cpu_facts
from trtforge.errors import TrtforgeError
from trtforge.backends.base import BuiltEngine
from trtforge.precision.quantize import QuantFlavour, cpu_flavour

_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def _specs(args: list) -> list[TensorSpec]:  # list[onnxruntime.NodeArg]
    kinds = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
             "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8",
             "tensor(uint8)": "uint8", "tensor(bool)": "bool", "tensor(bfloat16)": "bfloat16"}
    return [TensorSpec(a.name, kinds.get(a.type, a.type),
                       tuple(d if isinstance(d, int) else str(d) for d in a.shape)) for a in args]


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
        return cpu_facts()

    def quant_flavour(self, config: BuildConfig) -> QuantFlavour:
        return cpu_flavour()

    def _session(self, data: bytes, device: str, threads: int | None = None):
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
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        return ort.InferenceSession(data, options, providers=[provider])

    def build(self, model: onnx.ModelProto, config: BuildConfig) -> BuiltEngine:
        for fmt in config.input_formats + config.output_formats:
            if not fmt.linear:
                raise TrtforgeError(
                    f"IO format {fmt}: onnxruntime reads and writes linear (chw) tensors only; "
                    f"use {fmt.dtype_word}:chw, or build with --backend tensorrt/tensorrt-rtx for {'+'.join(fmt.formats)}"
                )
        data = model.SerializeToString()
        try:
            session = self._session(data, config.device)
        except TrtforgeError:
            raise
        except Exception as exc:
            first = str(exc).splitlines()[0]
            if config.precision is Precision.BF16:
                raise TrtforgeError(f"onnxruntime cannot run this BF16 graph ({first}); ONNX Runtime has few BF16 "
                                    "kernels: build bf16 with --backend tensorrt-rtx or tensorrt, "
                                    "or use fp16 here") from None
            raise TrtforgeError(f"onnxruntime cannot load the model: {first}") from None
        if config.precision in (Precision.FP16, Precision.BF16) and config.device == "cpu":
            warnings.warn(f"{config.precision} on ONNX Runtime's CPU provider: it has no fast {config.precision} "
                          "kernels, so this engine is likely slower than FP32 (bench shows by how much); "
                          "it is built as asked", stacklevel=2)
        runner = OnnxRuntimeRunner(session)
        return BuiltEngine(data, runner.inputs, runner.outputs,
                           {"providers": session.get_providers(), "graph_optimization_level": "ORT_ENABLE_ALL"})

    def load(self, data: bytes, manifest: Manifest, **options: object) -> OnnxRuntimeRunner:
        threads = options.get("threads")
        device = str(options.get("device") or manifest.device.get("kind", "cpu"))
        return OnnxRuntimeRunner(self._session(data, device, int(threads) if threads else None))


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
