"""The precision stage: the whole of it, once, in the ONNX graph, for every backend.

:func:`apply` takes the model as the user gave it and a :class:`BuildConfig`, and returns the
model every backend consumes (FP16/BF16 as a checked cast of the graph; INT8 as Q/DQ nodes placed
in the backend's flavour from calibrated or cached ranges; boundary IO formats) and the facts the
manifest records. :func:`resolve` fits the user's ``--preprocess`` to the model input once, so
calibration, the FP16 check and TensorRT 10's calibrator read the same pixels and write the same
cache sidecar.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from trtforge._files import sha256_bytes
from trtforge.config import BuildConfig, CalibrationConfig, Precision
from trtforge.errors import TrtforgeError
from trtforge.graph.model import graph_inputs

if TYPE_CHECKING:
    from trtforge.precision.check import Holdout
    from trtforge.precision.quantize import QuantFlavour


def resolve(config: BuildConfig, model: onnx.ModelProto) -> BuildConfig:
    """``config`` with its calibration preprocessing fitted to the model's one input."""
    calibration = config.calibration
    if calibration is None or calibration.preprocess is None:
        return config
    inputs = graph_inputs(model)
    if len(inputs) != 1:
        return config
    fitted = calibration.preprocess.resolve(inputs[0])
    return dataclasses.replace(config, calibration=dataclasses.replace(calibration, preprocess=fitted))


def apply(
    model: onnx.ModelProto, config: BuildConfig, flavour: QuantFlavour | None
) -> tuple[onnx.ModelProto, dict[str, dict[str, object] | None]]:
    """The model with its precision and IO formats, and facts by manifest section.

    ``config`` is expected resolved (:func:`resolve`); ``flavour`` is the backend's Q/DQ placement,
    needed for INT8 only. Facts: ``calibration`` (INT8), ``cast`` (FP16/BF16), ``io_formats``.
    """
    facts: dict[str, dict[str, object] | None] = {"calibration": None, "cast": None, "io_formats": None}
    if config.precision is Precision.INT8:
        assert config.calibration is not None and flavour is not None
        model, facts["calibration"] = quantize_int8(model, config.calibration, flavour, config)
    elif config.precision in (Precision.FP16, Precision.BF16):
        model, facts["cast"] = cast_half(model, config)
    model, facts["io_formats"] = io_formats(model, config)
    return model, facts


def io_formats(model: onnx.ModelProto, config: BuildConfig) -> tuple[onnx.ModelProto, dict[str, object] | None]:
    """The boundary IO formats (the last step of every precision path) and their facts, if any were asked."""
    if not (config.input_formats or config.output_formats):
        return model, None
    from trtforge.precision import ioformat

    model, changed = ioformat.apply(model, config.input_formats, config.output_formats)
    facts: dict[str, object] = {
        "inputs": [str(f) for f in config.input_formats],
        "outputs": [str(f) for f in config.output_formats],
        "retyped": changed,
    }
    return model, facts


_PROGRESS_EVERY_S = 10.0  # a line this often while calibrating when stderr is not a terminal


def _progress(total: int | None, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, dynamic_ncols=True, disable=None, leave=False)


def quantize_int8(
    model: onnx.ModelProto, calibration: CalibrationConfig, flavour: QuantFlavour, config: BuildConfig
) -> tuple[onnx.ModelProto, dict[str, object]]:
    """Ranges (from a matching cache, else by calibrating), then Q/DQ nodes in the backend's flavour."""
    from trtforge.precision.check import Holdout, verify
    from trtforge.precision.quantize import (
        INT8_MIN_OPSET,
        bake_float_weights,
        ensure_opset,
        follow_exclusions,
        kept_float,
        prepare,
        quantize,
    )

    started = time.perf_counter()
    model_sha = sha256_bytes(model.SerializeToString(deterministic=True))  # the model as the user gave it
    model, upgraded_from = ensure_opset(model)  # before calibrating: a refusal costs nothing
    if upgraded_from is not None:
        print(
            f"note: upgraded the model from opset {upgraded_from} to {INT8_MIN_OPSET} for INT8 (per-channel "
            "Q/DQ); checked: same outputs on random inputs",
            file=sys.stderr,
        )
    source, model = model, prepare(model)
    excluded = follow_exclusions(source, model, config.exclude_nodes, config.exclude_op_types)
    reference, (model, equalized) = model, equalize_channels(model, calibration)
    from trtforge.graph.batch import batch_axes

    holdout = Holdout(axes=batch_axes(graph_inputs(model)))  # a state's samples on axis 1; a scalar whole
    means: dict[str, Any] = {}
    kept: list[dict[str, Any]] = []
    ranges, facts = _int8_ranges(model, calibration, model_sha, holdout, flavour.activation_symmetric, means, kept)
    quantized = quantize(model, ranges, flavour, excluded.nodes, excluded.op_types)
    facts["bias_correction"] = bias_correction(model, quantized, calibration, means)
    facts["empirical_bias_correction"] = empirical_bias_correction(model, quantized, calibration, kept if means else [])
    facts["float_weights_baked"] = bake_float_weights(quantized, flavour)
    facts["equalization"] = equalized
    facts["check"] = verify(
        reference,  # the model before equalisation: the check also covers that pass
        quantized,
        holdout.feeds() or _cached_check_feeds(reference, config),
        str(calibration.data or calibration.loader),
        holdout.held_back,
        config.allow_inaccurate,
        fuse_qdq=flavour.placement == "onnxruntime",  # other flavours: the Q/DQ arithmetic as written
    )
    facts.update(
        {
            "flavour": flavour.to_json(),
            "seconds": round(time.perf_counter() - started, 2),
            "prepared": "onnxruntime basic graph optimizations (constants folded, Conv+BN/Mul/Add fused)",
            "kept_float": kept_float(model, ranges),
            "opset_upgraded_from": upgraded_from,
        }
    )
    if config.exclude_nodes or config.exclude_op_types:
        facts["excluded"] = {
            "nodes": list(config.exclude_nodes),
            "op_types": list(config.exclude_op_types),
            **excluded.to_json(),
        }
    return quantized, facts


def equalize_channels(
    model: onnx.ModelProto, calibration: CalibrationConfig
) -> tuple[onnx.ModelProto, dict[str, object] | str]:
    """``model`` with the channels its depthwise Convs read evened out (:mod:`trtforge.precision.equalize`),
    measured on the calibration data, and the manifest's record; or ``model`` and why not."""
    if not calibration.equalize:
        return model, "off (--no-equalize)"
    if calibration.cache is not None:  # read or written, its ranges must describe the model as given
        return model, (
            "not applied: --calib-cache given (a cache's ranges describe the model as given, for TensorRT and later "
            "builds alike; equalised tensors would not match them)"
        )
    from trtforge.precision.equalize import NO_PAIRS, TOLERANCE, calibration_batches, equalize, find_pairs

    if not find_pairs(model):  # before reading any data
        return model, {"applied": False, "reason": NO_PAIRS}
    started = time.perf_counter()
    equalized, facts = equalize(model, *calibration_batches(model, calibration))
    facts["seconds"] = round(time.perf_counter() - started, 2)
    if facts["applied"]:
        print(
            f"note: equalised the channels of {facts['pairs']} Conv -> depthwise Conv pair(s) before INT8 (outputs "
            f"unchanged within {TOLERANCE:g} of their range on {facts['checked_on']}; --no-equalize turns it off)",
            file=sys.stderr,
        )
    elif "outputs changed" in str(facts.get("reason")):
        print(f"warning: channel equalisation not applied: {facts['reason']}", file=sys.stderr)
    return equalized, facts


def bias_correction(
    model: onnx.ModelProto, quantized: onnx.ModelProto, calibration: CalibrationConfig, means: dict[str, Any]
) -> dict[str, object] | str:
    """Correct ``quantized``'s biases in place (:mod:`trtforge.precision.biascorrect`), or say why not."""
    if not calibration.bias_correction:
        return "off (--no-bias-correction)"
    if not means:
        return "not applied: needs the per-channel means a histogram calibration (entropy, mse, percentile) gathers"
    from trtforge.precision.biascorrect import correct_biases

    return correct_biases(model, quantized, means)


def empirical_bias_correction(
    model: onnx.ModelProto, quantized: onnx.ModelProto, calibration: CalibrationConfig, kept: list[dict[str, Any]]
) -> dict[str, object] | str:
    """The second, measured bias correction on the ``kept`` calibration batches, in place
    (:func:`trtforge.precision.biascorrect.correct_biases_empirically`), or why not."""
    from trtforge.precision.biascorrect import correct_biases_empirically

    if not calibration.bias_correction:
        return "off (--no-bias-correction)"
    if not calibration.empirical_bias_correction:
        return "off (--no-measured-bias-correction)"
    if not kept:  # it follows the weight-error correction, which needs a histogram method's means
        return "not applied: as the weight-error correction (a histogram method's calibration, not a cache)"
    started = time.perf_counter()
    facts = correct_biases_empirically(model, quantized, kept)
    facts["seconds"] = round(time.perf_counter() - started, 2)
    return facts


_EMPIRICAL_SAMPLES = 64  # calibration samples kept for the measured bias correction (memory and time bound)


def _int8_ranges(
    model: onnx.ModelProto,
    calibration: CalibrationConfig,
    model_sha: str,
    holdout: Holdout | None = None,
    symmetric: bool = False,
    means: dict[str, Any] | None = None,
    kept: list[dict[str, Any]] | None = None,
) -> tuple[dict[str, tuple[float, float]], dict[str, object]]:
    """``--calib-cache``: use it when it exists and matches; otherwise calibrate and write it.

    ``symmetric``: the flavour quantizes activations symmetric (the ``mse`` search needs to know);
    ``means``, if given, receives each calibrated tensor's per-channel mean (none from a cache)."""
    from trtforge.data.preprocess import Preprocess
    from trtforge.precision import cache as calib_cache

    preprocess = calibration.preprocess
    assert preprocess is None or isinstance(preprocess, Preprocess)
    inputs = graph_inputs(model)
    if preprocess is not None and len(inputs) == 1:
        preprocess = preprocess.for_input(inputs[0].shape)  # the size a bare resize mode resolves to
    wanted_preprocess = preprocess.to_json() if preprocess else None
    path = calibration.cache
    if path is not None and path.exists():
        cache = calib_cache.read_cache(path)
        known = calib_cache.checked_facts(path, model_sha, wanted_preprocess, calibration.cache_force)
        ranges = calib_cache.cache_ranges(cache, known)
        _check_cache_covers(model, ranges, path)
        return ranges, {
            "cache": str(path),
            "cache_header": cache.header,
            "tensors": len(cache.scales),
            "method": known.method if known else cache.calibrator,
            "samples": known.samples if known else None,
            "data": known.data if known else None,
            "preprocess": known.preprocess if known else None,
            "cache_checked": known is not None,
        }
    if calibration.data is None and calibration.loader is None:
        raise TrtforgeError(
            f"calibration cache {path} does not exist and no data was given to make it: "
            "add --calib-data DIR|FILE.npz|FILE.npy or --calib-loader FILE.py[:func]"
        )
    ranges, facts = _calibrate(model, calibration, holdout, symmetric, means, kept)
    if path is not None:
        calib_cache.write_cache_with_facts(
            path,
            calib_cache.CalibrationCache.from_ranges(str(calibration.method), ranges),
            calib_cache.CacheFacts(
                model_sha,
                str(calibration.method),
                wanted_preprocess,
                int(str(facts["samples"])),
                str(facts["data"]),
                ranges,
            ),
        )
        facts["cache"] = str(path)
        facts["cache_written"] = True
    return ranges, facts


def _calibrate(
    model: onnx.ModelProto,
    calibration: CalibrationConfig,
    holdout: Holdout | None = None,
    symmetric: bool = False,
    means: dict[str, Any] | None = None,
    kept: list[dict[str, Any]] | None = None,
) -> tuple[dict[str, tuple[float, float]], dict[str, object]]:
    """``kept``, if given, receives the first calibration batches (up to ``_EMPIRICAL_SAMPLES`` samples)."""
    from trtforge.data.check import checked_batches
    from trtforge.precision.calibrate import calibrate
    from trtforge.precision.sources import CalibrationSource, source_for

    specs = graph_inputs(model)
    source = source_for(specs, calibration)
    used, started, said = 0, time.perf_counter(), time.perf_counter()

    def advance(n: int) -> None:
        nonlocal used, said
        used += n
        bar.update(n)
        if bar.disable and time.perf_counter() - said >= _PROGRESS_EVERY_S:  # stderr is not a terminal
            said = time.perf_counter()
            print(
                f"calibrating ({calibration.method}): {used}/{source.total or '?'} samples, {said - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    with _progress(source.total, f"calibrating ({calibration.method})") as bar:
        batches = checked_batches(source.batches(), specs, f"calibration data {source.describe()}")
        if holdout is not None:  # the self-check's samples
            batches = holdout.split(batches, source.total)
        if kept is not None:
            batches = _keeping(batches, kept, _EMPIRICAL_SAMPLES)
        ranges = calibrate(model, batches, calibration.method, calibration.percentile, advance, symmetric, means)
    if source.skipped.files:
        print(f"skipped {len(source.skipped.files)} unreadable file(s) in {source.describe()}", file=sys.stderr)
    preprocess = source.preprocess if isinstance(source, CalibrationSource) else None
    facts: dict[str, object] = {
        "data": source.describe(),
        "samples": used,
        "skipped": len(source.skipped.files),
        "held_back_for_check": holdout.count() if holdout is not None and holdout.held_back else 0,
        "method": str(calibration.method),
        "batch_size": calibration.batch_size,
        "preprocess": preprocess.to_json() if preprocess else None,
    }
    if calibration.method.value == "percentile":
        facts["percentile"] = calibration.percentile
    return ranges, facts


def _keeping(batches: Any, kept: list[dict[str, Any]], most: int) -> Any:
    """``batches`` passed on, the first ones (up to ``most`` samples on axis 0) also appended to ``kept``."""
    import numpy as np

    count = 0
    for batch in batches:
        if count < most and batch:
            kept.append({name: np.array(value) for name, value in batch.items()})
            first = next(iter(batch.values()))
            count += int(np.shape(first)[0]) if np.ndim(first) else 1
        yield batch


def _check_cache_covers(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]], path: Path) -> None:
    names = {t for node in model.graph.node for t in node.output} | {i.name for i in model.graph.input}
    if not names & set(ranges):
        sample = ", ".join(sorted(ranges)[:3])
        raise TrtforgeError(
            f"calibration cache {path} names none of this model's tensors (it has e.g. {sample}); "
            "it was made for another model"
        )


def _cached_check_feeds(model: onnx.ModelProto, config: BuildConfig) -> dict[str, Any] | None:
    """Samples to check an INT8 model made from a cache on: the calibration data, if given."""
    if config.calibration is None or config.calibration.data is None:
        return None
    return _check_feeds(model, config)[0]


def _check_feeds(model: onnx.ModelProto, config: BuildConfig) -> tuple[dict[str, Any] | None, str]:
    """One batch to check a cast on: calibration data when given, else seeded random inputs."""
    calibration = config.calibration
    if calibration is not None and calibration.data is not None:
        from trtforge.data.preprocess import Preprocess
        from trtforge.precision.sources import CalibrationSource

        preprocess = calibration.preprocess
        assert preprocess is None or isinstance(preprocess, Preprocess)
        first = graph_inputs(model)[0].shape[:1]
        size = first[0] if first and isinstance(first[0], int) and first[0] > 0 else 8  # a static batch rules
        from trtforge.graph.batch import batch_axes

        source = CalibrationSource(
            calibration.data,
            [t.name for t in graph_inputs(model)],
            preprocess,
            size,
            size,
            calibration.seed,
            axes=batch_axes(graph_inputs(model)),
        )
        batch = next(iter(source.batches()), None)
        if batch is not None:
            return dict(batch), f"{min(size, len(source))} sample(s) of {calibration.data}"
    from trtforge.data.arrays import random_inputs
    from trtforge.graph.verify import compared_constants

    try:
        feeds = random_inputs(graph_inputs(model), seed=0, batch=1)
    except TrtforgeError as exc:
        return None, f"not checked ({exc})"
    fixed = compared_constants(model)  # a scalar that picks an If branch gets the value tested for
    feeds.update({k: v.astype(feeds[k].dtype) for k, v in fixed.items() if k in feeds})
    where = f"; {', '.join(f'{k}={v.item()}' for k, v in fixed.items())}" if fixed else ""
    return feeds, f"seeded random inputs in [-1, 1){where}"


def cast_half(model: onnx.ModelProto, config: BuildConfig) -> tuple[onnx.ModelProto, dict[str, object]]:
    """Cast to FP16/BF16, checked against FP32; nodes that overflow or drift stay FP32 (reported)."""
    from trtforge.precision.fp16 import cast

    feeds, checked_on = _check_feeds(model, config)
    started = time.perf_counter()
    casted, report = cast(model, config.precision, feeds, checked_on, config.exclude_nodes, config.exclude_op_types)
    automatic = {k: v for k, v in report.kept.items() if v != "excluded by the user"}
    if automatic:
        print(
            f"kept {len(automatic)} node(s) in FP32 after checking the {config.precision} cast: "
            + "; ".join(f"{k} ({v})" for k, v in list(automatic.items())[:5])
            + (" ..." if len(automatic) > 5 else ""),
            file=sys.stderr,
        )
    facts = report.to_json()
    facts["seconds"] = round(time.perf_counter() - started, 2)
    return casted, facts
