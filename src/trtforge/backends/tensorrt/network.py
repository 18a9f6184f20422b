"""From an ONNX model to a TensorRT network: plugins, parsing, IO specs and formats, profiles.

The first half of :meth:`trtforge.backends.tensorrt.TensorRTBackend.build`, for both ``tensorrt``
and ``tensorrt_rtx`` (the name ``trt`` is the package the backend activated); what the parser
rejects comes back as one line naming the nodes, and ops no parser knows as a ``--plugins`` hint.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import onnx

from trtforge._files import existing_file
from trtforge.backends.tensorrt._trt import _DTYPES, _dims
from trtforge.config import BuildConfig, TensorSpec
from trtforge.errors import TrtforgeError
from trtforge.graph.ranges import ShapeRange, validate_profiles
from trtforge.precision.ioformat import for_tensors

if TYPE_CHECKING:
    import tensorrt as trt
else:
    from trtforge.backends.tensorrt._trt import trt


def load_plugins(builder: trt.Builder, logger: trt.ILogger, plugins: tuple[Path, ...], errors: list[str]) -> None:
    """``--plugins`` libraries into the builder's registry, then the standard plugins where the package has them."""
    registry = builder.get_plugin_registry()
    for lib in plugins:
        existing_file(lib, "--plugins library")
        try:
            handle = registry.load_library(str(lib))
        except Exception as exc:
            errors.append(str(exc).splitlines()[0])
            handle = None
        if handle is None:
            raise TrtforgeError(f"--plugins: cannot load {lib}: {'; '.join(errors[-2:]) or 'not a plugin library'}")
    if hasattr(trt, "init_libnvinfer_plugins"):
        trt.init_libnvinfer_plugins(logger, "")


def parse(
    builder: trt.Builder, logger: trt.ILogger, model: onnx.ModelProto, strongly_typed: bool, label: str
) -> tuple[trt.INetworkDefinition, trt.OnnxParser]:
    """The model as a network (strongly typed unless TensorRT 10's flag path); keep the parser until the build."""
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.SerializeToString()):
        raise _parse_error(parser, model, label)
    return network, parser


def _parse_error(parser: trt.OnnxParser, model: onnx.ModelProto, label: str) -> TrtforgeError:
    errors = []
    for i in range(parser.num_errors):
        e = parser.get_error(i)
        where = f"node {e.node_name()!r} ({e.node_operator()})" if e.node_name() else f"node #{e.node()}"
        errors.append(f"{where}: {' '.join(e.desc().split())}")
    ops = sorted({n.op_type for n in model.graph.node if not parser.supports_operator(n.op_type)})
    hint = (
        f"; unsupported op(s): {', '.join(ops)}: load a plugin that implements them with --plugins LIB.so"
        if ops
        else ""
    )
    return TrtforgeError(f"{label} cannot parse the model ({len(errors)} error(s)): {'; '.join(errors)}{hint}")


def io_specs(network: trt.INetworkDefinition, inputs: bool) -> list[TensorSpec]:
    count = network.num_inputs if inputs else network.num_outputs
    tensors = [network.get_input(i) if inputs else network.get_output(i) for i in range(count)]
    return [
        TensorSpec(
            t.name,
            _DTYPES.get(t.dtype.name, t.dtype.name.lower()),
            tuple(d if d >= 0 else (t.get_dimension_name(a) or -1) for a, d in enumerate(_dims(t.shape))),
        )
        for t in tensors
    ]


def set_io_formats(network: trt.INetworkDefinition, config: BuildConfig, label: str) -> dict[str, str]:
    chosen: dict[str, str] = {}
    for inputs, formats, what in ((True, config.input_formats, "input"), (False, config.output_formats, "output")):
        count = network.num_inputs if inputs else network.num_outputs
        tensors = {t.name: t for t in (network.get_input(i) if inputs else network.get_output(i) for i in range(count))}
        for name, fmt in for_tensors(formats, list(tensors), what).items():
            tensor = tensors[name]
            if _DTYPES.get(tensor.dtype.name) != fmt.dtype:
                want = next(k for k, v in _DTYPES.items() if v == fmt.dtype)
                try:
                    tensor.dtype = getattr(trt.DataType, want)
                except (AttributeError, TypeError):  # TensorRT-RTX: IO types come from the graph
                    raise TrtforgeError(
                        f"{label} takes {what} types from the model: {what} {name!r} is "
                        f"{_DTYPES.get(tensor.dtype.name)}, but the IO format asks {fmt}; cast the model's "
                        f"IO first (e.g. an FP16 graph with FP16 IO) or ask for {_DTYPES.get(tensor.dtype.name)}"
                    ) from None
            mask = 0
            for f in fmt.formats:
                mask |= 1 << int(getattr(trt.TensorFormat, "LINEAR" if f == "chw" else f.upper()))
            tensor.allowed_formats = mask
            chosen[name] = str(fmt)
    return chosen


def add_profiles(
    builder: trt.Builder, config: trt.IBuilderConfig, inputs: list[TensorSpec], profiles: tuple[ShapeRange, ...]
) -> tuple[tuple[ShapeRange, ...], list[trt.IOptimizationProfile]]:
    dynamic = [t for t in inputs if t.is_dynamic]
    if dynamic and not profiles:
        raise TrtforgeError(
            "TensorRT needs a shape range for each dynamic input: "
            + ", ".join(f"{t.name} ({t.shape_text()})" for t in dynamic)
            + "; pass --min-shapes/--opt-shapes/--max-shapes, e.g. --opt-shapes "
            + ",".join(
                f"{t.name}:" + "x".join(str(d) if isinstance(d, int) and d > 0 else "1" for d in t.shape)
                for t in dynamic
            )
            + ", or fix the shapes first with trtforge reshape"
        )
    added = []
    ranges = validate_profiles(profiles, inputs)
    for shape_range in ranges:
        profile = builder.create_optimization_profile()
        for e in shape_range.entries:
            profile.set_shape(e.name, trt.Dims(list(e.min)), trt.Dims(list(e.opt)), trt.Dims(list(e.max)))
        config.add_optimization_profile(profile)
        added.append(profile)
    return ranges, added
