"""INT8 Q/DQ placement from calibrated ranges.

The target decides the flavour: which integer types, symmetric or not, per-channel or
not.  :func:`cpu_flavour` picks what is accurate and fast on the running CPU; the
TensorRT family wants symmetric INT8 everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import onnx


@dataclass(frozen=True)
class QuantFlavour:
    """How Q/DQ nodes are written for one family of targets."""

    name: str
    activation_type: str  # "uint8" | "int8"
    weight_type: str  # "int8"
    activation_symmetric: bool
    per_channel: bool
    reduce_range: bool
    reason: str
    quantize_bias: bool = True
    """False for TensorRT, whose parser takes FP32 biases and rejects int32 DequantizeLinear on them."""

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def has_vnni(flags: frozenset[str] | None = None) -> bool:
    flags = cpu_flags() if flags is None else flags
    return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


def cpu_flavour(flags: frozenset[str] | None = None) -> QuantFlavour:
    """ONNX Runtime CPU: U8 activations, S8 per-channel weights.

    Without VNNI, ONNX Runtime's U8S8 kernels use ``vpmaddubsw``, whose 16-bit
    intermediate sums saturate; 7-bit weights (``reduce_range``) keep them exact.
    """
    if has_vnni(flags):
        return QuantFlavour("onnxruntime-cpu", "uint8", "int8", False, True, False,
                            "CPU has VNNI: U8S8 without saturation, full 8-bit weights")
    return QuantFlavour("onnxruntime-cpu", "uint8", "int8", False, True, True,
                        "CPU lacks VNNI (AVX2 only): U8S8 with 7-bit weights (reduce_range) "
                        "to avoid vpmaddubsw saturation")


TENSORRT_FLAVOUR = QuantFlavour(
    "tensorrt", "int8", "int8", True, True, False,
    "TensorRT: symmetric INT8 activations (zero point 0), per-channel symmetric weights, FP32 biases",
    quantize_bias=False,
)


def quantize(
    model: onnx.ModelProto,
    ranges: dict[str, tuple[float, float]],
    flavour: QuantFlavour,
    exclude_nodes: tuple[str, ...] = (),
    exclude_op_types: tuple[str, ...] = (),
) -> onnx.ModelProto:
    """Insert QuantizeLinear/DequantizeLinear pairs using ``ranges``; returns a new model."""
    from onnxruntime.quantization import QDQQuantizer, QuantType
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, CalibrationMethod
    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry
    import numpy as np
    import tempfile

    qtype = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    op_types = sorted((set(QLinearOpsRegistry) | set(QDQRegistry)) - set(exclude_op_types))
    tensors = TensorsData(CalibrationMethod.MinMax, {
        name: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for name, (lo, hi) in ranges.items()
    })
    with tempfile.TemporaryDirectory(prefix="trtforge-quant-") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(model, str(path))
        inferred = load_model_with_shape_infer(path)
    quantizer = QDQQuantizer(
        inferred, flavour.per_channel, flavour.reduce_range,
        qtype[flavour.weight_type], qtype[flavour.activation_type], tensors,
        [], list(exclude_nodes), op_types,
        {"ActivationSymmetric": flavour.activation_symmetric, "WeightSymmetric": True,
         "QuantizeBias": flavour.quantize_bias},
    )
    quantizer.quantize_model()
    return quantizer.model.model
