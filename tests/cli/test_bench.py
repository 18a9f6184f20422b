"""`trtforge bench` and exec's bench flags, end to end on the digits model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import run_cli

FAST = ("--warmup", "0", "--duration", "0", "--no-progress")


@pytest.fixture(scope="module")
def engines(digits_onnx: Path, digits_bs1: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import trtforge

    folder = tmp_path_factory.mktemp("bench-cli")
    out = {"dynamic": folder / "dyn.engine", "bs1": folder / "bs1.engine"}
    trtforge.build(digits_onnx, out["dynamic"])
    trtforge.build(digits_bs1, out["bs1"])
    return out


def test_summary_json_times_and_plot(engines: dict[str, Path], tmp_path: Path) -> None:
    proc = run_cli(
        "bench",
        str(engines["bs1"]),
        *FAST,
        "--iterations",
        "60",
        "--streams",
        "2",
        "--threads",
        "1",
        "--percentile",
        "50,99",
        "--json",
        str(tmp_path / "b.json"),
        "--export-times",
        str(tmp_path / "t.json"),
        "--plot",
        str(tmp_path / "p.png"),
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "=== Performance summary ===" in out and "Throughput:" in out and "samples/s" in out
    assert "percentile(50%)" in out and "percentile(99%)" in out and "Total Host Walltime:" in out
    assert "GPU Compute Time" not in out and "H2D Latency" not in out  # rows that do not apply on the CPU
    assert 'use "Throughput"' in out  # several streams
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["queries"] >= 60 and data["settings"]["streams"] == 2 and data["settings"]["threads"] == 1
    assert data["settings"]["percentiles"] == [50.0, 99.0] and data["context"]["threads"] == 1
    assert data["context"]["input_source"] == "random (seed 0)"
    assert data["context"]["inputs"] == {"image": {"shape": [1, 1, 32, 32], "dtype": "float32"}}
    assert data["machine"]["cpu"]["cores"] >= 1 and "date" in data["machine"]
    times = json.loads((tmp_path / "t.json").read_text())
    assert len(times) == data["queries"] and {t["stream"] for t in times} == {0, 1}
    assert all(t["endHostMs"] - t["startHostMs"] == pytest.approx(t["latencyMs"]) for t in times)
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_inputs_file_and_dynamic_shapes(engines: dict[str, Path], tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", image=np.full((3, 1, 32, 32), 0.5, np.float32))
    proc = run_cli(
        "bench", str(engines["dynamic"]), *FAST, "--inputs", str(tmp_path / "x.npz"), "--json", str(tmp_path / "b.json")
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["batch"] == 3 and data["context"]["input_source"] == str(tmp_path / "x.npz")
    proc = run_cli(
        "bench", str(engines["dynamic"]), *FAST, "--shapes", "image:5x1x32x32", "--json", str(tmp_path / "b.json")
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "b.json").read_text())["batch"] == 5
    proc = run_cli("bench", str(engines["dynamic"]), *FAST, "--batch", "4")
    assert proc.returncode == 0 and "samples/s at batch 4" in proc.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (("--cuda-graph",), "runs on the CPU"),
        (("--no-data-transfers", "--spin-wait"), "--no-data-transfers, --spin-wait"),
        (("--shapes", "image:1x3x32x32"), "dimension 1 is fixed at 1"),
        (("--shapes", "nothere:1x1x32x32"), "no input named 'nothere'"),
        (("--batch", "2"), "fixed batch of 1"),
        (("--percentile", "150"), "bad percentile"),
        (("--streams", "0"), "--streams: 0 is out of range"),
    ],
)
def test_bad_settings_are_one_line_exit_2(
    engines: dict[str, Path], args: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from trtforge.cli import main  # in process: these fail before any timing, a subprocess each is slow

    assert main(["bench", str(engines["bs1"]), *FAST, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1, err


def test_exec_bench_flags(engines: dict[str, Path], tmp_path: Path) -> None:
    x = np.random.default_rng(1).uniform(0, 1, (1, 1, 32, 32)).astype(np.float32)
    x.tofile(tmp_path / "x.bin")
    proc = run_cli(
        "exec",
        f"--loadEngine={engines['bs1']}",
        "--iterations=30",
        "--duration=0",
        "--warmUp=0",
        "--percentile=50",
        "--infStreams=2",
        "--avgRuns=5",
        "--verbose",
        "--useCudaGraph",
        f"--loadInputs=image:{tmp_path / 'x.bin'}",
        f"--exportOutput={tmp_path / 'o.json'}",
        f"--exportTimes={tmp_path / 't.json'}",
        "--dumpProfile",
        f"--exportLayerInfo={tmp_path / 'l.json'}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "=== Performance summary ===" in out and "percentile(50%)" in out and "percentile(99%)" not in out
    assert "--useCudaGraph: the engine runs on the CPU" in out and "Multiple inference streams" in out
    assert "Average on 5 runs" in out
    assert "--dumpProfile: per-layer profiles need a TensorRT engine" in out
    assert "--exportLayerInfo: onnxruntime gives no layer information" in out and not (tmp_path / "l.json").exists()
    (entry,) = json.loads((tmp_path / "o.json").read_text())
    import trtforge

    expected = trtforge.load(engines["bs1"]).infer({"image": x})["output_0"]
    assert entry["name"] == "output_0" and entry["dimensions"] == "1x10"
    assert np.allclose(entry["values"], expected.ravel(), atol=1e-6)
    times = json.loads((tmp_path / "t.json").read_text())
    assert len(times) >= 30 and {"startHostMs", "endHostMs", "latencyMs"} <= set(times[0])


def test_exec_load_inputs_of_the_wrong_size_is_refused(engines: dict[str, Path], tmp_path: Path) -> None:
    np.zeros(7, np.float32).tofile(tmp_path / "x.bin")
    proc = run_cli("exec", f"--loadEngine={engines['bs1']}", f"--loadInputs=image:{tmp_path / 'x.bin'}")
    assert proc.returncode == 2 and "28 bytes" in proc.stderr and "Traceback" not in proc.stderr
