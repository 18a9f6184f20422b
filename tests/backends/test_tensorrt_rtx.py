"""Real TensorRT-RTX builds on this CPU-only machine (its builder needs no GPU; its runtime does)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper
from tests.conftest import DIGITS, DIGITS_PREPROCESS, run_cli

from trtforge.build import build
from trtforge.config import BuildConfig, CalibMethod, CalibrationConfig, Precision, TensorRTOptions
from trtforge.errors import TrtforgeError
from trtforge.graph.ranges import ShapeRange
from trtforge.precision.ioformat import IOFormat

trt = pytest.importorskip("tensorrt_rtx")
RTX = "tensorrt-rtx"


def _fp16(model_path: Path, out: Path, keep_io_types: bool) -> Path:
    from onnxconverter_common import float16

    onnx.save(float16.convert_float_to_float16(onnx.load(str(model_path)), keep_io_types=keep_io_types), str(out))
    return out


def _build(src: Path, out: Path, **config: object) -> tuple[dict, bytes]:
    build(src, out, BuildConfig(backend=RTX, **config))  # type: ignore[arg-type]
    return json.loads(Path(f"{out}.json").read_text()), out.read_bytes()


def test_fp32_digits_plan_and_manifest_through_the_cli(digits_bs1: Path, tmp_path: Path) -> None:
    out = tmp_path / "digits.plan"
    proc = run_cli("build", str(digits_bs1), "-o", str(out), "--backend", RTX, "--workspace", "64")
    assert proc.returncode == 0, proc.stderr
    assert "[I] Input  'image': float32 1x1x32x32" in proc.stderr  # the network description
    manifest = json.loads(Path(f"{out}.json").read_text())
    assert out.stat().st_size > 100_000  # the weights (534 KiB of FP32) are in the plan
    assert manifest["backend"] == RTX and manifest["backend_version"] == trt.__version__
    facts = manifest["build"]["tensorrt"]
    assert facts["package"] == "tensorrt_rtx" and facts["strongly_typed"] is True
    assert facts["memory_pools"] == {"workspace": 64 << 20}
    assert facts["runs_on"]["compute_capabilities"] == ["8.0", "8.6", "8.9", "12.0"]
    assert manifest["device"]["kind"] == "cpu" and "built on CPU" in manifest["device"]["note"]
    assert manifest["inputs"] == [{"name": "image", "dtype": "float32", "shape": [1, 1, 32, 32]}]


def test_fp16_cast_graph_builds_strongly_typed_and_smaller(digits_bs1: Path, tmp_path: Path) -> None:
    _, fp32 = _build(digits_bs1, tmp_path / "fp32.plan")
    manifest, fp16 = _build(_fp16(digits_bs1, tmp_path / "h.onnx", keep_io_types=True), tmp_path / "fp16.plan")
    assert manifest["build"]["tensorrt"]["strongly_typed"] is True
    assert manifest["inputs"][0]["dtype"] == "float32"  # keep_io_types: FP32 at the boundary
    assert len(fp16) < len(fp32)  # FP16 weights


def test_precision_fp16_through_the_cli_builds_the_checked_cast_graph(digits_bs1: Path, tmp_path: Path) -> None:
    out = tmp_path / "fp16.plan"
    proc = run_cli("build", str(digits_bs1), "-o", str(out), "--backend", RTX, "--precision", "fp16")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(Path(f"{out}.json").read_text())
    assert manifest["precision"] == "fp16" and manifest["build"]["cast"]["precision"] == "fp16"
    assert manifest["build"]["tensorrt"]["strongly_typed"] is True and manifest["build"]["tensorrt"]["flags"] == []


def test_tensorrt_flavour_qdq_int8_builds(digits_bs1: Path, tmp_path: Path) -> None:
    from trtforge.data.preprocess import Preprocess

    calibration = CalibrationConfig(
        data=DIGITS / "calib", preprocess=Preprocess.parse(DIGITS_PREPROCESS), num=32, method=CalibMethod.MINMAX
    )
    manifest, plan = _build(digits_bs1, tmp_path / "int8.plan", precision=Precision.INT8, calibration=calibration)
    assert plan and manifest["precision"] == "int8"
    flavour = manifest["calibration"]["flavour"]
    assert flavour["name"] == "tensorrt" and flavour["activation_symmetric"] is True
    assert flavour["quantize_bias"] is False  # TensorRT's parser rejects int32 DequantizeLinear on biases


def test_dynamic_batch_builds_with_two_profiles(digits_onnx: Path, tmp_path: Path) -> None:
    profiles = (
        ShapeRange.parse("image:1x1x32x32", "image:4x1x32x32", "image:8x1x32x32"),
        ShapeRange.parse("image:16x1x32x32", "image:32x1x32x32", "image:64x1x32x32"),
    )
    manifest, plan = _build(digits_onnx, tmp_path / "dyn.plan", profiles=profiles)
    assert plan
    assert manifest["build"]["tensorrt"]["profiles"] == [p.to_json() for p in profiles]
    assert manifest["inputs"][0]["shape"][1:] == [1, 32, 32] and manifest["inputs"][0]["shape"][0] not in (1, 8)


def test_dynamic_model_without_ranges_exits_2_naming_the_input(digits_onnx: Path, tmp_path: Path) -> None:
    out = tmp_path / "dyn.plan"
    proc = run_cli("build", str(digits_onnx), "-o", str(out), "--backend", RTX)
    assert proc.returncode == 2
    assert "image (" in proc.stderr and "--min-shapes" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
    ok = run_cli(
        "build",
        str(digits_onnx),
        "-o",
        str(out),
        "--backend",
        RTX,
        "--min-shapes",
        "image:1x1x32x32",
        "--opt-shapes",
        "image:2x1x32x32",
        "--max-shapes",
        "image:4x1x32x32",
    )
    assert ok.returncode == 0, ok.stderr


def _custom_op_model(path: Path) -> Path:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("FancyOp", ["r"], ["y"], name="fancy", domain="my.ops"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("my.ops", 1)])
    onnx.save(model, str(path))
    return path


def test_parser_errors_name_the_node_the_op_and_the_plugin_fix(tmp_path: Path) -> None:
    with pytest.raises(TrtforgeError) as info:
        _build(_custom_op_model(tmp_path / "custom.onnx"), tmp_path / "c.plan")
    message = str(info.value)
    assert "node 'fancy' (FancyOp)" in message and "Plugin not found" in message
    assert "unsupported op(s): FancyOp" in message and "--plugins" in message
    assert "\n" not in message and not (tmp_path / "c.plan").exists()


def test_a_bad_plugin_library_is_one_line(tmp_path: Path) -> None:
    model = _custom_op_model(tmp_path / "custom.onnx")
    proc = run_cli(
        "build", str(model), "-o", str(tmp_path / "c.plan"), "--backend", RTX, "--plugins", str(tmp_path / "nope.so")
    )
    assert proc.returncode == 2 and "--plugins library not found" in proc.stderr
    (tmp_path / "junk.so").write_bytes(b"not an ELF file")
    proc = run_cli(
        "build", str(model), "-o", str(tmp_path / "c.plan"), "--backend", RTX, "--plugins", str(tmp_path / "junk.so")
    )
    assert proc.returncode == 2 and "--plugins: cannot load" in proc.stderr and "Traceback" not in proc.stderr


def test_builder_settings_are_applied_and_recorded(digits_bs1: Path, tmp_path: Path) -> None:
    options = TensorRTOptions(
        mem_pools=(("workspace", 32 << 20), ("tacticSharedMem", 48 << 10)),
        opt_level=1,
        profiling_verbosity="detailed",
        hardware_compat="ampere+",
    )
    manifest, _ = _build(digits_bs1, tmp_path / "s.plan", tensorrt=options)
    facts = manifest["build"]["tensorrt"]
    assert facts["memory_pools"] == {"workspace": 32 << 20, "tacticSharedMem": 48 << 10}
    assert (facts["opt_level"], facts["profiling_verbosity"], facts["hardware_compat"]) == (1, "detailed", "ampere+")


def test_timing_cache_is_refused_on_rtx_because_it_is_a_no_op(digits_bs1: Path, tmp_path: Path) -> None:
    cache = tmp_path / "timing.cache"
    with pytest.raises(TrtforgeError, match="TensorRT-RTX has no timing cache.*drop --timing-cache"):
        _build(digits_bs1, tmp_path / "t.plan", tensorrt=TensorRTOptions(timing_cache=cache))
    assert not cache.exists()


@pytest.mark.parametrize(
    "options, fix",
    [
        (TensorRTOptions(flags=("fp16",), strongly_typed=False), "--precision fp16"),
        (TensorRTOptions(opt_level=9), "0 to 5"),
        (TensorRTOptions(mem_pools=(("vram", 1),)), "unknown pool 'vram'"),
        (TensorRTOptions(hardware_compat="hopper"), "ampere+"),
    ],
)
def test_unavailable_options_are_refused_naming_the_other_path(
    digits_bs1: Path, tmp_path: Path, options: TensorRTOptions, fix: str
) -> None:
    with pytest.raises(TrtforgeError, match=fix.replace("+", r"\+")):
        _build(digits_bs1, tmp_path / "x.plan", tensorrt=options)


def test_fp16_io_format_on_an_fp16_io_graph_is_recorded(digits_bs1: Path, tmp_path: Path) -> None:
    model = _fp16(digits_bs1, tmp_path / "h.onnx", keep_io_types=False)
    manifest, _ = _build(
        model,
        tmp_path / "io.plan",
        input_formats=(IOFormat.parse("fp16:chw"),),
        output_formats=(IOFormat.parse("fp16:chw"),),
    )
    assert manifest["inputs"][0]["dtype"] == manifest["outputs"][0]["dtype"] == "float16"
    assert manifest["build"]["tensorrt"]["io_formats"] == {"image": "fp16:chw", "output_0": "fp16:chw"}


def test_fp16_hwc8_io_format_on_an_fp32_graph_is_cast_at_the_edge_and_honoured(
    digits_bs1: Path, tmp_path: Path
) -> None:
    manifest, _ = _build(digits_bs1, tmp_path / "io.plan", input_formats=(IOFormat.parse("fp16:hwc8"),))
    assert manifest["inputs"][0]["dtype"] == "float16" and manifest["outputs"][0]["dtype"] == "float32"
    assert manifest["build"]["io_formats"]["retyped"] == {"image": "float16"}  # the precision stage's edge cast
    assert manifest["build"]["tensorrt"]["io_formats"] == {"image": "fp16:hwc8"}


def test_the_backend_refuses_an_io_dtype_the_graph_does_not_have(digits_bs1: Path) -> None:
    """Called directly (without the precision stage's edge casts), TensorRT-RTX cannot retype IO: it says so."""
    from trtforge.backends.base import get_backend

    config = BuildConfig(backend=RTX, input_formats=(IOFormat.parse("fp16:chw"),))
    with pytest.raises(TrtforgeError, match="input 'image' is float32, but the IO format asks fp16:chw"):
        get_backend(RTX).build(onnx.load(str(digits_bs1)), config)


def test_inspect_shows_the_manifest_and_says_why_it_cannot_deserialise(digits_bs1: Path, tmp_path: Path) -> None:
    out = tmp_path / "i.plan"
    _build(digits_bs1, out)
    proc = run_cli("inspect", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    details = json.loads(proc.stdout)
    assert details["manifest"]["backend"] == RTX
    assert "cannot deserialise plans without a GPU" in details["backend"]["note"]
    assert details["backend"]["validity"]["result"] == "INVALID"


def test_full_tensorrt_absent_is_one_line_and_auto_falls_back(digits_bs1: Path, tmp_path: Path) -> None:
    from trtforge.backends.base import get_backend

    assert get_backend("auto").name == "onnxruntime"  # no GPU here
    proc = run_cli("build", str(digits_bs1), "-o", str(tmp_path / "x.plan"), "--backend", "tensorrt")
    assert proc.returncode == 2 and "needs the Python package 'tensorrt'" in proc.stderr


def test_load_says_why_the_plan_cannot_run_here(digits_bs1: Path, tmp_path: Path) -> None:
    from trtforge.build import load

    out = tmp_path / "l.plan"
    _build(digits_bs1, out)
    with pytest.raises(TrtforgeError, match="cannot run this engine here: no CUDA GPU here"):
        load(out)


def test_build_engine_example_maps_the_classic_script(digits_bs1: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = tmp_path / "example.plan"
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "build_engine.py"),
            "--onnx",
            str(digits_bs1),
            "--engine",
            str(out),
            "--precision",
            "int8",
            "--mem",
            "0.25",
            "--calib_path",
            str(DIGITS / "calib"),
            "--calib_preprocess",
            DIGITS_PREPROCESS,
            "--calib_num",
            "16",
            "--calib_batch_size",
            "4",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads(Path(f"{out}.json").read_text())
    assert manifest["backend"] == RTX and manifest["precision"] == "int8"
    assert manifest["build"]["tensorrt"]["memory_pools"] == {"workspace": 256 << 20}
    assert manifest["calibration"]["samples"] == 13 and manifest["calibration"]["held_back_for_check"] == 3
    missing = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "build_engine.py"),
            "--onnx",
            str(tmp_path / "nope.onnx"),
            "--engine",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_tensorrt_options_with_a_backend_that_has_none_are_refused(digits_bs1: Path, tmp_path: Path) -> None:
    for backend in ("onnxruntime", "auto"):  # auto: no GPU here, so ONNX Runtime
        proc = run_cli(
            "build", str(digits_bs1), "-o", str(tmp_path / "x.onnx"), "--backend", backend, "--workspace", "64"
        )
        assert proc.returncode == 2 and "TensorRT builder options were given" in proc.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_mixed_int8_model_builds_with_tensorrt_rtx(tmp_path: Path) -> None:
    """The budgeted search in the TensorRT flavour: the culprit Conv stays out of INT8 (in FP16), the plan builds."""
    from tests.precision.outlier_models import OUTLIER_UNIT, inputs, outlier_channel_model

    model = outlier_channel_model(tmp_path / "outlier.onnx", batch=4)
    calibration = CalibrationConfig(data=inputs(tmp_path / "calib.npz", 16, 1), method=CalibMethod.MINMAX)
    manifest, plan = _build(
        model,
        tmp_path / "mixed.plan",
        precision=Precision.INT8,
        calibration=calibration,
        max_accuracy_drop=0.01,
        metric="cosine",
        validation=inputs(tmp_path / "val.npz", 16, 2),
    )
    mixed = manifest["build"]["mixed"]
    assert plan and manifest["calibration"]["flavour"]["name"] == "tensorrt"
    assert [u["name"] for u in mixed["kept_float"]] == [OUTLIER_UNIT] and mixed["error"]["mixed"] <= 0.01
    assert mixed["kept_precision"] == "fp16"  # the kept unit runs FP16 in the plan (cast in the graph)
    assert manifest["calibration"]["check"]["passed"] is True  # the budgeted build checked itself
