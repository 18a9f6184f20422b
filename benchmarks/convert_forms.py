"""Every source form through `trtforge.convert`: time to convert + verify, and the check's errors.

No goal to meet (issue 3 has none); the table says what a conversion costs and how close the
ONNX model is to its framework.  The models are the tests' small ones
(tests/converters/tf_models.py) plus a torchvision-free ResNet-style PyTorch block.  Times are
wall clock for one call after a warm-up call of the same form, in a process that has already
imported TensorFlow and torch (the imports are printed separately).

    python benchmarks/convert_forms.py [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def torch_model(folder: Path) -> Path:
    import torch

    torch.manual_seed(0)
    block = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, stride=2, padding=1),
        torch.nn.BatchNorm2d(32),
        torch.nn.ReLU(),
        torch.nn.Conv2d(32, 64, 3, stride=2, padding=1),
        torch.nn.BatchNorm2d(64),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(64, 10),
    ).eval()
    batch = torch.export.Dim("batch")
    program = torch.export.export(block, (torch.rand(2, 3, 64, 64),), dynamic_shapes=({0: batch},))
    torch.export.save(program, folder / "block.pt2")
    return folder / "block.pt2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="convert_forms."))
    work.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    import tensorflow  # noqa: F401
    import torch  # noqa: F401

    imports = time.perf_counter() - start

    from tests.converters.tf_models import save_all

    import trtforge

    models = save_all(work)
    models["pt2"] = torch_model(work)
    cases = [
        ("savedmodel", models["savedmodel"], dict(inputs_as_nchw="image")),
        ("keras", models["keras"], dict(inputs_as_nchw="image", batch="dynamic")),
        ("h5 (custom layer)", models["custom_h5"], dict(custom_objects=models["custom_py"])),
        ("tflite", models["tflite"], {}),
        ("pb", models["pb"], dict(inputs="x", outputs="y")),
        ("checkpoint (.meta)", models["meta"], dict(inputs="x", outputs="y")),
        ("torch (.pt2)", models["pt2"], {}),
    ]
    print(f"imports (tensorflow + torch): {imports:.1f} s; models in {work}")
    print("| form | convert, --no-verify (s) | convert + verify (s) | max abs error | max rel error |")
    print("|---|---|---|---|---|")
    for name, source, options in cases:
        trtforge.convert(source, work / "warmup.onnx", verify=False, **options)  # first-use costs
        t0 = time.perf_counter()
        trtforge.convert(source, work / "unchecked.onnx", verify=False, **options)
        t1 = time.perf_counter()
        result = trtforge.convert(source, work / "out.onnx", **options)
        t2 = time.perf_counter()
        worst_abs = max(c.max_abs for c in result.checks)
        worst_rel = max(c.max_rel for c in result.checks)
        print(f"| {name} | {t1 - t0:.2f} | {t2 - t1:.2f} | {worst_abs:.2e} | {worst_rel:.2e} |")


if __name__ == "__main__":
    main()
