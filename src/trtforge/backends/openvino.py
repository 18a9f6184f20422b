"""OpenVINO backend: Intel's CPU runtime, reading the ONNX the precision stage produced.

FP32 runs as is; INT8 is trtforge's own Q/DQ graph (OpenVINO's low-precision transformations
fuse the Q/DQ pairs into INT8 kernels, so calibration stays trtforge's, one model for every
backend); FP16 is trtforge's cast graph, run at the CPU's own precision (see :func:`_hint`).

The engine is the OpenVINO IR (model xml + weights bin) packed into one file, not the exported
compiled blob: the IR loads into any later OpenVINO and onto any CPU, while ``export_model``'s
blob is tied to this OpenVINO version and this CPU's instruction set. Loading compiles it
(milliseconds to a second on CPU; the build records how long). The manifest records the
compile properties and the runtime model's per-layer execution precisions, so a user sees how
much of an INT8 engine really runs in INT8.
"""

from __future__ import annotations

import struct
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from trtforge._host import usable_cores
from trtforge.backends.base import BuiltEngine
from trtforge.config import BuildConfig, Precision, TensorSpec
from trtforge.engine import Manifest, cpu_facts
from trtforge.errors import TrtforgeError
from trtforge.precision.quantize import QuantFlavour

_MAGIC = b"TRTFORGE-OPENVINO-IR1\n"
_PIP = "pip install 'trtforge[openvino]'"

# OpenVINO's low-precision transformations take U8 activations and S8 symmetric per-channel
# weights as its own quantizer (NNCF) writes them, into oneDNN's u8s8 kernels. Full 8-bit weights,
# as NNCF's default; the alternatives (7-bit weights, S8 activations) were not measured (issue 17).
OPENVINO_FLAVOUR = QuantFlavour(
    "openvino-cpu", "uint8", "int8", False, True, False,
    "OpenVINO CPU: U8 activations, S8 per-channel weights (full 8 bits); its low-precision "
    "transformations fuse the Q/DQ pairs into INT8 kernels")


def _openvino() -> Any:
    try:
        import openvino
    except ImportError:
        raise TrtforgeError(f"the openvino backend needs OpenVINO: {_PIP}") from None
    return openvino


def _dtype(element_type: Any) -> str:
    name = element_type.to_dtype().name if element_type.is_static() else "float32"
    return str(name)


def _specs(ports: list, names: list[str]) -> list[TensorSpec]:  # list[openvino.Output]
    """The ports as specs, named as in the ONNX model (``names``, by position; OpenVINO gives a port
    every tensor name fused into it, and ``get_any_name`` may pick another one)."""
    specs = []
    for i, port in enumerate(ports):
        shape = port.get_partial_shape()
        dims: tuple[int | str, ...] = tuple(d.get_length() if d.is_static else "?" for d in shape)
        name = names[i] if i < len(names) and names[i] in port.get_names() else port.get_any_name()
        specs.append(TensorSpec(name, _dtype(port.get_element_type()), dims))
    return specs


def _hint(precision: Precision, capabilities: list[str]) -> str:
    """OpenVINO's INFERENCE_PRECISION_HINT: f32, except fp16/bf16 engines on CPUs that have it.

    Set explicitly: on CPUs with AMX or AVX512-BF16 OpenVINO's default is bf16, which would run a
    FP32 engine at lower precision without being asked.
    """
    if precision is Precision.FP16 and "FP16" in capabilities:
        return "f16"
    if precision is Precision.BF16 and "BF16" in capabilities:
        return "bf16"
    return "f32"


def _properties(hint: str, threads: int, streams: int = 1) -> dict[str, str]:
    return {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": str(streams), "INFERENCE_NUM_THREADS": str(threads),
            "INFERENCE_PRECISION_HINT": hint}


def pack(xml: bytes, weights: bytes) -> bytes:
    return _MAGIC + struct.pack("<Q", len(xml)) + xml + weights


def unpack(data: bytes) -> tuple[bytes, bytes]:
    if not data.startswith(_MAGIC):
        raise TrtforgeError("this file is not an OpenVINO engine written by trtforge; rebuild it with trtforge build")
    start = len(_MAGIC) + 8
    (size,) = struct.unpack("<Q", data[len(_MAGIC):start])
    return data[start:start + size], data[start + size:]


def layer_precisions(compiled: Any) -> dict[str, int]:
    """How many of the runtime model's compute layers execute in each precision (``runtimePrecision``)."""
    counts: Counter[str] = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = str(info["layerType"].astype(str)) if "layerType" in info else op.get_type_name()
        if kind in ("Input", "Parameter", "Output", "Result", "Const", "Constant"):
            continue
        counts[str(info["runtimePrecision"].astype(str)) if "runtimePrecision" in info else "?"] += 1
    return dict(sorted(counts.items()))


class OpenVinoRunner:
    """A compiled model and one infer request; ``infer`` runs it synchronously."""

    def __init__(self, compiled: Any, properties: Mapping[str, str], names: tuple[list[str], list[str]]) -> None:
        self.compiled = compiled
        self.settings: dict[str, object] = dict(properties)  # the compile properties; bench records them
        self.inputs = _specs(list(compiled.inputs), names[0])
        self.outputs = _specs(list(compiled.outputs), names[1])
        self._request = compiled.create_infer_request()

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._request.infer({name: np.ascontiguousarray(a) for name, a in feeds.items()})
        return {spec.name: self._request.get_tensor(spec.name).data.copy() for spec in self.outputs}


class OpenVinoBackend:
    name = "openvino"

    def version(self) -> str:
        return str(_openvino().__version__)

    def device_facts(self, device: str) -> dict[str, object]:
        _check_device(device)
        core = _openvino().Core()
        return {**cpu_facts(), "openvino_device": core.get_property("CPU", "FULL_DEVICE_NAME"),
                "openvino_capabilities": list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))}

    def quant_flavour(self, config: BuildConfig) -> QuantFlavour:
        return OPENVINO_FLAVOUR

    def build(self, model: onnx.ModelProto, config: BuildConfig) -> BuiltEngine:
        _check_device(config.device)
        for fmt in config.input_formats + config.output_formats:
            if not fmt.linear:
                raise TrtforgeError(f"IO format {fmt}: openvino reads and writes linear (chw) tensors only; use "
                                    f"{fmt.dtype_word}:chw, or build with --backend tensorrt/tensorrt-rtx")
        ov = _openvino()
        core = ov.Core()
        try:
            converted = core.read_model(model.SerializeToString(), b"")
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise TrtforgeError(f"openvino cannot read the model: {first}") from None
        with tempfile.TemporaryDirectory(prefix="trtforge-ov-") as scratch:
            xml = Path(scratch) / "model.xml"
            ov.serialize(converted, str(xml))  # weights as they are (save_model would compress to FP16)
            data = pack(xml.read_bytes(), xml.with_suffix(".bin").read_bytes())
        capabilities = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        hint = _hint(config.precision, capabilities)
        if config.precision in (Precision.FP16, Precision.BF16) and hint == "f32":
            warnings.warn(f"{config.precision} on OpenVINO: this CPU has no {config.precision} kernels "
                          f"({', '.join(capabilities)}), so OpenVINO computes it in FP32; built as asked, "
                          "the manifest's layer_precisions shows what runs", stacklevel=2)
        properties = _properties(hint, usable_cores())
        started = time.perf_counter()
        initializers = {t.name for t in model.graph.initializer}
        names = ([i.name for i in model.graph.input if i.name not in initializers], [o.name for o in model.graph.output])
        runner = _compile(data, properties, names)
        compile_s = time.perf_counter() - started
        return BuiltEngine(data, runner.inputs, runner.outputs, {
            "engine_format": "OpenVINO IR (xml + bin) in one file; compiled when loaded",
            "properties": properties, "inference_precision": hint, "compile_seconds": round(compile_s, 3),
            "layer_precisions": layer_precisions(runner.compiled)})

    def load(self, data: bytes, manifest: Manifest, **options: object) -> OpenVinoRunner:
        _check_device(str(options.get("device") or "cpu"))
        threads = options.get("threads")
        recorded = manifest.build.get("properties")
        hint = str(recorded.get("INFERENCE_PRECISION_HINT", "f32")) if isinstance(recorded, dict) else "f32"
        names = ([t.name for t in manifest.inputs], [t.name for t in manifest.outputs])
        return _compile(data, _properties(hint, int(str(threads)) if threads else usable_cores()), names)


def _compile(data: bytes, properties: Mapping[str, str], names: tuple[list[str], list[str]]) -> OpenVinoRunner:
    ov = _openvino()
    xml, weights = unpack(data)
    core = ov.Core()
    try:
        model = core.read_model(xml.decode(), ov.Tensor(np.frombuffer(weights, dtype=np.uint8).copy()))
        compiled = core.compile_model(model, "CPU", dict(properties))
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise TrtforgeError(f"openvino cannot compile this engine ({first}); rebuild it with trtforge build") from None
    return OpenVinoRunner(compiled, properties, names)


def _check_device(device: str) -> None:
    if device != "cpu":
        raise TrtforgeError(f"--device {device}: trtforge's openvino backend runs on the CPU only; "
                            "use --device cpu, or --backend tensorrt/tensorrt-rtx/onnxruntime for cuda")
