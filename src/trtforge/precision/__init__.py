"""Precision stage: calibration data, ranges, Q/DQ placement and casts, done once in the
ONNX graph so that every backend consumes the same transformed model.

``trtforge.precision.sensitivity(...)`` ranks a model's units by the error each adds at INT8 or
FP16 (:func:`trtforge.precision.mixed.sensitivity`, imported on first use)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trtforge.precision.mixed import sensitivity as sensitivity


def __getattr__(name: str) -> Any:
    if name == "sensitivity":
        from trtforge.precision.mixed import sensitivity

        return sensitivity
    raise AttributeError(f"module 'trtforge.precision' has no attribute {name!r}")
