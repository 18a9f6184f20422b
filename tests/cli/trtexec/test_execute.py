"""trtexec flags -> BuildConfig: each flag's mapping, checked on the parsed request."""

from __future__ import annotations

from pathlib import Path

import pytest

from trtforge.cli.trtexec.execute import build_config
from trtforge.cli.trtexec.flags import FLAGS, parse
from trtforge.config import Precision
from trtforge.errors import TrtforgeError
from trtforge.precision.ioformat import IOFormat


def config(*flags: str):
    req = parse(["--onnx=m.onnx", *flags])
    return build_config(req), req


def test_precision_flags_map_to_graph_precisions() -> None:
    assert config()[0].precision is Precision.FP32
    assert config("--fp16")[0].precision is Precision.FP16
    assert config("--bf16")[0].precision is Precision.BF16
    assert config("--int8", "--calib-data=d")[0].precision is Precision.INT8
    assert config("--best")[0].precision is Precision.FP16
    assert config("--best", "--calib=c.cache")[0].precision is Precision.INT8
    with pytest.raises(TrtforgeError, match="pick one"):
        config("--fp16", "--bf16")
    with pytest.raises(TrtforgeError, match="--stronglyTyped"):
        config("--stronglyTyped", "--fp16")


def test_calib_cache_alone_is_enough_for_int8() -> None:
    cfg, _ = config("--int8", "--calib=model.cache")
    assert cfg.calibration is not None and cfg.calibration.cache == Path("model.cache")
    assert cfg.calibration.data is None


def test_io_formats_are_parsed_into_values() -> None:
    cfg, _ = config("--inputIOFormats=fp16:chw", "--outputIOFormats=fp32:chw,int8:hwc8")
    assert cfg.input_formats == (IOFormat("float16", ("chw",)),)
    assert cfg.output_formats == (IOFormat("float32", ("chw",)), IOFormat("int8", ("hwc8",)))
    with pytest.raises(TrtforgeError, match="unknown type"):
        config("--inputIOFormats=fp17:chw")


def test_memory_pools_timing_cache_and_opt_level_go_to_the_tensorrt_options() -> None:
    cfg, _ = config(
        "--backend=tensorrt-rtx",
        "--workspace=3200",
        "--memPoolSize=tacticSharedMem:64M",
        "--timingCacheFile=t.cache",
        "--builderOptimizationLevel=5",
        "--exportLayerInfo=l.json",
    )
    trt = cfg.tensorrt
    assert trt is not None and trt.workspace_mib == 3200 and trt.opt_level == 5
    assert dict(trt.mem_pools) == {"workspace": 3200 << 20, "tacticSharedMem": 64 << 20}
    assert trt.timing_cache == Path("t.cache") and trt.profiling_verbosity == "detailed"
    assert dict(config("--backend=tensorrt", "--memPoolSize=workspace:1G")[0].tensorrt.mem_pools) == {
        "workspace": 1 << 30
    }


def test_plugins_compatibility_and_verbosity_go_to_the_tensorrt_options() -> None:
    cfg, _ = config(
        "--backend=tensorrt",
        "--plugins=a.so",
        "--staticPlugins=b.so",
        "--hardwareCompatibilityLevel=ampere+",
        "--versionCompatible",
        "--profilingVerbosity=layer_names_only",
    )
    trt = cfg.tensorrt
    assert trt is not None and trt.plugins == (Path("a.so"), Path("b.so"))
    assert trt.hardware_compat == "ampere+" and trt.version_compat and trt.profiling_verbosity == "layer_names_only"
    assert (
        config("--backend=tensorrt", "--hardwareCompatibilityLevel=sameComputeCapability")[0].tensorrt.hardware_compat
        == "same-compute-capability"
    )
    with pytest.raises(TrtforgeError, match="expected none, ampere"):
        config("--hardwareCompatibilityLevel=volta+")
    _, req = config("--versionCompatible")
    assert any("--versionCompatible" in n and "does not change" in n for n in req.notes)


def test_tensorrt_only_settings_on_onnxruntime_are_said_not_dropped() -> None:
    cfg, req = config("--workspace=3200", "--timingCacheFile=t.cache")
    assert cfg.tensorrt is None
    assert any("--workspace" in n and "does not change" in n for n in req.notes)
    assert any("--timingCacheFile" in n for n in req.notes)


def test_bad_pool_sizes_are_refused() -> None:
    with pytest.raises(TrtforgeError, match="memPoolSize"):
        config("--backend=tensorrt", "--memPoolSize=scratch:10")
    with pytest.raises(TrtforgeError, match="not a size"):
        config("--backend=tensorrt", "--memPoolSize=workspace:lots")


def test_shape_flags_become_profiles() -> None:
    cfg, _ = config("--minShapes=x:1x3x8x8", "--optShapes=x:4x3x8x8", "--maxShapes=x:8x3x8x8")
    (profile,) = cfg.profiles
    assert profile.min == {"x": (1, 3, 8, 8)} and profile.max == {"x": (8, 3, 8, 8)}
    (fixed,) = config("--shapes=x:2x3x8x8")[0].profiles
    assert fixed.min == fixed.opt == fixed.max == {"x": (2, 3, 8, 8)}
    with pytest.raises(TrtforgeError, match="together"):
        config("--minShapes=x:1x3x8x8")


def test_every_flag_is_documented() -> None:
    assert all(flag.help for flag in FLAGS.values())
