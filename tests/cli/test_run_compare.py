"""`trtforge run` and `trtforge compare` on the digits model, images and arrays."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import DIGITS, DIGITS_PREPROCESS, run_cli

TEST_IMAGES = DIGITS / "test"


@pytest.fixture(scope="module")
def engines(digits_onnx: Path, digits_bs1: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import trtforge

    folder = tmp_path_factory.mktemp("run-compare")
    out = {"fp32": folder / "fp32.engine", "int8": folder / "int8.engine"}
    trtforge.build(digits_bs1, out["fp32"])
    calib = trtforge.CalibrationConfig(
        data=DIGITS / "calib", num=40, preprocess=trtforge.Preprocess.parse(DIGITS_PREPROCESS)
    )
    trtforge.build(digits_bs1, out["int8"], trtforge.BuildConfig(precision=trtforge.Precision.INT8, calibration=calib))
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve held-out digits with their labels.csv rows."""
    folder = tmp_path_factory.mktemp("images")
    files = sorted(TEST_IMAGES.glob("*.png"))[:12]
    for f in files:
        shutil.copy(f, folder / f.name)
    rows = [
        line
        for line in (TEST_IMAGES / "labels.csv").read_text().splitlines()
        if line.startswith("file") or line.split(",")[0] in {f.name for f in files}
    ]
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_run_on_images_uses_the_calibration_preprocessing(
    engines: dict[str, Path], images: Path, tmp_path: Path
) -> None:
    import trtforge

    out = tmp_path / "out.npz"
    proc = run_cli(
        "run",
        str(engines["fp32"]),
        "--inputs",
        str(images),
        "--preprocess",
        DIGITS_PREPROCESS,
        "-o",
        str(out),
        "--top-k",
        "2",
    )
    assert proc.returncode == 0, proc.stderr
    assert "output output_0: float32 12x10" in proc.stdout and "top-2 of output_0:" in proc.stdout
    files = sorted(images.glob("*.png"))
    pre = trtforge.Preprocess.parse(DIGITS_PREPROCESS)
    runner = trtforge.load(engines["fp32"])
    expected = np.concatenate([runner.infer({"image": pre.load(f)[None]})["output_0"] for f in files])
    got = np.load(out)["output_0"]
    assert np.allclose(got, expected, atol=1e-6)
    first = f"  {files[0].name}: {int(expected[0].argmax())} ("
    assert first in proc.stdout


def test_run_on_arrays_with_a_fixed_batch_pads_the_last_chunk(engines: dict[str, Path], tmp_path: Path) -> None:
    import trtforge

    x = np.random.default_rng(0).uniform(0, 1, (3, 1, 32, 32)).astype(np.float32)
    result = trtforge.run(engines["fp32"], _npz(tmp_path, image=x), output=tmp_path / "o.npz")
    runner = trtforge.load(engines["fp32"])
    assert result.outputs["output_0"].shape == (3, 10)
    assert np.allclose(result.outputs["output_0"][2], runner.infer({"image": x[2:3]})["output_0"][0])
    assert np.array_equal(np.load(tmp_path / "o.npz")["output_0"], result.outputs["output_0"])


def _npz(folder: Path, **arrays: np.ndarray) -> Path:
    np.savez(folder / "x.npz", **arrays)
    return folder / "x.npz"


def test_compare_identical_engine_and_onnx_passes(
    engines: dict[str, Path], digits_bs1: Path, images: Path, tmp_path: Path
) -> None:
    proc = run_cli(
        "compare",
        str(engines["fp32"]),
        str(digits_bs1),
        "--inputs",
        str(images),
        "--preprocess",
        DIGITS_PREPROCESS,
        "--atol",
        "1e-6",
        "--min-cosine",
        "0.99999",
        "--json",
        str(tmp_path / "c.json"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASSED" in proc.stdout and "labels.csv" in proc.stdout
    data = json.loads((tmp_path / "c.json").read_text())
    (o,) = data["outputs"]
    assert data["samples"] == 12 and data["passed"] is True
    assert o["max_abs_error"] <= 1e-6 and o["top1_agreement"] == 1.0
    assert o["top1_accuracy"] == o["reference_top1_accuracy"] is not None


def test_compare_int8_against_fp32_metrics_and_threshold_exit_1(
    engines: dict[str, Path], digits_bs1: Path, images: Path, tmp_path: Path
) -> None:
    import trtforge

    result = trtforge.compare(engines["int8"], digits_bs1, images, trtforge.Preprocess.parse(DIGITS_PREPROCESS))
    (o,) = result.outputs
    # by hand, from the two runners
    pre = trtforge.Preprocess.parse(DIGITS_PREPROCESS)
    files = sorted(images.glob("*.png"))
    x = np.stack([pre.load(f) for f in files])
    a = np.concatenate([trtforge.load(engines["int8"]).infer({"image": s[None]})["output_0"] for s in x])
    b = np.concatenate([trtforge.run(digits_bs1, _npz(tmp_path, image=x)).outputs["output_0"]])
    assert o.max_abs_error == pytest.approx(np.abs(a - b).max())
    assert o.top1_agreement == pytest.approx(np.mean(a.argmax(1) == b.argmax(1)))
    labels = np.array([int(f.stem.split("_")[1]) for f in files])
    assert o.top1_accuracy == pytest.approx(np.mean(a.argmax(1) == labels))
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert o.min_cosine == pytest.approx(cos.min())
    assert result.passed  # no thresholds given
    tight = o.max_abs_error / 2
    proc = run_cli(
        "compare",
        str(engines["int8"]),
        str(digits_bs1),
        "--inputs",
        str(images),
        "--preprocess",
        DIGITS_PREPROCESS,
        "--atol",
        str(tight),
    )
    assert proc.returncode == 1 and "FAILED" in proc.stdout and "beyond atol" in proc.stdout


def test_compare_random_and_labels_from_file_names(
    engines: dict[str, Path], digits_onnx: Path, images: Path, tmp_path: Path
) -> None:
    proc = run_cli(
        "compare", str(engines["fp32"]), str(digits_onnx), "--random", "4", "--rtol", "1e-4", "--atol", "1e-6"
    )
    assert proc.returncode == 0 and "random (seed 0)" in proc.stdout, proc.stdout + proc.stderr
    no_csv = tmp_path / "imgs"
    shutil.copytree(images, no_csv)
    (no_csv / "labels.csv").unlink()
    import trtforge

    result = trtforge.compare(engines["fp32"], digits_onnx, no_csv, trtforge.Preprocess.parse(DIGITS_PREPROCESS))
    assert result.labels_source and "file names" in result.labels_source
    assert result.outputs[0].top1_accuracy is not None


@pytest.mark.parametrize(
    "args, message",
    [
        (("--inputs", "IMAGES"), "needs --preprocess"),
        ((), "no inputs"),
        (("--random", "2", "--inputs", "IMAGES"), "not both"),
        (("--random", "2", "--min-cosine", "2"), "--min-cosine: 2 is out of range"),
    ],
)
def test_compare_bad_input_is_exit_2(
    engines: dict[str, Path],
    digits_bs1: Path,
    images: Path,
    args: tuple[str, ...],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from trtforge.cli import main

    args = tuple(str(images) if a == "IMAGES" else a for a in args)
    assert main(["compare", str(engines["fp32"]), str(digits_bs1), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


def test_compare_against_the_source_savedmodel(engines: dict[str, Path], images: Path, tmp_path: Path) -> None:
    proc = run_cli(
        "compare",
        str(engines["fp32"]),
        str(DIGITS / "saved_model"),
        "--inputs-as-nchw",
        "image",
        "--inputs",
        str(images),
        "--preprocess",
        DIGITS_PREPROCESS,
        "--atol",
        "1e-4",
        "--json",
        str(tmp_path / "c.json"),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TensorFlow, the source model" in proc.stdout and "PASSED" in proc.stdout
    (o,) = json.loads((tmp_path / "c.json").read_text())["outputs"]
    assert o["top1_agreement"] == 1.0 and o["max_abs_error"] <= 1e-4
    # without the layout the converter used, the source refuses the engine's NCHW arrays: one line, exit 2
    proc = run_cli("compare", str(engines["fp32"]), str(DIGITS / "saved_model"), "--random", "2")
    assert proc.returncode == 2 and "--inputs-as-nchw image" in proc.stderr and "Traceback" not in proc.stderr


def test_library_names_survive_submodule_imports() -> None:
    """Importing a stage's module must not replace the API function of the same name."""
    import importlib

    import trtforge

    for module in ("compare", "deploy", "run", "build", "bench", "bench.loop", "converters"):
        assert importlib.import_module(f"trtforge.{module}").__name__ == f"trtforge.{module}"
    from trtforge.bench import bench
    from trtforge.build import build, load
    from trtforge.compare import compare
    from trtforge.deploy import deploy
    from trtforge.run import run

    assert (trtforge.compare, trtforge.deploy, trtforge.run, trtforge.build, trtforge.load, trtforge.bench) == (
        compare,
        deploy,
        run,
        build,
        load,
        bench,
    )
    assert callable(trtforge.convert) and callable(trtforge.reshape)
