"""Sensitivity ranking and the budgeted INT8 build: accuracy, latency and search cost.

Models: the trained digits CNN in examples/digits (real images, labels in the file names) and the
outlier-channel CNN of tests/precision/outlier_models.py (plain INT8 fails by construction).
For each: FP32 vs plain INT8 vs mixed (``--max-accuracy-drop``), top-1 against labels (digits) or
answers changed vs FP32, latency (ONNX Runtime CPU, 1 thread, batch 1, median of 10 after a warm-up),
and the search's wall time against one INT8 build plus one validation pass per unit it measured.

    PYTHONPATH=src python benchmarks/sensitivity.py
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DIGITS = ROOT / "examples" / "digits"
PRE = "color=gray,resize=32x32,scale=1/255,layout=nchw"


def _accuracy(
    model: onnx.ModelProto, feeds: dict[str, np.ndarray], labels: np.ndarray | None, reference: np.ndarray
) -> tuple[float | None, float]:
    from trtforge.precision.mixed import Evaluator, top1

    ev = Evaluator.__new__(Evaluator)
    ev.feeds = feeds
    out = next(iter(ev.outputs(model).values()))
    acc = None if labels is None else float(np.mean(out.argmax(1) == labels) * 100)
    return acc, top1({"y": out}, {"y": reference})


def run_case(
    name: str,
    model_path: Path,
    calibration,
    val: str | Path,
    preprocess,
    budget: float,
    metric: str,
    folder: Path,
    val_num: int = 64,
) -> dict[str, object]:
    import trtforge
    from trtforge.config import BuildConfig, Precision
    from trtforge.data.samples import load_samples
    from trtforge.graph.model import graph_inputs
    from trtforge.precision.mixed import Evaluator, metric_from, sensitivity

    model = onnx.load(str(model_path))
    specs = graph_inputs(model)
    samples = load_samples(val, specs, preprocess.resolve(specs[0]) if preprocess else None)
    started = time.perf_counter()
    trtforge.build(
        model_path, folder / f"{name}-int8.onnx", BuildConfig(precision=Precision.INT8, calibration=calibration)
    )
    int8_build_s = time.perf_counter() - started
    evaluator = Evaluator(model, {k: v[:val_num] for k, v in samples.feeds.items()}, metric_from(metric)[1])
    started = time.perf_counter()
    evaluator.error(model)
    val_pass_s = time.perf_counter() - started
    started = time.perf_counter()
    ranking = sensitivity(model_path, calibration, val, metric=metric, preprocess=preprocess, val_num=val_num)
    ranking_s = time.perf_counter() - started
    started = time.perf_counter()
    config = BuildConfig(
        precision=Precision.INT8,
        calibration=calibration,
        max_accuracy_drop=budget,
        validation=Path(val),
        metric=metric,
        val_num=val_num,
    )
    manifest = trtforge.build(model_path, folder / f"{name}-mixed.onnx", config)
    search_s = time.perf_counter() - started
    mixed = manifest.build["mixed"]
    assert isinstance(mixed, dict)
    reference = next(iter(Evaluator(model, samples.feeds, metric_from("cosine")[1]).reference.values()))
    rows = {}
    for kind, path in (
        ("fp32", model_path),
        ("int8", folder / f"{name}-int8.onnx"),
        ("mixed", folder / f"{name}-mixed.onnx"),
    ):
        m = onnx.load(str(path))
        acc, changed = _accuracy(m, samples.feeds, samples.labels, reference)
        rows[kind] = {
            "top1_labels": acc,
            "top1_changed_points": changed,
            "latency_ms": evaluator.latency_ms(m, 50),
            "bytes": path.stat().st_size,
        }
    passes = len(ranking.errors) + 1 + len(mixed["tried"]) + 1  # ranking (+ all-INT8), tries, the final check
    return {
        "model": name,
        "samples_all": len(samples),
        "samples_search": ranking.samples,
        "metric": metric,
        "budget": budget,
        "units": len(ranking.errors),
        "top5": [(e.unit.name, e.unit.op_type, e.unit.layer, round(e.error, 5)) for e in ranking.ranked[:5]],
        "kept_float": [(u["name"], round(u["gain"], 5)) for u in mixed["kept_float"]],
        "error": mixed["error"],
        "int8_fraction": mixed["int8_fraction"],
        "rows": rows,
        "int8_build_s": round(int8_build_s, 2),
        "val_pass_s": round(val_pass_s, 4),
        "ranking_s": round(ranking_s, 2),
        "search_build_s": round(search_s, 2),
        "validation_passes": passes,
        "goal_s": round(3 * (int8_build_s + passes * val_pass_s), 2),
    }


def main() -> None:
    from tests.precision.outlier_models import inputs, outlier_channel_model

    import trtforge
    from trtforge.config import CalibMethod, CalibrationConfig
    from trtforge.data.preprocess import Preprocess

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        digits = folder / "digits.onnx"
        from trtforge.converters import ConvertOptions

        trtforge.convert(DIGITS / "saved_model", digits, ConvertOptions(inputs_as_nchw=("image",)))
        pre = Preprocess.parse(PRE)
        calibration = CalibrationConfig(data=DIGITS / "calib", preprocess=pre, num=300)
        results.append(run_case("digits", digits, calibration, DIGITS / "test", pre, 0.0, "top1", folder))
        results.append(
            run_case("digits-maxabs", digits, calibration, DIGITS / "test", pre, 0.2, "max-abs", folder, 360)
        )
        outlier = outlier_channel_model(folder / "outlier.onnx")
        cal = CalibrationConfig(data=inputs(folder / "c.npz", 64, 1), method=CalibMethod.MINMAX)
        results.append(
            run_case("outlier-channel", outlier, cal, inputs(folder / "v.npz", 64, 2), None, 1.0, "top1", folder)
        )
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores"
    )
    print(
        "| model | metric, budget | search samples | units | kept float | fp32 top-1 / changed | int8 | mixed "
        "| latency ms fp32 / "
        "int8 / mixed | search build s | 1 INT8 build s | val pass s | passes | 3x goal s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        rows = r["rows"]

        def acc(k: str, rows: dict = rows) -> str:
            a = rows[k]["top1_labels"]
            return (f"{a:.1f}% / " if a is not None else "") + f"{rows[k]['top1_changed_points']:.1f} pt"

        print(
            f"| {r['model']} | {r['metric']} ≤ {r['budget']:g} | {r['samples_search']} | {r['units']} | "
            f"{', '.join(n for n, _ in r['kept_float']) or '-'} | {acc('fp32')} | {acc('int8')} | {acc('mixed')} | "
            f"{rows['fp32']['latency_ms']:.3f} / {rows['int8']['latency_ms']:.3f} / "
            f"{rows['mixed']['latency_ms']:.3f} | "
            f"{r['search_build_s']} | {r['int8_build_s']} | {r['val_pass_s']} | {r['validation_passes']} | "
            f"{r['goal_s']} |"
        )
    print(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
