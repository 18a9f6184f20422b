"""ResNet-50 on the CUDA provider: FP32, FP16 and INT8 through ``trtforge deploy``, and why each lost.

Issue 14 item 11: on an H200 an INT8 Q/DQ engine ran its bias DequantizeLinear nodes on the CPU
provider, without a CUDA graph (2.29 ms against 0.47 ms for FP16). This runs the user's path on
the GPU machine and keeps what deploy says about it: the table, one ``why`` line per engine (the
nodes ONNX Runtime placed on the CPU, no CUDA graph, slower, refused), and whether ONNX Runtime's
"No registered plugin EP device found" line reached stderr.

Model: torchvision ``resnet50(weights=None)`` after ``torch.manual_seed(0)`` (random weights: agreement
with FP32 is measured, not accuracy), exported at batch 1 (static, opset 17). Calibration: 32
random images (minmax); validation: 16 others.

    python benchmarks/gpu_int8_why.py --out DIR [--work DIR] [--duration S] [--model M.onnx] [--device cpu]

(``--model`` and ``--device cpu`` are for a dry run of the script itself on a machine without a GPU.)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_LINE = "No registered plugin EP device found"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def export_resnet50(path: Path) -> None:
    import torch
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    kwargs = dict(input_names=["input"], output_names=["logits"], opset_version=17)
    x = torch.randn(1, 3, 224, 224)
    try:
        torch.onnx.export(model, (x,), str(path), dynamo=False, **kwargs)
    except Exception as exc:  # a torch without the TorchScript exporter
        log(f"TorchScript export failed ({str(exc).splitlines()[0][:120]}); using dynamo=True")
        torch.onnx.export(model, (x,), str(path), dynamo=True, **kwargs)


def first_input(model: Path) -> tuple[str, list[int]]:
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    tensor = next(t for t in graph.input if t.name not in initializers)
    return tensor.name, [d.dim_value or 1 for d in tensor.type.tensor_type.shape.dim]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="deploy.log, report.md, report.json, summary.json")
    parser.add_argument("--work", type=Path, default=None, help="model, data and engines (default: a temp folder)")
    parser.add_argument("--duration", default="2", help="bench seconds per engine (default 2)")
    parser.add_argument("--model", type=Path, help="an ONNX model with one image-like input instead of ResNet-50")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="int8-why-"))
    work.mkdir(parents=True, exist_ok=True)
    model = args.model or work / "resnet50-b1.onnx"
    if args.model is None:
        log("exporting ResNet-50 (random weights, batch 1)")
        export_resnet50(model)
    name, shape = first_input(model)
    rng = np.random.default_rng(0)
    np.savez(work / "calib.npz", **{name: rng.standard_normal((32, *shape[1:])).astype(np.float32)})
    np.savez(work / "val.npz", **{name: rng.standard_normal((16, *shape[1:])).astype(np.float32)})
    out = work / "deploy"
    shutil.rmtree(out, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "trtforge",
        "deploy",
        str(model),
        "-o",
        str(out),
        "--device",
        args.device,
        "--precision",
        "fp32,fp16,int8",
        "--calib-data",
        str(work / "calib.npz"),
        "--calib-method",
        "minmax",
        "--calib-num",
        "32",
        "--val-data",
        str(work / "val.npz"),
        "--select",
        "fastest",
        "--duration",
        args.duration,
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    log("running: " + " ".join(command[2:]))
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    (args.out / "deploy.log").write_text(
        f"exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )
    print(done.stdout)
    summary: dict[str, object] = {
        "exit": done.returncode,
        "seconds": round(seconds, 1),
        "plugin_line_on_stderr": PLUGIN_LINE in done.stderr,
    }
    if done.returncode == 0:
        for name in ("report.md", "report.json"):
            shutil.copyfile(out / name, args.out / name)
        report = json.loads((out / "report.json").read_text())
        summary["selected"] = report["selected"]
        summary["engines"] = {
            e["precision"]: {
                "median_ms": e["median_ms"],
                "why": e["why"],
                "cpu_nodes": json.loads((out / f"{e['engine']}.json").read_text())["build"].get("cpu_nodes"),
            }
            for e in report["engines"]
        }
    else:
        print(done.stderr[-3000:], file=sys.stderr)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plugin = summary["plugin_line_on_stderr"]
    log(f"deploy exit {done.returncode} in {seconds:.0f} s; plugin EP line on stderr: {plugin}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if done.returncode == 0 and not summary["plugin_line_on_stderr"] else 1


if __name__ == "__main__":
    sys.exit(main())
