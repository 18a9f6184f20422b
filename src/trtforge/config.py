"""Typed values that cross stage boundaries.

Strings from the command line are parsed into these once, at the CLI edge, so the
library never sees option dicts or magic strings.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from trtforge.errors import TrtforgeError

if TYPE_CHECKING:
    from trtforge.data.preprocess import Preprocess
    from trtforge.graph.ranges import ShapeRange
    from trtforge.precision.ioformat import IOFormat


_C = TypeVar("_C", bound="_Choice")


class _Choice(str, enum.Enum):
    """A string enum whose ``parse`` gives a user error listing the valid choices."""

    @classmethod
    def parse(cls: type[_C], text: str | _C) -> _C:
        if isinstance(text, cls):
            return text
        key = str(text).strip().lower()
        for member in cls:
            if member.value == key:
                return member
        choices = ", ".join(m.value for m in cls)
        raise TrtforgeError(f"unknown {cls._what()} {text!r}; expected one of: {choices}")

    @classmethod
    def _what(cls) -> str:
        return cls.__name__.lower()

    def __str__(self) -> str:
        return self.value


class Precision(_Choice):
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"


class CalibMethod(_Choice):
    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"
    MSE = "mse"

    @classmethod
    def _what(cls) -> str:
        return "calibration method"


DEFAULT_CALIB_METHOD = CalibMethod.MSE
"""The range search every INT8 build uses unless told (README, issue 13: why, with the numbers)."""
CALIB_METHOD_HELP = f"minmax | entropy | percentile | mse (default {DEFAULT_CALIB_METHOD})"


@dataclass(frozen=True)
class TensorSpec:
    """A model or engine input/output: name, numpy dtype name, and shape.

    A dimension is an int when static, or a str naming a dynamic dimension.
    """

    name: str
    dtype: str
    shape: tuple[int | str, ...]

    @property
    def is_dynamic(self) -> bool:
        return any(not isinstance(d, int) or d < 0 for d in self.shape)

    def shape_text(self) -> str:
        return "x".join(str(d) for d in self.shape) if self.shape else "scalar"

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> TensorSpec:
        shape = data["shape"]
        assert isinstance(shape, list)
        return cls(str(data["name"]), str(data["dtype"]), tuple(shape))


@dataclass(frozen=True)
class CalibrationConfig:
    """Where calibration data comes from and how ranges are computed from it."""

    data: Path | None = None
    """An image folder, .npz or .npy; None when a loader or an existing cache supplies the ranges."""
    preprocess: Preprocess | None = None
    num: int = 500
    batch_size: int = 8
    method: CalibMethod = DEFAULT_CALIB_METHOD
    percentile: float = 99.999
    seed: int = 0
    loader: str | None = None
    """``FILE.py[:func]`` yielding ``{input_name: array}`` batches, for non-image models."""
    cache: Path | None = None
    """TensorRT-format calibration cache: read when it matches, else written after calibrating."""
    cache_force: bool = False
    bias_correction: bool = True
    """Shift each Conv/Gemm bias by the mean output change its INT8 weights cause (histogram methods)."""
    empirical_bias_correction: bool = True
    """Then shift each again by the mean per-channel difference, INT8 model vs FP32, measured on the
    first calibration samples (counts the activations' quantization too; needs ``bias_correction``)."""
    equalize: bool = True
    """Before calibrating, even out the channels a depthwise Conv reads (scale each producer Conv channel
    up and the depthwise weights down; :mod:`trtforge.precision.equalize`), so one per-tensor activation
    scale fits them all. Outputs checked unchanged on the calibration samples; needs calibration data."""
    reduce_range: bool = False
    """7-bit weights on a CPU backend even where this CPU has VNNI, so the engine also runs on CPUs without
    it (where u8 x s8 kernels sum in saturating 16 bits). Without VNNI trtforge writes 7-bit weights anyway."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", CalibMethod.parse(self.method))  # "minmax" is accepted too
        for name in ("data", "cache"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value))
        if self.data is None and self.loader is None and self.cache is None:
            raise TrtforgeError(
                "INT8 needs calibration data: pass --calib-data DIR (images) or FILE.npz/.npy, "
                "--calib-loader FILE.py, or an existing --calib-cache FILE"
            )
        if self.num < 1:
            raise TrtforgeError(f"--calib-num must be at least 1, got {self.num}")
        if self.batch_size < 1:
            raise TrtforgeError(f"--calib-batch-size must be at least 1, got {self.batch_size}")
        if not 0.0 < self.percentile <= 100.0:
            raise TrtforgeError(f"--calib-percentile must be in (0, 100], got {self.percentile}")


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides what engine a backend builds from an ONNX model."""

    precision: Precision = Precision.FP32
    backend: str = "onnxruntime"
    device: str = "cpu"
    calibration: CalibrationConfig | None = None
    input_formats: tuple[IOFormat, ...] = ()
    """Boundary dtype/layout per input (trtexec's --inputIOFormats), in input order; one for all."""
    output_formats: tuple[IOFormat, ...] = ()
    profiles: tuple[ShapeRange, ...] = ()
    """Optimisation profiles (min/opt/max per dynamic input), for backends that need them."""
    exclude_nodes: tuple[str, ...] = ()
    """Nodes kept in FP32 by the precision stage (no Q/DQ, no FP16 cast)."""
    exclude_op_types: tuple[str, ...] = ()
    allow_inaccurate: bool = False
    """INT8: keep a model that fails its self-check against FP32 (warn, exit 0) instead of refusing it."""
    tensorrt: TensorRTOptions | None = None
    """TensorRT / TensorRT-RTX builder settings; other backends refuse or ignore them, saying so."""
    max_accuracy_drop: float | None = None
    """INT8/FP16/BF16: the largest error against FP32 on ``validation`` (in ``metric``'s units: top1 in
    percentage points of changed top-1 answers); over it, the most sensitive units stay FP32 (a mixed
    INT8 model's kept units run FP16 where the target has fast FP16 kernels)."""
    validation: Path | None = None
    """Validation samples (image folder with the calibration's preprocessing, or .npz/.npy)."""
    metric: str = "top1"
    """top1 | cosine | max-abs | FILE.py:function (outputs, reference) -> error."""
    val_num: int = 64
    drop_slow_units: bool = True
    """Budgeted INT8 on ONNX Runtime CPU: an INT8 unit whose float version runs faster (timed on this
    CPU) goes float when the error stays within the budget. False keeps every unit the search left INT8
    (e.g. when this CPU is not the one the engine will run on)."""
    val_preprocess: Preprocess | None = None
    """How image ``validation`` files become inputs (default: the calibration's preprocessing)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", Precision.parse(self.precision))  # "fp16" is accepted too
        if self.validation is not None and not isinstance(self.validation, Path):
            object.__setattr__(self, "validation", Path(self.validation))
        if self.max_accuracy_drop is not None:
            if self.precision is Precision.FP32:
                raise TrtforgeError("--max-accuracy-drop searches INT8/FP16 mixes; it does nothing for fp32")
            if self.max_accuracy_drop < 0:
                raise TrtforgeError(f"--max-accuracy-drop must not be negative, got {self.max_accuracy_drop}")
            if self.validation is None:
                raise TrtforgeError("--max-accuracy-drop needs --val-data DIR|FILE.npz to measure the drop on")
        if self.allow_inaccurate and self.precision is not Precision.INT8:
            raise TrtforgeError(
                "--allow-inaccurate keeps an INT8 model that fails its self-check; "
                f"it does nothing for {self.precision}"
            )
        if self.precision is Precision.INT8 and self.calibration is None:
            raise TrtforgeError("INT8 needs calibration data: pass --calib-data DIR (images) or FILE.npz/.npy")


@dataclass(frozen=True)
class TensorRTOptions:
    """Builder settings only the TensorRT family has (trtexec's names in the comments)."""

    workspace_mib: int | None = None  # --workspace / --memPoolSize=workspace:N
    mem_pools: tuple[tuple[str, int], ...] = ()  # (pool name, bytes), --memPoolSize
    timing_cache: Path | None = None  # --timingCacheFile
    opt_level: int | None = None  # --builderOptimizationLevel 0-5
    hardware_compat: str | None = None  # --hardwareCompatibilityLevel
    version_compat: bool = False  # --versionCompatible
    profiling_verbosity: str | None = None  # --profilingVerbosity layer_names_only|detailed|none
    plugins: tuple[Path, ...] = ()  # --plugins / --staticPlugins
    strongly_typed: bool = True  # --stronglyTyped; False only on TensorRT 10's flag path
    flags: tuple[str, ...] = ()  # TensorRT 10 flag path: "fp16", "bf16", "int8"
