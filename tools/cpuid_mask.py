"""Run a program as if on a CPU without AVX-512 or VNNI: CPUID bits hidden by ``cpuid_mask.c``.

    python tools/cpuid_mask.py avx2 -- python benchmarks/openvino_isa_cap.py ...
    python tools/cpuid_mask.py avx512_core -- python -c "import numpy; numpy.show_runtime()"
    python tools/cpuid_mask.py none -- ...   # traps every CPUID but hides nothing: the control

The library is compiled with the system C compiler on first use (cached beside its source hash under
``$TRTFORGE_CPUID_MASK_DIR``, default ``~/.cache/trtforge``). Libraries that choose kernels from CPUID
(ONNX Runtime's MLAS, oneDNN in OpenVINO, NumPy) then run the code such a CPU runs, natively; what
``/proc/cpuinfo`` lists does not change. Needs Linux on x86-64 with CPUID faulting (flag
``cpuid_fault``: KVM guests and recent Intel hosts) and ``cc``.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).with_name("cpuid_mask.c")
PROFILES = ("avx2", "avx512_core", "none")


def unsupported() -> str | None:
    """Why the mask cannot work here, or None."""
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return f"needs Linux on x86-64, not {platform.system()} on {platform.machine()}"
    if shutil.which("cc") is None:
        return "needs a C compiler (cc)"
    try:
        flags = next(
            line.split(":", 1)[1].split()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
        )
    except (OSError, StopIteration):
        return "cannot read the CPU flags in /proc/cpuinfo"
    if "cpuid_fault" not in flags:
        return "this CPU (or hypervisor) has no CPUID faulting (flag cpuid_fault)"
    return None


def library(directory: Path | None = None) -> Path:
    """The compiled preload library, built once per source version."""
    source = SOURCE.read_bytes()
    directory = directory or Path(os.environ.get("TRTFORGE_CPUID_MASK_DIR", Path.home() / ".cache" / "trtforge"))
    path = directory / f"cpuid_mask-{hashlib.sha256(source).hexdigest()[:12]}.so"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(partial), str(SOURCE)], check=True)
        partial.replace(path)
    return path


def environ(profile: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with the mask preloaded for ``profile``."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; use one of {', '.join(PROFILES)}")
    env = dict(os.environ if base is None else base)
    env.pop("PYTHONFAULTHANDLER", None)  # its SIGSEGV handler would take the trapped CPUIDs
    env["LD_PRELOAD"] = " ".join(filter(None, (str(library()), env.get("LD_PRELOAD"))))
    env["TRTFORGE_CPUID_MASK"] = profile
    return env


def unmasked(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) without the mask: for a run on the CPU as it is, from a
    process that may itself run masked (``make test-avx2``). Other preloaded libraries stay."""
    env = dict(os.environ if base is None else base)
    env.pop("TRTFORGE_CPUID_MASK", None)
    kept = [p for p in env.pop("LD_PRELOAD", "").split() if not Path(p).name.startswith("cpuid_mask-")]
    if kept:
        env["LD_PRELOAD"] = " ".join(kept)
    return env


def _refuse(message: str) -> None:
    print(f"cpuid_mask: {message}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    if len(sys.argv) < 4 or sys.argv[1] not in PROFILES or sys.argv[2] != "--":
        _refuse(f"usage: {sys.argv[0]} {{{'|'.join(PROFILES)}}} -- COMMAND [ARG...]")
    reason = unsupported()
    if reason is not None:
        _refuse(reason)
    try:
        env = environ(sys.argv[1])
    except subprocess.CalledProcessError:
        _refuse(f"cc could not compile {SOURCE} (its errors are above)")
    if shutil.which(sys.argv[3], path=env.get("PATH")) is None:
        _refuse(f"command not found: {sys.argv[3]}")
    os.execvpe(sys.argv[3], sys.argv[3:], env)


if __name__ == "__main__":
    main()
