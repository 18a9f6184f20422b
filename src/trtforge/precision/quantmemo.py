"""What :func:`trtforge.precision.quantize.quantize` computes the same way for every variant of one model.

The sensitivity ranking and the budgeted search quantize one prepared model dozens of times, with the
same ranges and flavour and only the float nodes changing. ONNX Runtime's quantizer then redoes, each
time, work whose result depends on neither: shape inference of the model (a save and a load), and each
weight's per-channel scales and zero points and its rounding to INT8 (a Python loop per channel: on
fer's 31-unit CNN, 90 of the 150 ms a variant took). A :class:`QuantMemo` keeps those for one model, so
a variant costs only the placement; the result is the same model, node for node and value for value
(``tests/precision/test_quantmemo.py`` compares them).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import onnx


class QuantMemo:
    """Shape inference and weight quantization of ``model``, kept for every :func:`quantize` call on it.

    Only valid for one model (checked by identity: do not edit it in place; weights are known by name)
    and one quantizer setting (the settings are part of every key, so another flavour only misses).
    It reaches into ONNX Runtime's quantizer at two private points (``_calc_initializer_quant_params``,
    the module's ``quantize_onnx_initializer``); should either go, the quantizer computes as before,
    only slower (``tests/precision/test_quantmemo.py`` checks that the memo is used).
    """

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self._inferred: onnx.ModelProto | None = None
        self._params: dict[tuple[object, ...], Any] = {}
        self._rounded: dict[tuple[object, ...], onnx.TensorProto] = {}

    def inferred(self, infer: Callable[[onnx.ModelProto], onnx.ModelProto]) -> onnx.ModelProto:
        """A fresh copy of ``infer(model)`` (the quantizer edits it), inferred once."""
        if self._inferred is None:
            self._inferred = infer(self.model)
        copy = onnx.ModelProto()
        copy.CopyFrom(self._inferred)
        return copy

    def quantizer(self, *args: Any, **kwargs: Any) -> Any:
        """ONNX Runtime's ``QDQQuantizer(*args, **kwargs)``, taking weight scales and rounded weights from
        this memo."""
        quantizer = _memo_quantizer()(*args, **kwargs)
        quantizer.memo = self
        return quantizer

    def params(self, quantizer: Any, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """``quantizer._calc_initializer_quant_params()``: ``compute()`` runs only for the tensors not seen."""
        from onnxruntime.quantization.base_quantizer import QuantizationParams

        settings = (
            quantizer.weight_qType,
            quantizer.activation_qType,
            quantizer.reduce_range,
            quantizer.is_activation_symmetric,
            quantizer.is_weight_symmetric(quantizer.weight_qType),
            quantizer.min_real_range,
            quantizer.block_size,
        )
        wanted = quantizer.tensors_to_quantize
        overrides = quantizer.tensor_quant_overrides
        keys = {
            n: (settings, n, i.tensor_type.value, i.axis, i.data_type, repr(overrides.get(n)))
            for n, i in wanted.items()
        }
        quantizer.tensors_to_quantize = {n: i for n, i in wanted.items() if keys[n] not in self._params}
        try:
            fresh = compute()
        finally:
            quantizer.tensors_to_quantize = wanted
        for name in wanted:
            self._params.setdefault(keys[name], fresh.get(name))  # None: not an initializer
        # a deep copy each: ONNX Runtime raises a weight's scales in place where its int32 bias needs it
        found = {n: self._params[keys[n]] for n in wanted}
        return {
            n: QuantizationParams(**{k: v.copy() if isinstance(v, np.ndarray) else v for k, v in p.data.items()})
            for n, p in found.items()
            if p is not None
        }

    @contextlib.contextmanager
    def rounding(self, module: Any) -> Iterator[None]:
        """ONNX Runtime's ``quantize_onnx_initializer``, as the quantizer module calls it, answered from the
        memo for a weight rounded before with the same scales and zero points: the module's function is
        swapped for the duration of the block (quantization runs on one thread)."""
        original = getattr(module, "quantize_onnx_initializer", None)
        if original is None:
            yield
            return

        def rounded(
            weight: onnx.TensorProto,
            quant_type: int,
            zero_point: np.ndarray,
            scale: np.ndarray,
            axis: int | None = None,
            quant_weight_name: str | None = None,
            block_size: int = 0,
        ) -> onnx.TensorProto:
            key = (weight.name, quant_type, _bytes(zero_point), _bytes(scale), axis, quant_weight_name, block_size)
            if key not in self._rounded:
                self._rounded[key] = original(
                    weight, quant_type, zero_point, scale, axis, quant_weight_name, block_size=block_size
                )
            copy = onnx.TensorProto()
            copy.CopyFrom(self._rounded[key])
            return copy

        module.quantize_onnx_initializer = rounded
        try:
            yield
        finally:
            module.quantize_onnx_initializer = original


@functools.cache
def _memo_quantizer() -> type:
    from onnxruntime.quantization import qdq_quantizer

    class MemoQuantizer(qdq_quantizer.QDQQuantizer):  # type: ignore[misc]
        memo: QuantMemo

        def _calc_initializer_quant_params(self) -> dict[str, Any]:
            if not _range_only(self.tensor_quant_overrides):  # other overrides: not what the memo keys on
                return super()._calc_initializer_quant_params()  # type: ignore[no-any-return]
            return self.memo.params(self, super()._calc_initializer_quant_params)

        def _quantize_normal_tensors(self) -> None:
            with self.memo.rounding(qdq_quantizer):
                super()._quantize_normal_tensors()

    return MemoQuantizer


def _range_only(overrides: Any) -> bool:
    """Whether ``overrides`` (ONNX Runtime's per-tensor overrides) only set a weight's ``reduce_range`` (and its
    axis): the memo keys on those."""
    return all(set(entry) <= {"axis", "reduce_range"} for entries in overrides.values() for entry in entries)


def _bytes(array: np.ndarray) -> tuple[str, tuple[int, ...], bytes]:
    a = np.asarray(array)
    return a.dtype.str, a.shape, a.tobytes()
