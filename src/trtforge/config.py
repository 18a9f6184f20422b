"""Typed values that cross stage boundaries.

Strings from the command line are parsed into these once, at the CLI edge, so the
library never sees option dicts or magic strings.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from trtforge.errors import TrtforgeError


class _Choice(str, enum.Enum):
    """A string enum whose ``parse`` gives a user error listing the valid choices."""

    @classmethod
    def parse(cls, text: str | _Choice) -> _Choice:
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

    @classmethod
    def _what(cls) -> str:
        return "calibration method"


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

    data: Path
    preprocess: object | None = None  # a precision.data.Preprocess; typed loosely to keep imports light
    num: int = 500
    batch_size: int = 8
    method: CalibMethod = CalibMethod.ENTROPY
    percentile: float = 99.999
    seed: int = 0

    def __post_init__(self) -> None:
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

    def __post_init__(self) -> None:
        if self.precision is Precision.INT8 and self.calibration is None:
            raise TrtforgeError(
                "INT8 needs calibration data: pass --calib-data DIR (images) or FILE.npz/.npy"
            )
