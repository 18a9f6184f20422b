"""TensorRT backends: full TensorRT 10/11 (``tensorrt``) and TensorRT-RTX (``tensorrt_rtx``).

Both packages expose the same builder API, so one module serves both.  The model arrives
carrying its precision (FP16 casts or Q/DQ nodes from :mod:`trtforge.precision`), so the
network is strongly typed: the only mode on TensorRT 11 and TensorRT-RTX.  TensorRT 10's
builder flags and INT8 calibrator are a compatibility path, refused elsewhere with a
message naming the path to use instead.

This module is the backend and its builder settings; beside it, each imported when first needed:
:mod:`~trtforge.backends.tensorrt.network` (ONNX to network: plugins, parsing, IO formats,
profiles), :mod:`~trtforge.backends.tensorrt.runtime` (load checks, the runner, inspection) and
:mod:`~trtforge.backends.tensorrt.calibrator` (TensorRT 10's INT8 calibrator).
The code is written once against the name ``trt``: for mypy that is the ``tensorrt`` stubs;
at run time it is whichever package the backend instance activated (:func:`_using`).
Only TensorRT-RTX's builder runs in CI (it needs no GPU); the full-TensorRT-only parts
(flags, calibrator, runner) are type-checked (tests/backends/test_tensorrt_types.py).
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

import onnx

from trtforge._files import write_bytes_atomic
from trtforge.backends.base import BuiltEngine
from trtforge.backends.tensorrt._trt import PACKAGES, _cuda_device, _logger, _progress_monitor, _using
from trtforge.config import BuildConfig, TensorRTOptions, TensorSpec
from trtforge.errors import TrtforgeError
from trtforge.precision.quantize import TENSORRT_FLAVOUR, QuantFlavour

if TYPE_CHECKING:
    import tensorrt as trt

    from trtforge.backends.tensorrt.runtime import TensorRTRunner
    from trtforge.engine import Manifest
else:
    from trtforge.backends.tensorrt._trt import trt

_POOLS = {
    "workspace": "WORKSPACE",
    "tacticSharedMem": "TACTIC_SHARED_MEMORY",
    "dlaSRAM": "DLA_MANAGED_SRAM",
    "dlaLocalDRAM": "DLA_LOCAL_DRAM",
    "dlaGlobalDRAM": "DLA_GLOBAL_DRAM",
}
_HARDWARE_COMPAT = {
    "none": "NONE",
    "ampere+": "AMPERE_PLUS",
    "ampere_plus": "AMPERE_PLUS",
    "same-compute-capability": "SAME_COMPUTE_CAPABILITY",
}
_VERBOSITY = {"none": "NONE", "layer_names_only": "LAYER_NAMES_ONLY", "detailed": "DETAILED"}
_FLAGS = {"fp16": "FP16", "bf16": "BF16", "int8": "INT8"}
RTX_DEFAULT_TARGETS = ["8.0", "8.6", "8.9", "12.0"]
"""Compute capabilities a TensorRT-RTX engine runs on when none is set (the docs: Ampere and later, no Turing)."""


class TensorRTBackend:
    """``tensorrt`` or ``tensorrt-rtx``: the same builder API from two Python packages."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.package = PACKAGES[name]
        self.rtx = name == "tensorrt-rtx"
        self.label = "TensorRT-RTX" if self.rtx else "TensorRT"

    def module(self) -> ModuleType:
        """The package, or a user error with what to install (``tensorrt`` alone can be a stub folder)."""
        try:
            module = importlib.import_module(self.package)
        except ImportError:
            module = None
        if module is None or not hasattr(module, "Builder"):
            how = (
                "pip install 'trtforge[rtx]' (tensorrt-rtx runs its builder without a GPU)"
                if self.rtx
                else "NVIDIA's TensorRT wheel on a machine with an NVIDIA GPU (pip install tensorrt), "
                "or use --backend tensorrt-rtx"
            )
            raise TrtforgeError(f"--backend {self.name} needs the Python package '{self.package}'; install {how}")
        return module

    def version(self) -> str:
        return str(self.module().__version__)

    def major(self) -> int:
        return int(self.version().split(".")[0])

    def device_facts(self, device: str) -> dict[str, object]:
        gpu = _cuda_device()
        if gpu is None:
            return {"kind": "cpu", "note": f"built on CPU ({self.label} ahead-of-time build, no GPU present)"}
        return gpu

    def quant_flavour(self, config: BuildConfig) -> QuantFlavour:
        return TENSORRT_FLAVOUR

    def _check(self, options: TensorRTOptions) -> None:
        """Refuse what this package and version cannot do, naming the path to use instead."""
        if self.rtx or self.major() >= 11:
            if options.flags or not options.strongly_typed:
                raise TrtforgeError(
                    f"{self.label} {self.version()} builds strongly typed networks only: it has no "
                    f"{'/'.join('--' + f for f in options.flags) or 'weakly typed'} builder flags; use "
                    "--precision fp16 (trtforge casts the graph) or --precision int8 (Q/DQ from calibration)"
                )
        elif self.major() < 10:
            raise TrtforgeError(f"TensorRT {self.version()} is too old for trtforge; install TensorRT 10 or newer")
        if options.flags and options.strongly_typed:
            raise TrtforgeError(
                "builder flags (" + ", ".join(options.flags) + ") need a weakly typed network: "
                "set strongly_typed=False (TensorRT 10 only), or drop the flags"
            )
        unknown = [f for f in options.flags if f not in _FLAGS]
        if unknown:
            raise TrtforgeError(f"unknown builder flag {unknown[0]!r}; expected one of {', '.join(_FLAGS)}")
        if self.rtx and options.timing_cache:
            raise TrtforgeError(
                "TensorRT-RTX has no timing cache (its timing-cache calls are no-ops since 1.2; "
                "it compiles kernels just in time on the target): drop --timing-cache"
            )
        if options.opt_level is not None and not 0 <= options.opt_level <= 5:
            raise TrtforgeError(f"--opt-level must be 0 to 5, got {options.opt_level}")
        for option, table, flag in (
            (options.hardware_compat, _HARDWARE_COMPAT, "--hardware-compat"),
            (options.profiling_verbosity, _VERBOSITY, "--profiling-verbosity"),
        ):
            if option is not None and option.lower() not in table:
                raise TrtforgeError(f"{flag} {option!r}: expected one of {', '.join(table)}")
        for pool, _ in options.mem_pools:
            if pool not in _POOLS:
                raise TrtforgeError(f"--mem-pool: unknown pool {pool!r}; expected one of {', '.join(_POOLS)}")

    def build(self, model: onnx.ModelProto, config: BuildConfig) -> BuiltEngine:
        with _using(self.module()):
            return self._build(model, config)

    def _build(self, model: onnx.ModelProto, config: BuildConfig) -> BuiltEngine:
        from trtforge.backends.tensorrt import network as net

        options = config.tensorrt or TensorRTOptions()
        self._check(options)
        label = f"{self.label} {self.version()}"
        errors: list[str] = []
        logger = _logger(errors)
        builder = trt.Builder(logger)
        net.load_plugins(builder, logger, options.plugins, errors)
        # the parser owns the network's weights: it stays referenced until the plan is built
        network, parser = net.parse(builder, logger, model, options.strongly_typed, label)
        bc = builder.create_builder_config()
        io_formats = net.set_io_formats(network, config, self.label)
        inputs, outputs = net.io_specs(network, True), net.io_specs(network, False)
        for kind, specs in (("Input ", inputs), ("Output", outputs)):
            for t in specs:
                print(f"[I] {kind} {t.name!r}: {t.dtype} {t.shape_text()}", file=sys.stderr)
        ranges, profiles = net.add_profiles(builder, bc, inputs, config.profiles)
        facts = self._configure(bc, options, model, config, inputs, profiles)
        timing_cache = None
        if options.timing_cache is not None:
            data = options.timing_cache.read_bytes() if options.timing_cache.is_file() else b""
            timing_cache = bc.create_timing_cache(data)
            if not bc.set_timing_cache(timing_cache, False):
                raise TrtforgeError(
                    f"timing cache {options.timing_cache} was written by another TensorRT version "
                    "or for another device; delete it or pass another file"
                )
            facts["timing_cache"] = {"path": str(options.timing_cache), "loaded_bytes": len(data)}
        plan = builder.build_serialized_network(network, bc)
        if plan is None:
            raise TrtforgeError(
                f"{label} could not build the engine: "
                + ("; ".join(errors[-3:]) or "no reason given (run with a smaller model)")
            )
        if timing_cache is not None and options.timing_cache is not None:
            write_bytes_atomic(options.timing_cache, bytes(bc.get_timing_cache().serialize()))
        facts.update(
            package=self.package,
            version=self.version(),
            strongly_typed=options.strongly_typed,
            io_formats=io_formats,
            profiles=[r.to_json() for r in ranges],
            runs_on=self._targets(options),
            plugins=[str(p) for p in options.plugins],
        )
        return BuiltEngine(bytes(plan), inputs, outputs, {"tensorrt": facts})

    def _configure(
        self,
        bc: trt.IBuilderConfig,
        options: TensorRTOptions,
        model: onnx.ModelProto,
        config: BuildConfig,
        inputs: list[TensorSpec],
        profiles: list[trt.IOptimizationProfile],
    ) -> dict[str, object]:
        pools = dict(options.mem_pools)
        if options.workspace_mib is not None:
            pools["workspace"] = options.workspace_mib << 20
        for pool, size in pools.items():
            bc.set_memory_pool_limit(self._enum(trt.MemoryPoolType, _POOLS[pool], f"--mem-pool {pool}"), size)
        if options.opt_level is not None:
            bc.builder_optimization_level = options.opt_level
        if options.hardware_compat is not None:
            bc.hardware_compatibility_level = self._enum(
                trt.HardwareCompatibilityLevel,
                _HARDWARE_COMPAT[options.hardware_compat.lower()],
                f"--hardware-compat {options.hardware_compat}",
            )
        if options.version_compat:
            bc.set_flag(self._enum(trt.BuilderFlag, "VERSION_COMPATIBLE", "--version-compat"))
        if options.profiling_verbosity is not None:
            bc.profiling_verbosity = self._enum(
                trt.ProfilingVerbosity, _VERBOSITY[options.profiling_verbosity.lower()], "--profiling-verbosity"
            )
        monitor = _progress_monitor()
        if monitor is not None:
            bc.progress_monitor = monitor
        for flag in options.flags:  # TensorRT 10's weakly typed path (checked in _check)
            bc.set_flag(getattr(trt.BuilderFlag, _FLAGS[flag]))
        calibrator = None
        if "int8" in options.flags:
            from trtforge.backends.tensorrt.calibrator import attach_calibrator

            calibrator = attach_calibrator(bc, config.calibration, inputs, profiles, model)
        return {
            "memory_pools": pools,
            "opt_level": options.opt_level,
            "hardware_compat": options.hardware_compat,
            "version_compat": options.version_compat,
            "profiling_verbosity": options.profiling_verbosity,
            "flags": list(options.flags),
            "calibrator": calibrator,
        }

    def _enum(self, kind: Any, member: str, option: str) -> Any:
        """``kind.member``, or a user error when this package and version lack it."""
        if not hasattr(kind, member):
            raise TrtforgeError(
                f"{option} is not available in {self.label} {self.version()}; drop it, "
                "or build with a TensorRT version that has it"
            )
        return getattr(kind, member)

    def _targets(self, options: TensorRTOptions) -> dict[str, object]:
        """Which GPUs the plan can run on, for the manifest and the load check."""
        if self.rtx:
            return {"compute_capabilities": RTX_DEFAULT_TARGETS, "and_later": True, "version": self.version()}
        gpu = _cuda_device()
        built = gpu["compute_capability"] if gpu else None
        if (options.hardware_compat or "none").lower() == "none":
            return {
                "compute_capabilities": [built],
                "and_later": False,
                "version": self.version(),
                "version_compatible": options.version_compat,
            }
        return {
            "compute_capabilities": ["8.0"],
            "and_later": True,
            "version": self.version(),
            "version_compatible": options.version_compat,
        }

    def why_not_here(self, manifest: Manifest) -> str | None:
        """One line saying why the plan cannot run here, or None."""
        from trtforge.backends.tensorrt.runtime import why_not_here

        return why_not_here(self, manifest)

    def load(self, data: bytes, manifest: Manifest, **options: object) -> TensorRTRunner:
        from trtforge.backends.tensorrt.runtime import TensorRTRunner, deserialize, why_not_here

        reason = why_not_here(self, manifest)
        if reason:
            raise TrtforgeError(f"cannot run this engine here: {reason}")
        with _using(self.module()):
            return TensorRTRunner(self.module(), deserialize(self, data), bool(options.get("cuda_graph")))

    def describe(self, data: bytes) -> dict[str, object]:
        """IO tensors, profiles and layers, where the runtime can deserialise the plan on this machine."""
        from trtforge.backends.tensorrt.runtime import describe

        with _using(self.module()):
            return describe(self, data)


def full() -> TensorRTBackend:
    return TensorRTBackend("tensorrt")


def rtx() -> TensorRTBackend:
    return TensorRTBackend("tensorrt-rtx")
