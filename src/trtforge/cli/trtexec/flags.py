"""trtexec's flags: the table of what each one does, and the parse of a command line into an :class:`ExecRequest`.

trtexec spells options ``--flag`` or ``--flag=value``.  Every flag trtforge knows is in
:data:`FLAGS` with what it does; anything else is refused by name, never ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from trtforge.errors import TrtforgeError
from trtforge.numbers import integer, real


@dataclass
class ExecRequest:
    """What a trtexec command line asks for, before it is turned into library calls."""

    onnx: str | None = None
    save_engine: str | None = None
    load_engine: str | None = None
    skip_inference: bool = False
    precisions: set[str] = field(default_factory=set)  # "fp16", "bf16", "int8", "best"
    strongly_typed: bool = False
    calib_cache: str | None = None
    calib_data: str | None = None
    preprocess: str | None = None
    equalize: bool = True
    reduce_range: bool = False
    backend: str = "onnxruntime"
    device: str = "cpu"
    workspace_mib: float | None = None
    mem_pools: str | None = None
    input_formats: str | None = None
    output_formats: str | None = None
    min_shapes: str | None = None
    opt_shapes: str | None = None
    max_shapes: str | None = None
    shapes: str | None = None
    timing_cache: str | None = None
    opt_level: int | None = None
    plugins: list[str] = field(default_factory=list)
    hardware_compat: str | None = None
    version_compat: bool = False
    profiling_verbosity: str | None = None
    iterations: int = 10
    duration_s: float = 3.0
    warmup_ms: float = 200.0
    avg_runs: int = 10
    percentiles: str = "90,95,99"
    cuda_graph: bool = False
    streams: int = 1
    no_data_transfers: bool = False
    spin_wait: bool = False
    load_inputs: str | None = None
    export_times: str | None = None
    export_output: str | None = None
    export_layer_info: str | None = None
    dump_profile: bool = False
    verbose: bool = False
    notes: list[str] = field(default_factory=list)


# trtexec's numeric flags and their ranges: the shared strict parser (finite, ASCII, in range).
_INT_RANGES = {
    "builderOptimizationLevel": (0, 5),
    "iterations": (1, 10**9),
    "avgRuns": (1, 10**6),
    "streams": (1, 256),
    "infStreams": (1, 256),
}
_REAL_RANGES = {"workspace": (0.0, float(1 << 40)), "duration": (0.0, 86400.0), "warmUp": (0.0, 3.6e6)}


def _int(flag: str, value: str) -> int:
    low, high = _INT_RANGES.get(flag, (None, None))
    return integer(value, f"--{flag}", low, high)


def _float(flag: str, value: str) -> float:
    low, high = _REAL_RANGES.get(flag, (None, None))
    return real(value, f"--{flag}", low, high, low_open=flag == "workspace")


def _set(attr: str, convert: Callable[[str, str], object] | None = None) -> Callable[[ExecRequest, str, str], None]:
    def apply(req: ExecRequest, flag: str, value: str) -> None:
        setattr(req, attr, convert(flag, value) if convert else value)

    return apply


def _true(attr: str) -> Callable[[ExecRequest, str, str], None]:
    def apply(req: ExecRequest, flag: str, value: str) -> None:
        setattr(req, attr, True)

    return apply


def _false(attr: str) -> Callable[[ExecRequest, str, str], None]:
    def apply(req: ExecRequest, flag: str, value: str) -> None:
        setattr(req, attr, False)

    return apply


def _precision(name: str) -> Callable[[ExecRequest, str, str], None]:
    def apply(req: ExecRequest, flag: str, value: str) -> None:
        req.precisions.add(name)

    return apply


def _append(attr: str) -> Callable[[ExecRequest, str, str], None]:
    def apply(req: ExecRequest, flag: str, value: str) -> None:
        getattr(req, attr).append(value)

    return apply


# trtexec's --hardwareCompatibilityLevel words -> trtforge's --hardware-compat words
_HARDWARE_COMPAT = {"none": "none", "ampere+": "ampere+", "samecomputecapability": "same-compute-capability"}


def _hardware_compat(req: ExecRequest, flag: str, value: str) -> None:
    word = _HARDWARE_COMPAT.get(value.strip().lower())
    if word is None:
        raise TrtforgeError(f"--{flag}={value}: expected none, ampere+ or sameComputeCapability")
    req.hardware_compat = word


def _explicit_batch(req: ExecRequest, flag: str, value: str) -> None:
    req.notes.append("--explicitBatch: accepted; networks are always explicit-batch (as in TensorRT 10)")


@dataclass(frozen=True)
class Flag:
    takes_value: bool
    apply: Callable[[ExecRequest, str, str], None]
    help: str


FLAGS: dict[str, Flag] = {
    "onnx": Flag(True, _set("onnx"), "ONNX model to build"),
    "saveEngine": Flag(True, _set("save_engine"), "engine file to write"),
    "loadEngine": Flag(True, _set("load_engine"), "engine file to load instead of building"),
    "skipInference": Flag(False, _true("skip_inference"), "build only"),
    "fp16": Flag(False, _precision("fp16"), "FP16 (a cast of the graph, FP32 kept where FP16 overflows)"),
    "bf16": Flag(False, _precision("bf16"), "BF16 (a cast of the graph)"),
    "int8": Flag(False, _precision("int8"), "INT8 Q/DQ from --calib or --calib-data"),
    "best": Flag(False, _precision("best"), "INT8 when calibration is given, else FP16"),
    "stronglyTyped": Flag(False, _true("strongly_typed"), "build the graph's own types"),
    "calib": Flag(True, _set("calib_cache"), "calibration cache (TensorRT text format)"),
    "calib-data": Flag(True, _set("calib_data"), "trtforge: calibrate from images or .npz"),
    "preprocess": Flag(True, _set("preprocess"), "trtforge: preprocessing of --calib-data images"),
    "no-equalize": Flag(False, _false("equalize"), "trtforge: INT8 without channel equalisation"),
    "reduce-range": Flag(False, _true("reduce_range"), "trtforge: 7-bit INT8 weights, for CPUs without VNNI too"),
    "backend": Flag(True, _set("backend"), "trtforge: backend (default onnxruntime)"),
    "device": Flag(True, _set("device"), "trtforge: device for the backend (default cpu)"),
    "workspace": Flag(True, _set("workspace_mib", _float), "workspace pool in MiB (old spelling)"),
    "memPoolSize": Flag(True, _set("mem_pools"), "memory pools, e.g. workspace:1024"),
    "explicitBatch": Flag(False, _explicit_batch, "accepted; no effect"),
    "inputIOFormats": Flag(True, _set("input_formats"), "input formats, e.g. fp16:chw"),
    "outputIOFormats": Flag(True, _set("output_formats"), "output formats, e.g. fp16:chw"),
    "minShapes": Flag(True, _set("min_shapes"), "profile minimum shapes"),
    "optShapes": Flag(True, _set("opt_shapes"), "profile optimum shapes"),
    "maxShapes": Flag(True, _set("max_shapes"), "profile maximum shapes"),
    "shapes": Flag(True, _set("shapes"), "inference shapes"),
    "timingCacheFile": Flag(True, _set("timing_cache"), "timing cache to load and save"),
    "builderOptimizationLevel": Flag(True, _set("opt_level", _int), "builder optimisation level 0-5"),
    "plugins": Flag(True, _append("plugins"), "plugin library to load (repeat)"),
    "staticPlugins": Flag(True, _append("plugins"), "plugin library to load (repeat)"),
    "hardwareCompatibilityLevel": Flag(True, _hardware_compat, "none | ampere+ | sameComputeCapability"),
    "versionCompatible": Flag(False, _true("version_compat"), "plan runs on later TensorRT versions"),
    "profilingVerbosity": Flag(True, _set("profiling_verbosity"), "layer_names_only | detailed | none"),
    "iterations": Flag(True, _set("iterations", _int), "run at least N inference iterations"),
    "duration": Flag(True, _set("duration_s", _float), "run at least S seconds"),
    "warmUp": Flag(True, _set("warmup_ms", _float), "warm up for MS milliseconds"),
    "avgRuns": Flag(True, _set("avg_runs", _int), "queries averaged per reported run"),
    "percentile": Flag(True, _set("percentiles"), "percentiles to report"),
    "useCudaGraph": Flag(False, _true("cuda_graph"), "capture inference in a CUDA graph"),
    "streams": Flag(True, _set("streams", _int), "concurrent inference streams"),
    "infStreams": Flag(True, _set("streams", _int), "concurrent inference streams"),
    "noDataTransfers": Flag(False, _true("no_data_transfers"), "leave out host/device copies"),
    "useSpinWait": Flag(False, _true("spin_wait"), "spin instead of blocking on synchronisation"),
    "loadInputs": Flag(True, _set("load_inputs"), "inputs from files: name:file.bin,..."),
    "exportTimes": Flag(True, _set("export_times"), "per-query times as JSON"),
    "exportOutput": Flag(True, _set("export_output"), "outputs as JSON"),
    "exportLayerInfo": Flag(True, _set("export_layer_info"), "layer information as JSON"),
    "dumpProfile": Flag(False, _true("dump_profile"), "per-layer profile"),
    "verbose": Flag(False, _true("verbose"), "verbose log"),
}


def parse(argv: Sequence[str]) -> ExecRequest:
    """Turn trtexec-style arguments into an :class:`ExecRequest`; unknown flags are refused."""
    req = ExecRequest()
    for arg in argv:
        if not arg.startswith("--"):
            raise TrtforgeError(f"unexpected argument {arg!r}: trtexec flags look like --flag or --flag=value")
        name, has_value, value = arg[2:].partition("=")
        flag = FLAGS.get(name)
        if flag is None:
            raise TrtforgeError(f"unknown or unsupported trtexec flag --{name}; see trtforge exec --help for the list")
        if flag.takes_value and not (has_value and value):
            raise TrtforgeError(f"--{name} needs a value: --{name}=VALUE")
        if not flag.takes_value and has_value:
            raise TrtforgeError(f"--{name} takes no value (got --{name}={value})")
        flag.apply(req, name, value)
    if not (req.onnx or req.load_engine):
        raise TrtforgeError("give a model: --onnx=MODEL.onnx (to build) or --loadEngine=ENGINE (to run)")
    if req.onnx and req.load_engine:
        raise TrtforgeError("give either --onnx or --loadEngine, not both")
    return req
