"""Does a CUDA-provider session run slower when it is not the first one in its process?

The build times provider options in fresh sessions (the first measured ~0.505 ms for ResNet-50 b1
FP16), while the engine loaded afterwards in the same process measured ~0.565 ms. This times:
  A. in this process, after the build: two sessions, interleaved;
  B. a fresh process that only loads the engine (what `trtforge bench` does): first session,
     then a second session, then the first again;
  C. `trtforge bench ENGINE --cuda-graph` as a user runs it (its GPU Compute median).

    python benchmarks/gpu_session_order.py --out DIR
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

CHILD = """
import json, sys
sys.path.insert(0, {src!r}); sys.path.insert(0, {bench!r})
from trtforge.build import load
from trtforge.backends.onnxruntime import _time_compute
from gpu_b1_probe import kernel_profile
first = load({engine!r}, device="cuda", cuda_graph=True)
out = {{"first": [round(_time_compute(first, 300), 4) for _ in range(3)]}}
second = load({engine!r}, device="cuda", cuda_graph=True)
out["second"] = [round(_time_compute(second, 300), 4) for _ in range(2)]
out["first_again"] = [round(_time_compute(first, 300), 4) for _ in range(2)]
prof = kernel_profile(load({engine!r}, device="cuda", cuda_graph=False), 20)
out["third_eager_profile"] = {{k: prof[k] for k in ("kernels_per_query", "kernel_us_per_query")}}
out["third_eager_top"] = prof["top"][:10]
print("RESULT " + json.dumps(out))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import onnxruntime
    import torch
    import torchvision
    from gpu_resnet50 import export, fp16_engine, log

    from trtforge.backends.onnxruntime import _time_compute
    from trtforge.build import load_with_manifest

    onnxruntime.set_default_logger_severity(3)
    work = Path(tempfile.mkdtemp())
    torch.manual_seed(0)
    fp32 = work / "resnet50-b1.onnx"
    export(torchvision.models.resnet50(weights=None).eval(), 1, fp32)
    engine, _ = fp16_engine(fp32, work, 1)
    a, manifest = load_with_manifest(engine, device="cuda", cuda_graph=True)
    report: dict[str, object] = {"tuning": manifest.build.get("tuning_compute_ms")}
    b, _ = load_with_manifest(engine, device="cuda", cuda_graph=True)
    report["same_process_after_build"] = [[round(_time_compute(r, 300), 4) for r in (a, b)] for _ in range(2)]
    log(f"A: {report}")
    del a, b
    for i in range(2):
        code = CHILD.format(src=str(ROOT / "src"), bench=str(ROOT / "benchmarks"), engine=str(engine))
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
        report[f"fresh_process_{i}"] = json.loads(lines[0][7:]) if lines else done.stderr[-1500:]
        log(f"B{i}: {report[f'fresh_process_{i}']}")
    for i in range(2):
        js = work / f"bench{i}.json"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "trtforge",
                "bench",
                str(engine),
                "--cuda-graph",
                "--duration",
                "3",
                "--json",
                str(js),
            ],
            capture_output=True,
            text=True,
        )
        report[f"cli_bench_{i}"] = (
            json.loads(js.read_text()).get("gpu_compute_ms") if js.exists() else done.stderr[-1500:]
        )
        log(f"C{i}: {report[f'cli_bench_{i}']}")
        if i == 0:
            print(done.stdout[-3000:])
    (args.out / "order.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
