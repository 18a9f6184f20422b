"""Experiment (issue 13, not adopted): the default INT8 with depthwise convolutions left float.

Runs benchmarks/int8_fidelity.py with one more kind of method, ``METHOD+dw``: the calibration method as
usual, plus every depthwise Conv (group > 1, one input channel per group) kept float, so its fidelity and
its ONNX Runtime CPU latency land in the same alternating rounds as the default's. Prints how many
depthwise Convs were left float on stderr.

    PYTHONPATH=src nice -n 10 python benchmarks/int8_depthwise.py --models hand_landmark,face_detect \\
        --methods mse,mse+dw --held 48 --runs 100
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import int8_fidelity  # noqa: E402
import onnx  # noqa: E402

import trtforge.precision.quantize as quantize  # noqa: E402

_on = [False]  # true while a "+dw" build runs
_split_joins = quantize.split_joins
_build = int8_fidelity.trtforge_int8


def depthwise(model: onnx.ModelProto) -> list[str]:
    """Names of the depthwise Convs: group > 1 and a weight with one input channel per group."""
    weights = {t.name: t for t in model.graph.initializer}
    found = []
    for node in model.graph.node:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        weight = weights.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        if group > 1 and weight is not None and weight.dims[1] == 1:
            found.append(node.name)
    return found


def split_joins(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]]) -> list[str]:
    joins = _split_joins(model, ranges)
    if _on[0]:
        extra = [name for name in depthwise(model) if name not in joins]
        print(f"depthwise Convs left float: {len(extra)}", file=sys.stderr)
        joins = [*joins, *extra]
    return joins


def trtforge_int8(fp32: Path, calib: Path, out: Path, num: int, method: str) -> tuple[Path, float, dict]:
    _on[0] = method.endswith("+dw")
    try:
        return _build(fp32, calib, out, num, method.removesuffix("+dw"))
    finally:
        _on[0] = False


quantize.split_joins = split_joins  # quantize() looks the function up in its module at call time
int8_fidelity.trtforge_int8 = trtforge_int8

if __name__ == "__main__":
    sys.exit(int8_fidelity.main())
