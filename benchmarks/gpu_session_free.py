"""Follow-up to gpu_session_order.py: is it a second session's existence, its running, or
something that outlives it that slows CUDA-provider sessions? Each case in a fresh process.

    python benchmarks/gpu_session_free.py ENGINE
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def case(name: str, engine: str) -> dict[str, object]:
    from trtforge.backends.onnxruntime import _time_compute
    from trtforge.build import load

    def t(r):
        return round(_time_compute(r, 300), 4)

    out: dict[str, object] = {}
    a = load(engine, device="cuda", cuda_graph=True)
    out["a"] = t(a)
    if name == "free_then_new":
        del a
        gc.collect()
        b = load(engine, device="cuda", cuda_graph=True)
        out["b_after_a_freed"] = t(b)
    elif name == "idle_second":
        b = load(engine, device="cuda", cuda_graph=True)
        out["a_with_b_idle"] = t(a)
        out["b"] = t(b)
        out["a_after_b_ran"] = t(a)
        del b
        gc.collect()
        out["a_after_b_freed"] = t(a)
    return out


def main() -> int:
    if len(sys.argv) == 3:
        print("RESULT " + json.dumps(case(sys.argv[1], sys.argv[2])))
        return 0
    engine = sys.argv[1]
    for name in ("free_then_new", "idle_second"):
        done = subprocess.run([sys.executable, __file__, name, engine], capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        print(name, lines[0][7:] if lines else done.stderr[-800:], flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
