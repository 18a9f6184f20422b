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
    host = _probe(dict(os.environ))
    assert _probe(env) == host
    proc = subprocess.run([sys.executable, "-c", "import numpy"], env=env, capture_output=True, text=True, check=False)
    trapped = int(proc.stderr.split("cpuid_mask: ", 1)[1].split()[0])
    assert trapped > 0  # NumPy's own probe went through the handler
