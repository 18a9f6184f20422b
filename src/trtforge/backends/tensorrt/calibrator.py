"""TensorRT 10's INT8 calibrator: the compatibility path behind ``--builder-flags int8``.

TensorRT 11 and TensorRT-RTX have no calibrator: INT8 there is Q/DQ nodes placed by
:mod:`trtforge.precision`.  On TensorRT 10 a weakly typed network with the INT8 flag and a model
without Q/DQ asks a calibrator for batches; this one answers from trtforge's calibration source
and reads and writes the same cache (TensorRT's text format plus trtforge's sidecar) as the
precision stage, so either path can reuse the other's cache.  Imported by
:mod:`trtforge.backends.tensorrt` only when the flag is set; type-checked against the
``tensorrt`` stubs (tests/backends/test_tensorrt_types.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from trtforge.config import CalibrationConfig, TensorSpec
from trtforge.errors import TrtforgeError
from trtforge.precision.sources import rebatch

if TYPE_CHECKING:
    import tensorrt as trt

    from trtforge.backends import cuda
else:
    from trtforge.backends.tensorrt._trt import trt


class _CalibrationFeed:
    """What TensorRT 10's INT8 calibrators ask for, answered from trtforge's calibration source and cache.

    Mixed into both calibrator kinds (entropy, min-max) in :func:`_calibrator`; every network input is
    fed, in batches of exactly the network's batch (explicit-batch networks take the data's shape).
    The cache is TensorRT's text format with trtforge's sidecar (``CACHE.json``), as the precision
    stage writes it, so either path can reuse the other's cache.
    """

    def __init__(self, calibration: CalibrationConfig, inputs: list[TensorSpec], batch: int, model_sha256: str) -> None:
        from trtforge.data.preprocess import Preprocess
        from trtforge.precision.sources import CalibrationSource

        preprocess = calibration.preprocess
        assert preprocess is None or isinstance(preprocess, Preprocess)
        self.calibration, self.batch, self.model_sha256, self.samples = calibration, batch, model_sha256, 0
        self.preprocess = preprocess.to_json() if preprocess else None
        self.dtypes = {t.name: np.dtype(t.dtype) for t in inputs}
        source = (
            CalibrationSource(
                calibration.data,
                list(self.dtypes),
                preprocess,
                calibration.num,
                calibration.batch_size,
                calibration.seed,
            )
            if calibration.data
            else None
        )
        from trtforge.data.check import checked_batches

        checked = checked_batches(source.batches(), inputs, f"calibration data {calibration.data}") if source else ()
        self.batches = rebatch(checked, batch) if source else iter(())
        self.computed: str | None = None
        """A cache's text trtforge calibrated for a method TensorRT has no calibrator for (see _calibrator)."""
        self.staging: tuple[cuda.Stream, cuda.TensorBuffers] | None = None  # CUDA only once TensorRT asks

    def get_batch_size(self) -> int:
        return self.batch

    def get_batch(self, names: list[str]) -> list[int]:
        from trtforge.backends import cuda

        if self.staging is None:
            self.staging = cuda.Stream(), cuda.TensorBuffers()
        stream, buffers = self.staging
        batch = next(self.batches, None)
        if batch is None:
            buffers.free()
            return []  # no more data
        pointers = [buffers.upload(n, batch[n], stream, self.dtypes[n]) for n in names]
        stream.synchronize()
        self.samples += self.batch
        return pointers

    def read_calibration_cache(self) -> bytes | None:  # type: ignore[override]  # stubs omit None: "no cache"
        """What TensorRT takes instead of calibrating: trtforge's own ranges for mse/percentile, else the
        --calib-cache file when there is one."""
        from trtforge.precision.cache import read_cache

        if self.computed is not None:
            return self.computed.encode("ascii")
        path = self.calibration.cache
        return read_cache(path).to_text().encode("ascii") if path is not None and path.is_file() else None

    def write_calibration_cache(self, cache: Any) -> None:
        from trtforge.precision.cache import CacheFacts, CalibrationCache, write_cache_with_facts

        path = self.calibration.cache
        if path is not None:
            facts = CacheFacts(
                self.model_sha256,
                str(self.calibration.method),
                self.preprocess,
                self.samples,
                str(self.calibration.data) if self.calibration.data else None,
            )
            write_cache_with_facts(path, CalibrationCache.from_text(bytes(cache).decode("ascii"), str(path)), facts)


def check_cache(calibration: CalibrationConfig, model_sha256: str) -> None:
    """Refuse a --calib-cache made for another model or preprocessing (before TensorRT reads it)."""
    from trtforge.data.preprocess import Preprocess
    from trtforge.precision.cache import checked_facts

    path, preprocess = calibration.cache, calibration.preprocess
    if path is not None and path.is_file():
        checked_facts(
            path,
            model_sha256,
            preprocess.to_json() if isinstance(preprocess, Preprocess) else None,
            calibration.cache_force,
        )


def _calibrator(
    calibration: CalibrationConfig,
    inputs: list[TensorSpec],
    profiles: list[trt.IOptimizationProfile],
    model: onnx.ModelProto,
) -> trt.IInt8Calibrator:
    """TensorRT 10's INT8 calibrator (entropy or min-max) fed by trtforge's data and cache."""
    from trtforge._files import sha256_bytes

    model_sha256 = sha256_bytes(model.SerializeToString(deterministic=True))
    check_cache(calibration, model_sha256)
    first = inputs[0].shape[0] if inputs and inputs[0].shape else 1
    batch = first if isinstance(first, int) and first > 0 else profiles[0].get_shape(inputs[0].name)[1][0]

    class EntropyCalibrator(_CalibrationFeed, trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            _CalibrationFeed.__init__(self, calibration, inputs, batch, model_sha256)

    class MinMaxCalibrator(_CalibrationFeed, trt.IInt8MinMaxCalibrator):
        def __init__(self) -> None:
            trt.IInt8MinMaxCalibrator.__init__(self)
            _CalibrationFeed.__init__(self, calibration, inputs, batch, model_sha256)

    calibrator = MinMaxCalibrator() if calibration.method.value == "minmax" else EntropyCalibrator()
    calibrator.computed = trtforge_ranges(calibration, model, model_sha256)
    return calibrator


def trtforge_ranges(calibration: CalibrationConfig, model: onnx.ModelProto, model_sha256: str) -> str | None:
    """For a method TensorRT has no calibrator for (mse, percentile): trtforge's ranges for ``model``, as
    the cache text TensorRT's entropy calibrator reads (its header), so TensorRT takes them instead of
    calibrating with another method. The same calibration as the Q/DQ path's (symmetric INT8, as
    TensorRT quantizes), written to --calib-cache when one is named. None for entropy and min-max."""
    if calibration.method.value in ("entropy", "minmax"):
        return None
    from trtforge.precision.apply import _int8_ranges
    from trtforge.precision.cache import CalibrationCache

    ranges, _ = _int8_ranges(model, calibration, model_sha256, None, True)
    return CalibrationCache.from_ranges("entropy", ranges).to_text()


def attach_calibrator(
    bc: trt.IBuilderConfig,
    calibration: CalibrationConfig | None,
    inputs: list[TensorSpec],
    profiles: list[trt.IOptimizationProfile],
    model: onnx.ModelProto,
) -> str | None:
    """``--builder-flags int8`` on a model without Q/DQ: a calibrator on ``bc``; its class name (None: Q/DQ)."""
    if any(n.op_type == "QuantizeLinear" for n in model.graph.node):
        return None  # the ranges are in the graph already
    if calibration is None:
        raise TrtforgeError(
            "--builder-flags int8 needs calibration data (--calib-data) or a --calib-cache for TensorRT's calibrator"
        )
    calibrator = _calibrator(calibration, inputs, profiles, model)
    bc.int8_calibrator = calibrator
    if profiles:
        bc.set_calibration_profile(profiles[0])
    return type(calibrator).__name__
