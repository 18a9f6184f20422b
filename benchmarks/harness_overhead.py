"""Harness honesty: `trtforge bench` median latency vs a bare `session.run` loop, same session, same process.

For each model, the two are run in alternating rounds (A B, B A, ...) so that drift in the
machine's load hits both alike; the table gives each side's median over all its queries, the
difference, and the median over rounds of the per-round difference (robust to load that changes
between rounds). Goal (issue 7): at most 2% apart.

    PYTHONPATH=src .venv/bin/python benchmarks/harness_overhead.py [--rounds 6] [--seconds 1.5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]


def conv_net(path: Path, blocks: int = 6, width: int = 32, size: int = 112) -> Path:
    """A mid-sized CNN built in code: a stride-2 stem, ``blocks`` 3x3 conv+ReLU, pool, dense."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []

    def conv(x: str, cin: int, cout: int, stride: int, i: int) -> str:
        w = numpy_helper.from_array(
            (rng.standard_normal((cout, cin, 3, 3)) * (2 / (9 * cin)) ** 0.5).astype(np.float32), f"w{i}"
        )
        b = numpy_helper.from_array(np.zeros(cout, np.float32), f"b{i}")
        inits.extend([w, b])
        nodes.append(
            helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1], strides=[stride, stride])
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        return f"r{i}"

    x = conv("image", 3, width, 2, 0)
    for i in range(1, blocks + 1):
        x = conv(x, width, width, 1, i)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"]))
    nodes.append(helper.make_node("Flatten", ["pool"], ["flat"]))
    inits.append(numpy_helper.from_array(rng.standard_normal((width, 10)).astype(np.float32), "fc"))
    nodes.append(helper.make_node("MatMul", ["flat", "fc"], ["logits"]))
    graph = helper.make_graph(
        nodes,
        "convnet",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def digits(path: Path) -> Path:
    import trtforge

    full = path.with_name("digits.onnx")
    trtforge.convert(ROOT / "examples/digits/saved_model", full, trtforge.ConvertOptions(inputs_as_nchw=("image",)))
    trtforge.reshape(full, path, batch=1)
    return path


def bare(session, names: list[str], feeds: dict, seconds: float) -> list[float]:
    """The loop a user would write: session.run, perf_counter around each call."""
    out = []
    end = time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        session.run(names, feeds)
        t1 = time.perf_counter()
        out.append((t1 - t0) * 1000.0)
        if t1 >= end:
            return out


def measure(engine: Path, rounds: int, seconds: float, threads: int) -> dict[str, float]:
    import trtforge
    from trtforge.bench import BenchSettings
    from trtforge.data.arrays import random_inputs

    runner = trtforge.load(engine, threads=threads)
    feeds = random_inputs(runner.inputs)
    names = [o.name for o in runner.outputs]
    ours: list[float] = []
    theirs: list[float] = []
    ratios: list[float] = []
    bare(runner.session, names, feeds, 0.5)  # warm up
    for i in range(rounds):
        # alternate which side goes first, so neither always follows the other
        if i % 2:
            mine_first = False
            theirs_round = bare(runner.session, names, feeds, seconds)
        else:
            mine_first = True
        result = trtforge.bench(runner, feeds, BenchSettings(warmup_ms=100, iterations=10, duration_s=seconds))
        mine = [q.latency_ms for q in result.trace]
        if mine_first:
            theirs_round = bare(runner.session, names, feeds, seconds)
        ours += mine
        theirs += theirs_round
        ratios.append(statistics.median(mine) / statistics.median(theirs_round))
    a, b = statistics.median(ours), statistics.median(theirs)
    return {
        "bench_ms": a,
        "bare_ms": b,
        "diff_pct": (a - b) / b * 100.0,
        "bench_n": len(ours),
        "bare_n": len(theirs),
        "paired_pct": (statistics.median(ratios) - 1.0) * 100.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=1.5, help="seconds per side per round")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1: least noise)")
    args = parser.parse_args()
    import trtforge

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in (("digits CNN (bs1, 32x32)", digits), ("conv net (bs1, 3x112x112, 7 convs)", conv_net)):
            onnx_path = make(Path(tmp) / f"{make.__name__}.onnx")
            engine = Path(tmp) / f"{make.__name__}.engine"
            trtforge.build(onnx_path, engine)
            rows.append((name, measure(engine, args.rounds, args.seconds, args.threads)))
    print(
        f"rounds={args.rounds} seconds/side/round={args.seconds} threads={args.threads} python={sys.version.split()[0]}"
    )
    print(
        "| model | trtforge bench median (ms) | bare session.run median (ms) | difference | "
        "median of per-round differences | queries (bench / bare) |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in rows:
        print(
            f"| {name} | {r['bench_ms']:.4f} | {r['bare_ms']:.4f} | {r['diff_pct']:+.2f}% | {r['paired_pct']:+.2f}% | "
            f"{r['bench_n']} / {r['bare_n']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
