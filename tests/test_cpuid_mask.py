"""tools/cpuid_mask: a process that sees a CPU without AVX-512 or VNNI, and what trtforge picks there."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("cpuid_mask", ROOT / "tools" / "cpuid_mask.py")
assert _spec is not None and _spec.loader is not None
cpuid_mask = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cpuid_mask)

pytestmark = pytest.mark.skipif(cpuid_mask.unsupported() is not None, reason=str(cpuid_mask.unsupported()))

PROBE = """
import json
from trtforge.precision.quantize import cpu_flags, cpu_flavour
flags = cpu_flags()
print(json.dumps({"avx512f": "avx512f" in flags, "vnni": "avx512_vnni" in flags, "avx2": "avx2" in flags,
                  "reduce_range": cpu_flavour().reduce_range}))
"""


def _probe(env: dict[str, str]) -> dict[str, bool]:
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_avx2_profile_hides_avx512_and_vnni_and_trtforge_picks_7_bit_weights() -> None:
    seen = _probe(cpuid_mask.environ("avx2"))
    assert seen == {"avx512f": False, "vnni": False, "avx2": True, "reduce_range": True}


@pytest.mark.skipif("avx512f" not in Path("/proc/cpuinfo").read_text(), reason="this CPU has no AVX-512")
def test_avx512_core_profile_keeps_avx512_without_vnni() -> None:
    seen = _probe(cpuid_mask.environ("avx512_core"))
    assert seen == {"avx512f": True, "vnni": False, "avx2": True, "reduce_range": True}


def test_unknown_profile_is_refused_by_the_library() -> None:
    env = cpuid_mask.environ("avx2")
    env["TRTFORGE_CPUID_MASK"] = "avx9"
    proc = subprocess.run(["/bin/true"], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 3
    assert "unknown TRTFORGE_CPUID_MASK=avx9" in proc.stderr


def test_none_profile_traps_but_hides_nothing() -> None:
    env = cpuid_mask.environ("none")
    env["TRTFORGE_CPUID_MASK_VERBOSE"] = "1"
    host = _probe(cpuid_mask.unmasked())  # (this test may itself run under a mask: make test-avx2)
    assert _probe(env) == host
    proc = subprocess.run([sys.executable, "-c", "import numpy"], env=env, capture_output=True, text=True, check=False)
    trapped = int(proc.stderr.split("cpuid_mask: ", 1)[1].split()[0])
    assert trapped > 0  # NumPy's own probe went through the handler


BUILD = """
import json, sys
from pathlib import Path
import numpy as np, onnx, onnxruntime as ort
import trtforge
from trtforge.config import CalibMethod, CalibrationConfig
from trtforge.precision.calibrate import calibrate
from trtforge.precision.quantize import cpu_flavour, quantize
work = Path(sys.argv[1])
trtforge.build(work / "model.onnx", work / "int8.engine", trtforge.BuildConfig(
    precision="int8", calibration=CalibrationConfig(data=work / "calib.npz", num=16)))
model, data = onnx.load(str(work / "model.onnx")), np.load(work / "calib.npz")["x"]
vnni = quantize(model, calibrate(model, [{"x": data}], CalibMethod.MINMAX), cpu_flavour(frozenset({"avx512_vnni"})))
onnx.save(vnni, str(work / "vnni.onnx"))
held = np.load(work / "held.npy")
for name in ("int8.engine", "vnni.onnx"):
    session = ort.InferenceSession(str(work / name), providers=["CPUExecutionProvider"])
    np.save(work / f"{name}.masked.npy", session.run(None, {"x": held})[0])
print(json.dumps(json.loads((work / "int8.engine.json").read_text())["calibration"]["flavour"]))
"""


AVX512F = "avx512f" in Path("/proc/cpuinfo").read_text()


@pytest.mark.parametrize(
    "profile",
    ["avx2", pytest.param("avx512_core", marks=pytest.mark.skipif(not AVX512F, reason="this CPU has no AVX-512"))],
)
def test_int8_built_without_vnni_keeps_8_bit_depthwise_weights_and_cannot_saturate(
    tmp_path: Path, profile: str
) -> None:
    """A real INT8 build in a process that sees no VNNI (AVX2 only, or AVX-512 without VNNI): 7-bit
    weights where ONNX Runtime's kernels use ``vpmaddubsw``, full 8-bit ones on the depthwise Conv (its
    kernels widen first), and the engine computes there exactly what it computes with VNNI. Weights of 8
    bits everywhere (the VNNI flavour) do saturate there, on this model whose products all add up: the
    comparison sees it (12% of the output's range on this machine's VNNI; a CPU without VNNI has nothing
    exact to compare with)."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    from tests.precision.models import separable_cnn, weight_bits
    from trtforge.precision.quantize import has_vnni

    onnx.save(separable_cnn(batch=1, positive=True), str(tmp_path / "model.onnx"))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", x=rng.uniform(0, 1, (16, 16, 8, 8)).astype(np.float32))
    np.save(tmp_path / "held.npy", rng.uniform(0, 1, (1, 16, 8, 8)).astype(np.float32))
    env = cpuid_mask.environ(profile)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", BUILD, str(tmp_path)], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    flavour = json.loads(proc.stdout.strip().splitlines()[-1])
    assert flavour["reduce_range"] and flavour["full_range_depthwise"]
    engine = onnx.load(str(tmp_path / "int8.engine"))
    assert weight_bits(engine) == {"expand": 64, "depthwise": 127}  # project writes the output: float
    held = np.load(tmp_path / "held.npy")
    # unmasked, a CPU with VNNI computes every sum exactly; one without runs the masked kernels again
    for name, exact in (("int8.engine", True), ("vnni.onnx", False))[: 2 if has_vnni() else 1]:
        here = ort.InferenceSession(str(tmp_path / name), providers=["CPUExecutionProvider"]).run(None, {"x": held})[0]
        masked = np.load(tmp_path / f"{name}.masked.npy")
        spread = float(np.abs(masked - here).max() / np.ptp(here))
        assert (spread == 0.0) if exact else (spread > 0.05), (name, spread)


OPENVINO_QDQ = """
import sys
from pathlib import Path
import dataclasses, numpy as np, onnx, openvino as ov
from trtforge.config import CalibMethod
from trtforge.precision.calibrate import calibrate
from trtforge.precision.quantize import openvino_flavour, quantize
work, where = Path(sys.argv[1]), sys.argv[2]
held = np.load(work / "held.npy")
if where == "masked":  # the flavour a CPU without VNNI gets, and the VNNI one (8 bits everywhere)
    model, data = onnx.load(str(work / "model.onnx")), np.load(work / "calib.npz")["x"]
    ranges = calibrate(model, [{"x": data}], CalibMethod.MINMAX)
    assert openvino_flavour().full_range_depthwise and openvino_flavour().reduce_range
    onnx.save(quantize(model, ranges, openvino_flavour()), str(work / "novnni.onnx"))
    onnx.save(quantize(model, ranges, openvino_flavour(frozenset({"avx512_vnni"}))), str(work / "vnni.onnx"))
for name in ("novnni.onnx", "vnni.onnx"):
    compiled = ov.Core().compile_model(str(work / name), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    np.save(work / f"{name}.{where}.npy", compiled.create_infer_request().infer([held])[0])
"""


@pytest.mark.skipif("avx512_vnni" not in Path("/proc/cpuinfo").read_text(), reason="needs VNNI to compare with")
def test_openvino_without_vnni_keeps_8_bit_depthwise_weights_and_cannot_saturate(tmp_path: Path) -> None:
    """OpenVINO's no-VNNI flavour: 7-bit weights where oneDNN's AVX2 kernels use ``vpmaddubsw``, 8-bit on
    depthwise Convs. Compiled under the AVX2 mask it computes exactly what this CPU's VNNI kernels compute;
    8-bit weights everywhere do not (the same comparison sees their saturation)."""
    import numpy as np
    import onnx

    from tests.precision.models import separable_cnn, weight_bits

    pytest.importorskip("openvino")
    onnx.save(separable_cnn(batch=1, positive=True), str(tmp_path / "model.onnx"))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "calib.npz", x=rng.uniform(0, 1, (16, 16, 8, 8)).astype(np.float32))
    np.save(tmp_path / "held.npy", rng.uniform(0, 1, (1, 16, 8, 8)).astype(np.float32))
    for where, env in (("masked", cpuid_mask.environ("avx2")), ("here", cpuid_mask.unmasked())):
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
        proc = subprocess.run(
            [sys.executable, "-c", OPENVINO_QDQ, str(tmp_path), where], env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
    bits = weight_bits(onnx.load(str(tmp_path / "novnni.onnx")))
    assert sorted(bits.values()) == [64, 64, 127], bits  # expand and project 7-bit, depthwise 8-bit
    for name, exact in (("novnni.onnx", True), ("vnni.onnx", False)):
        here, masked = (np.load(tmp_path / f"{name}.{where}.npy") for where in ("here", "masked"))
        spread = float(np.abs(masked - here).max() / np.ptp(here))
        assert (spread == 0.0) if exact else (spread > 0.05), (name, spread)


@pytest.mark.parametrize(
    "args, message",
    [(("avx3", "--", "true"), "usage: "), (("avx2", "--", "no-such-command-here"), "command not found")],
    ids=["profile", "command"],
)
def test_the_command_line_refuses_bad_input_in_one_line(args: tuple[str, ...], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "cpuid_mask.py"), *args], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
