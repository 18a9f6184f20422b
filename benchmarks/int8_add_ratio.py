"""Experiment (issue 13, not adopted): leave float only the Adds where quantizing might lose most.

Runs benchmarks/int8_fidelity.py with two more kinds of method, each the default INT8 (``mse``) plus one
per-node rule, so its fidelity and its ONNX Runtime CPU latency land in the same alternating rounds as the
default's:
- ``mse@K``: keep float every Add whose inputs' calibrated ranges differ by more than K times (the rule the
  library applies to Concats at 16x);
- ``mse#K``: keep float every Add whose larger input range exceeds K times its output range (the inputs
  cancel, so their rounding is large next to the result).
Prints the Adds left float on stderr.

    PYTHONPATH=src nice -n 10 python benchmarks/int8_add_ratio.py --models hand_landmark,face_detect \\
        --methods mse,mse@2,mse@3,mse#1.3 --held 48 --runs 100
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import int8_fidelity  # noqa: E402
import onnx  # noqa: E402

import trtforge.precision.quantize as quantize  # noqa: E402

_rule: list[tuple[str, float] | None] = [None]  # ("@" or "#", K) while a build of that method runs
_split_joins = quantize.split_joins
_build = int8_fidelity.trtforge_int8


def add_ratios(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]], kind: str) -> dict[str, float]:
    """``{Add node: ratio}`` for the Adds with two ranged inputs; ``kind`` "@": larger input range / smaller,
    "#": larger input range / output range."""
    found = {}
    for node in model.graph.node:
        spans = [ranges[t][1] - ranges[t][0] for t in node.input if t in ranges]
        if node.op_type != "Add" or len(spans) < 2 or (kind == "#" and node.output[0] not in ranges):
            continue
        lo, hi = ranges[node.output[0]] if kind == "#" else (0.0, min(spans))
        found[node.name] = max(spans) / max(hi - lo, 1e-12)
    return found


def split_joins(model: onnx.ModelProto, ranges: dict[str, tuple[float, float]]) -> list[str]:
    joins = _split_joins(model, ranges)
    rule = _rule[0]
    if rule is not None:
        ratios = add_ratios(model, ranges, rule[0])
        wide = [name for name, ratio in ratios.items() if ratio > rule[1] and name not in joins]
        print(f"Add ratios ({rule[0]}) {sorted(round(r, 2) for r in ratios.values())}; float: {wide}", file=sys.stderr)
        joins = [*joins, *wide]
    return joins


def trtforge_int8(fp32: Path, calib: Path, out: Path, num: int, method: str) -> tuple[Path, float, dict]:
    kind = "@" if "@" in method else "#"
    name, _, ratio = method.partition(kind)
    _rule[0] = (kind, float(ratio)) if ratio else None
    try:
        return _build(fp32, calib, out, num, name)
    finally:
        _rule[0] = None


quantize.split_joins = split_joins  # quantize() looks the function up in its module at call time
int8_fidelity.trtforge_int8 = trtforge_int8

if __name__ == "__main__":
    sys.exit(int8_fidelity.main())
