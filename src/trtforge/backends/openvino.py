"""OpenVINO backend: Intel's CPU runtime, on the ONNX the precision stage produced.

The build reads trtforge's ONNX (FP32, the FP16/BF16 cast, or the INT8 Q/DQ graph: one
calibration for every backend) with ``openvino.Core``, compiles it for the CPU and saves the
compiled model's ``export_model`` blob as the engine. A blob loads in milliseconds without the
ONNX and without OpenVINO's conversion passes (the IR would be portable across OpenVINO versions
but is recompiled at every load); it is tied to the OpenVINO version that wrote it, which the
manifest records and :meth:`OpenVinoBackend.load` checks.

The properties the engine was compiled with (performance hint, streams, threads, inference
precision) are recorded and re-applied at load: OpenVINO's CPU plugin defaults to BF16 inference
on CPUs that have it, so FP32 is asked for explicitly, never left to the default. The manifest
also counts the runtime model's layers by the precision they execute in, so a user sees how much
of an INT8 engine really runs in INT8.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx

from trtforge.backends.base import BuiltEngine
from trtforge.config import BuildConfig, Precision, TensorSpec
from trtforge.engine import Manifest, cpu_facts
from trtforge.errors import TrtforgeError, require
from trtforge.precision.quantize import QuantFlavour, openvino_flavour

_INFERENCE_PRECISION = {Precision.FP32: "f32", Precision.INT8: "f32", Precision.FP16: "f16", Precision.BF16: "bf16"}
_CAPABILITY = {Precision.FP16: "FP16", Precision.BF16: "BF16"}
# Runtime layers that move data in and out rather than compute (left out of the precision counts).
_NOT_COMPUTE = frozenset({"Input", "Output", "Const", "Parameter", "Result", "Constant"})
_RECORDED = (
    "PERFORMANCE_HINT",
    "NUM_STREAMS",
    "INFERENCE_NUM_THREADS",
    "INFERENCE_PRECISION_HINT",
    "ENABLE_CPU_PINNING",
    "ENABLE_HYPER_THREADING",
    "OPTIMAL_NUMBER_OF_INFER_REQUESTS",
)


def _ov() -> Any:  # the openvino module
    return require("openvino", "openvino", "the openvino backend")


def _check_cpu(device: str) -> None:
    if device != "cpu":
        raise TrtforgeError(
            f"--device {device}: the openvino backend runs on the CPU only; use --device cpu, "
            "or --backend tensorrt/tensorrt-rtx/onnxruntime for an NVIDIA GPU"
        )


def compile_properties(precision: Precision, threads: int | None = None) -> dict[str, object]:
    """What every engine is compiled with: latency hint, one stream, an explicit inference precision."""
    properties: dict[str, object] = {
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        "INFERENCE_PRECISION_HINT": _INFERENCE_PRECISION[precision],
    }
    if threads:
        properties["INFERENCE_NUM_THREADS"] = threads
    return properties


def stream_properties(streams: int, threads: int | None) -> dict[str, object]:
    """OpenVINO's own streams for ``streams`` > 1: the throughput hint with ``NUM_STREAMS`` set, so one
    compiled model runs that many infer requests at once, ``threads`` each (None: OpenVINO shares
    out the cores); one stream keeps the engine's latency settings."""
    if streams <= 1:
        return {"INFERENCE_NUM_THREADS": threads} if threads else {}
    out: dict[str, object] = {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": streams}
    if threads:
        out["INFERENCE_NUM_THREADS"] = threads * streams
    return out


def _read_properties(compiled: Any) -> dict[str, object]:
    out: dict[str, object] = {}
    for key in _RECORDED:
        try:
            value = compiled.get_property(key)
        except RuntimeError:  # a property this OpenVINO's CPU plugin lacks
            continue
        out[key] = value if isinstance(value, (bool, int, float)) else str(value).split(".")[-1]
    if "INFERENCE_PRECISION_HINT" in out:  # "<Type: 'float32'>" -> "f32"
        out["INFERENCE_PRECISION_HINT"] = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
    return out


def layer_precisions(compiled: Any) -> dict[str, object]:
    """Runtime layers by execution precision, and the INT8 ones by layer type."""
    by_precision: Counter[str] = Counter()
    int8_types: Counter[str] = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind, precision = info["layerType"].astype(str), info["runtimePrecision"].astype(str)
        if kind in _NOT_COMPUTE:
            continue
        by_precision[precision] += 1
        if precision in ("u8", "i8"):
            int8_types[kind] += 1
    return {
        "layers_by_precision": dict(by_precision.most_common()),
        "int8_layers_by_type": dict(int8_types.most_common()),
    }


def _import_error(text: str) -> str:
    """One line for a blob OpenVINO refused: its "blob: ...isa=X" / "current: ...isa=Y" lines when the
    engine was compiled for another instruction set (another CPU, or ONEDNN_MAX_CPU_ISA set differently)."""
    isa = {
        line.split(":", 1)[0].strip(): line.split("isa=", 1)[1].strip()
        for line in text.splitlines()
        if "isa=" in line and line.strip().startswith(("blob:", "current:"))
    }
    if {"blob", "current"} <= set(isa):
        return (
            f"this openvino engine was compiled for {isa['blob']}, but this CPU offers {isa['current']} "
            "(a compiled blob runs only on the instruction set it was compiled for): rebuild it on this "
            "machine with trtforge build"
        )
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("Exception from")]
    return f"openvino cannot load this engine ({(lines or ['unknown error'])[0][:300]}); rebuild it with trtforge build"


class OpenVinoRunner:
    """One infer request of a compiled model; inputs and outputs by the ONNX model's names.

    :meth:`fork` makes another infer request of the same compiled model: loaded with ``streams=N``,
    OpenVINO runs N of them at once, each on a stream of its own (``bench --streams N``)."""

    def __init__(self, compiled: Any, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> None:
        self.compiled = compiled
        self.inputs = inputs
        self.outputs = outputs
        self._request = compiled.create_infer_request()

    def fork(self) -> OpenVinoRunner:
        return OpenVinoRunner(self.compiled, self.inputs, self.outputs)

    @property
    def runtime_properties(self) -> dict[str, object]:
        """The compiled model's settings as OpenVINO reports them (hint, streams, threads, precision)."""
        return _read_properties(self.compiled)

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        # share_inputs: the request reads the caller's arrays in place (the call is synchronous, so they are
        # not used after it returns) instead of copying them first: ~12 us less per 600 KB input here
        results = self._request.infer({i: feeds[spec.name] for i, spec in enumerate(self.inputs)}, share_inputs=True)
        return {spec.name: results[self.compiled.output(i)] for i, spec in enumerate(self.outputs)}


class OpenVinoBackend:
    name = "openvino"

    def version(self) -> str:
        return str(_ov().__version__)

    def device_facts(self, device: str) -> dict[str, object]:
        _check_cpu(device)
        core = _ov().Core()
        return {
            **cpu_facts(),
            "openvino_device": str(core.get_property("CPU", "FULL_DEVICE_NAME")),
            "optimization_capabilities": list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")),
        }

    def quant_flavour(self, config: BuildConfig) -> QuantFlavour:
        return openvino_flavour()

    def _check(self, config: BuildConfig, core: Any) -> None:
        _check_cpu(config.device)
        for fmt in config.input_formats + config.output_formats:
            if not fmt.linear:
                raise TrtforgeError(
                    f"IO format {fmt}: openvino reads and writes linear (chw) tensors only; "
                    f"use {fmt.dtype_word}:chw, or build with --backend tensorrt/tensorrt-rtx "
                    f"for {'+'.join(fmt.formats)}"
                )
        needed = _CAPABILITY.get(config.precision)
        if needed and needed not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            raise TrtforgeError(
                f"{config.precision} on openvino needs a CPU with {needed} arithmetic, which this "
                f"one ({core.get_property('CPU', 'FULL_DEVICE_NAME')}) lacks; build fp32 or int8"
            )

    def build(self, model: onnx.ModelProto, config: BuildConfig) -> BuiltEngine:
        from trtforge.backends.openvino_pads import fold_pads_into_max_pools
        from trtforge.backends.openvino_qdq import fold_qdq
        from trtforge.graph.model import graph_inputs, graph_outputs

        core = _ov().Core()
        self._check(config, core)
        properties = compile_properties(config.precision)
        try:
            read = core.read_model(model.SerializeToString())
            folded = fold_qdq(read)  # INT8: Q/DQ pairs as the FakeQuantize nodes OpenVINO optimises
            pads = fold_pads_into_max_pools(read)  # exact: zero padding of values >= 0 before a max pool
            compiled = core.compile_model(read, "CPU", properties)
        except RuntimeError as exc:
            first = (str(exc).strip().splitlines() or ["unknown error"])[0][:300]
            raise TrtforgeError(f"openvino cannot compile the model: {first}") from None
        blob = io.BytesIO()
        compiled.export_model(blob)
        facts: dict[str, object] = {
            "engine_format": "openvino compiled model (export_model blob)",
            "runtime_settings": properties,
            "properties": _read_properties(compiled),
            **layer_precisions(compiled),
        }
        if folded:
            facts["qdq_folded"] = f"{folded} activation Q/DQ pairs compiled as FakeQuantize (same values)"
        if pads:
            facts["pads_folded"] = f"{pads} zero Pad(s) in front of a MaxPool folded into its padding (same outputs)"
        if config.profiles:  # OpenVINO runs any shape in range; the manifest keeps the range asked for
            from trtforge.graph.ranges import validate_profiles

            facts["profiles"] = [r.to_json() for r in validate_profiles(config.profiles, graph_inputs(model))]
        return BuiltEngine(blob.getvalue(), graph_inputs(model), graph_outputs(model), facts)

    def load(self, data: bytes, manifest: Manifest, **options: object) -> OpenVinoRunner:
        ov = _ov()
        _check_cpu(str(options.get("device") or manifest.device.get("kind", "cpu")))
        if manifest.backend_version != ov.__version__:
            raise TrtforgeError(
                f"this engine was compiled by openvino {manifest.backend_version}, but openvino "
                f"{ov.__version__} is installed; a compiled blob loads only in the version that "
                "wrote it: rebuild it with trtforge build"
            )
        recorded = manifest.build.get("runtime_settings")
        properties = dict(recorded) if isinstance(recorded, dict) else {}
        threads = options.get("threads")
        streams = int(str(options.get("streams") or 1))
        properties.update(stream_properties(streams, int(str(threads)) if threads else None))
        try:
            compiled = ov.Core().import_model(io.BytesIO(data), "CPU", properties)
        except RuntimeError as exc:  # another CPU instruction set, or bytes that are no compiled model
            raise TrtforgeError(_import_error(str(exc))) from None
        return OpenVinoRunner(compiled, list(manifest.inputs), list(manifest.outputs))
