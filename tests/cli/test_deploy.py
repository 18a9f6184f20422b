"""`trtforge deploy`: the whole path in one command, on the digits sample."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import DIGITS, DIGITS_PREPROCESS, run_cli

FAST_BENCH = ("--duration", "0.2", "--warmup", "20", "--iterations", "20")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deploy") / "out"
    proc = run_cli(
        "deploy",
        str(DIGITS / "saved_model"),
        "-o",
        str(out),
        "--inputs-as-nchw",
        "image",
        "--batch",
        "1",
        "--precision",
        "fp32,int8",
        "--calib-data",
        str(DIGITS / "calib"),
        "--preprocess",
        DIGITS_PREPROCESS,
        "--val-data",
        str(DIGITS / "test"),
        "--max-accuracy-drop",
        "1.5",
        "--select",
        "fastest",
        "--triton",
        str(out.parent / "repo"),
        *FAST_BENCH,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| precision |" in proc.stdout
    return out


def test_deploy_triton_exports_the_selected_engine(deployed: Path) -> None:
    from trtforge.serve.triton_config import parse_config

    model = deployed.parent / "repo" / "out"
    config = parse_config((model / "config.pbtxt").read_text())
    assert (config.name, config.platform, config.max_batch_size) == ("out", "onnxruntime_onnx", 0)
    assert (model / "1" / "model.onnx").read_bytes() == (deployed / "model.engine").read_bytes()


def test_deploy_writes_engines_onnx_reports_and_plots(deployed: Path) -> None:
    for name in (
        "model.onnx",
        "model-bs1.onnx",
        "model-fp32.engine",
        "model-fp32.engine.json",
        "model-int8.engine",
        "model-int8.engine.json",
        "report.md",
        "report.json",
        "latency.png",
        "accuracy_vs_latency.png",
        "model.engine",
        "model.engine.json",
    ):
        assert (deployed / name).is_file(), name
    assert not [p for p in deployed.parent.iterdir() if p.name.startswith(".out.")], "staging folder left behind"


def test_report_measures_every_engine_against_labels_and_fp32(deployed: Path) -> None:
    report = json.loads((deployed / "report.json").read_text())
    assert report["validation"]["samples"] == 359 and report["validation"]["labels"] is True
    engines = {e["precision"]: e for e in report["engines"]}
    assert set(engines) == {"fp32", "int8"}
    fp32, int8 = engines["fp32"], engines["int8"]
    assert fp32["accuracy"]["top1_accuracy"] > 0.95  # the sample model is ~99% accurate
    assert fp32["accuracy"]["max_abs_error"] == 0.0 and fp32["accuracy"]["top1_agreement"] == 1.0
    assert int8["accuracy"]["max_abs_error"] > 0.0  # quantized: not identical...
    assert int8["accuracy"]["mean_abs_error"] < 0.02 and int8["accuracy"]["top1_agreement"] > 0.97  # ...but close
    assert int8["drop_points"] == pytest.approx(
        (fp32["accuracy"]["top1_accuracy"] - int8["accuracy"]["top1_accuracy"]) * 100, abs=1e-3
    )
    for e in engines.values():
        assert e["median_ms"] > 0 and e["p99_ms"] >= e["median_ms"] and e["qps"] > 0
        assert e["size_bytes"] == (deployed / e["engine"]).stat().st_size
        assert e["passed"] == (e["drop_points"] <= 1.5)


def test_selected_engine_is_the_fastest_passing_one(deployed: Path) -> None:
    report = json.loads((deployed / "report.json").read_text())
    passing = [e for e in report["engines"] if e["passed"]]
    fastest = min(passing, key=lambda e: e["median_ms"])
    assert report["selected"] == fastest["engine"]
    assert (deployed / "model.engine").read_bytes() == (deployed / fastest["engine"]).read_bytes()


def test_report_md_has_the_table_and_the_commands_to_reproduce(deployed: Path) -> None:
    text = (deployed / "report.md").read_text()
    assert "| precision | top-1 |" in text and "| int8 |" in text
    assert "trtforge convert" in text and "trtforge build" in text and "--precision int8" in text
    assert "trtforge bench" in text


def test_default_validation_holds_out_part_of_the_calibration_folder(digits_bs1: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli(
        "deploy",
        str(digits_bs1),
        "-o",
        str(out),
        "--precision",
        "fp32",
        "--calib-data",
        str(DIGITS / "calib"),
        "--preprocess",
        DIGITS_PREPROCESS,
        *FAST_BENCH,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["validation"]["samples"] == 60  # every 5th of 300
    assert "held out" in report["validation"]["source"] and report["validation"]["labels"] is False
    assert report["engines"][0]["accuracy"]["top1_agreement"] == 1.0
    assert report["selected"] is None and not (out / "model.engine").exists()


def test_a_non_empty_outdir_is_refused_unless_forced(digits_bs1: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = [
        "deploy",
        str(digits_bs1),
        "-o",
        str(out),
        "--precision",
        "fp32",
        "--val-data",
        str(DIGITS / "test"),
        "--preprocess",
        DIGITS_PREPROCESS,
        *FAST_BENCH,
    ]
    proc = run_cli(*args)
    assert proc.returncode == 2 and "--force" in proc.stderr and "Traceback" not in proc.stderr
    assert (out / "keep.txt").exists()
    proc = run_cli(*args, "--force")
    assert proc.returncode == 0, proc.stderr
    assert not (out / "keep.txt").exists() and (out / "report.md").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--precision", "fp32,int8"], "--calib-data"),
        (["--precision", "fp32"], "--val-data"),
        (["--precision", "fp64"], "precision"),
    ],
)
def test_bad_requests_exit_2_and_write_nothing(
    digits_bs1: Path, tmp_path: Path, extra: list[str], message: str
) -> None:
    out = tmp_path / "out"
    proc = run_cli("deploy", str(digits_bs1), "-o", str(out), *extra)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_deploy_takes_convert_flags_for_a_torch_factory(tmp_path: Path) -> None:
    import numpy as np

    (tmp_path / "net.py").write_text(
        "import torch\n\n\ndef make():\n    torch.manual_seed(0)\n"
        "    return torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU()).eval()\n"
    )
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "val.npz", x=rng.normal(size=(16, 6)).astype(np.float32))
    np.savez(tmp_path / "bad.npz", x=rng.normal(size=(16, 1, 6)).astype(np.float32))
    common = (f"{tmp_path / 'net.py'}:make", "--input-shape", "x:1x6", "--precision", "fp32", *FAST_BENCH)
    proc = run_cli("deploy", *common, "-o", str(tmp_path / "bad"), "--val-data", str(tmp_path / "bad.npz"))
    assert proc.returncode == 2 and "'x' has shape 1x1x6" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "bad").exists()
    proc = run_cli("deploy", *common, "-o", str(tmp_path / "out"), "--val-data", str(tmp_path / "val.npz"))
    assert proc.returncode == 0, proc.stderr
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"net.py:make -o {tmp_path / 'out' / 'model.onnx'} --input-shape x:1x6" in report


def test_int8_over_budget_becomes_a_mixed_engine_that_passes(tmp_path: Path) -> None:
    from tests.precision.outlier_models import OUTLIER_UNIT, inputs, outlier_channel_model

    model = outlier_channel_model(tmp_path / "outlier.onnx")
    out = tmp_path / "out"
    proc = run_cli(
        "deploy",
        str(model),
        "-o",
        str(out),
        "--precision",
        "fp32,int8",
        "--calib-data",
        str(inputs(tmp_path / "calib.npz", 32, 1)),
        "--calib-method",
        "minmax",
        "--val-data",
        str(inputs(tmp_path / "val.npz", 32, 2)),
        "--max-accuracy-drop",
        "5",
        *FAST_BENCH,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    int8 = next(e for e in report["engines"] if e["precision"] == "int8")
    assert int8["passed"] is True and int8["mixed"]["error"]["int8"] > 50  # plain INT8 changed most answers
    assert [u["name"] for u in int8["mixed"]["kept_float"]] == [OUTLIER_UNIT]
    text = (out / "report.md").read_text()
    assert "## Mixed INT8" in text and OUTLIER_UNIT in text and (out / "validation.npz").is_file()
    assert (out / "sensitivity.png").read_bytes()[:4] == b"\x89PNG" and "sensitivity.png" in text
    # the Pareto table: FP32, the mix and plain INT8 (built beside it as a candidate of its own)
    plain = next(e for e in report["engines"] if e["precision"] == "int8-all")
    assert plain["engine"] == "model-int8-all.engine" and plain["drop_points"] > 50 and plain["passed"] is False
    pareto = text.split("## Accuracy vs latency (Pareto)")[1].split("##")[0]
    rows = [line for line in pareto.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 3 and any("int8 mixed: 2 unit(s) FP32" in r for r in rows)
    assert any("every unit INT8" in r for r in rows) and "| `model-fp32.engine` |" in pareto
    assert "| `model/conv_b/Conv2D` | Conv | conv_b |" in text  # the unit kept, named in the search section
    assert "INT8 share of the mix: " in text and "| out of INT8 if it helps alone | `model/conv_b/Conv2D` |" in text


def test_the_int8_engines_why_says_where_its_weights_run(deployed: Path) -> None:
    from trtforge.precision.quantize import has_vnni

    report = json.loads((deployed / "report.json").read_text())
    why = next(e["why"] for e in report["engines"] if e["precision"] == "int8")
    note = "8-bit weights: this engine loads on CPUs with VNNI only"
    assert (note in why) is has_vnni()  # built here: 8-bit weights with VNNI, 7-bit without
    assert (note in (deployed / "report.md").read_text()) is has_vnni()
