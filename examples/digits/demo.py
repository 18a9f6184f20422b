"""The whole path on the digits sample: convert, reshape, build FP32 and INT8, bench, evaluate.

Run from the project root: ``python examples/digits/demo.py`` (``make demo`` does).  Each
step is the ``trtforge`` command a user would type, printed before it runs; the final
table puts top-1 accuracy on the held-out split next to median latency and throughput.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PREPROCESS = "color=gray,resize=32x32,scale=1/255,layout=nchw"


def trtforge(*args: str) -> None:
    print("$ trtforge " + " ".join(shlex.quote(a) for a in args), flush=True)
    proc = subprocess.run([sys.executable, "-m", "trtforge", *args])
    if proc.returncode != 0:
        sys.exit(proc.returncode)


def top1(engine: Path, test_dir: Path) -> float:
    """Top-1 accuracy of ``engine`` on the labelled PNGs in ``test_dir``."""
    import numpy as np

    import trtforge
    from trtforge.precision.data import Preprocess

    preprocess = Preprocess.parse(PREPROCESS)
    runner = trtforge.load(engine)
    (name,) = [t.name for t in runner.inputs]
    with open(test_dir / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    correct = 0
    for row in rows:
        x = preprocess.load(test_dir / row["file"])[None]
        (probs,) = runner.infer({name: x}).values()
        correct += int(np.argmax(probs) == int(row["label"]))
    return correct / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build"), help="folder for models and engines")
    parser.add_argument("--duration", default="3", help="seconds per benchmark (trtexec's default: 3)")
    args = parser.parse_args()
    out = args.out

    if not (HERE / "saved_model" / "saved_model.pb").exists():
        print("training the digits sample (first use)...", flush=True)
        subprocess.run([sys.executable, str(HERE / "make_sample.py")], check=True)

    sample = HERE.relative_to(Path.cwd()) if HERE.is_relative_to(Path.cwd()) else HERE
    trtforge("convert", f"{sample}/saved_model", "-o", f"{out}/digits.onnx", "--inputs-as-nchw", "image")
    trtforge("reshape", f"{out}/digits.onnx", "-o", f"{out}/digits-bs1.onnx", "--batch", "1")
    trtforge("build", f"{out}/digits-bs1.onnx", "-o", f"{out}/digits-fp32.engine", "--precision", "fp32")
    trtforge("build", f"{out}/digits-bs1.onnx", "-o", f"{out}/digits-int8.engine", "--precision", "int8",
             "--calib-data", f"{sample}/calib", "--preprocess", PREPROCESS)
    rows = []
    for precision in ("fp32", "int8"):
        engine = out / f"digits-{precision}.engine"
        trtforge("bench", str(engine), "--duration", args.duration, "--json", f"{engine}.bench.json")
        bench = json.loads(Path(f"{engine}.bench.json").read_text())
        rows.append((precision, top1(engine, HERE / "test"), bench["latency_ms"]["median"],
                     bench["throughput_qps"], bench["context"]["threads"]))

    table = ["| precision | top-1 (held-out, 359 images) | median latency (ms) | throughput (qps) | threads |",
             "|---|---|---|---|---|"]
    table += [f"| {p} | {acc:.2%} | {med:.4f} | {qps:,.0f} | {thr} |" for p, acc, med, qps, thr in rows]
    print("\n" + "\n".join(table))
    drop = (rows[0][1] - rows[1][1]) * 100
    print(f"\nINT8 top-1 is {drop:+.2f} points below FP32 (batch 1, onnxruntime CPU).")


if __name__ == "__main__":
    main()
