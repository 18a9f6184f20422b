"""The whole path on the digits sample: convert, reshape, build FP32 and INT8, bench; then deploy.

Run from the project root: ``python examples/digits/demo.py`` (``make demo`` does).  Each
step is the ``trtforge`` command a user would type, printed before it runs.  The last one,
``trtforge deploy``, does the whole path in one command for FP32, FP16 and INT8 and prints its
report table: top-1 accuracy on the held-out split, agreement with FP32, median and p99
latency, throughput, engine size and build time.
"""

from __future__ import annotations

import argparse
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
    trtforge(
        "build",
        f"{out}/digits-bs1.onnx",
        "-o",
        f"{out}/digits-int8.engine",
        "--precision",
        "int8",
        "--calib-data",
        f"{sample}/calib",
        "--preprocess",
        PREPROCESS,
    )
    for precision in ("fp32", "int8"):
        trtforge("bench", f"{out}/digits-{precision}.engine", "--duration", args.duration)

    # The same path in one command, with FP16 added, every engine validated against FP32 on
    # the held-out split and the fastest one within 1 point of FP32's accuracy selected.
    trtforge(
        "deploy",
        f"{sample}/saved_model",
        "-o",
        f"{out}/deploy",
        "--force",
        "--inputs-as-nchw",
        "image",
        "--batch",
        "1",
        "--precision",
        "fp32,fp16,int8",
        "--calib-data",
        f"{sample}/calib",
        "--preprocess",
        PREPROCESS,
        "--val-data",
        f"{sample}/test",
        "--max-accuracy-drop",
        "1",
        "--select",
        "fastest",
        "--duration",
        args.duration,
    )
    print(f"\nreport: {out}/deploy/report.md (plots: latency.png, accuracy_vs_latency.png)")


if __name__ == "__main__":
    main()
