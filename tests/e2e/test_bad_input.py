"""Every bad input ends in one line on stderr, exit code 2, and no output file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tests.conftest import DIGITS, DIGITS_PREPROCESS, run_cli


def assert_user_error(proc, output: Path | None = None, mentions: str = "") -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("trtforge: error: ") and "Traceback" not in proc.stderr
    assert mentions in lines[0]
    if output is not None:
        assert not output.exists()
        assert not [p for p in output.parent.iterdir() if p.name.startswith(f".{output.name}")]


def test_missing_model(tmp_path: Path) -> None:
    out = tmp_path / "x.engine"
    assert_user_error(run_cli("build", str(tmp_path / "nope.onnx"), "-o", str(out)), out, "not found")


def test_not_an_onnx_file(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"this is not protobuf \x00\xff" * 10)
    out = tmp_path / "x.engine"
    assert_user_error(run_cli("build", str(bogus), "-o", str(out)), out, "ONNX")
    assert_user_error(run_cli("inspect", str(bogus)), None, "ONNX")


@pytest.mark.parametrize("batch", ["0", "-3", "two", "1.5", ""])
def test_bad_batch(digits_onnx: Path, tmp_path: Path, batch: str) -> None:
    out = tmp_path / "x.onnx"
    assert_user_error(run_cli("reshape", str(digits_onnx), "-o", str(out), "--batch", batch), out, "batch")


@pytest.mark.parametrize("spec", ["color=purple", "resize=32", "scale=1/0", "layout=chwn", "size=3", "color"])
def test_bad_preprocess(digits_bs1: Path, tmp_path: Path, spec: str) -> None:
    out = tmp_path / "x.engine"
    proc = run_cli(
        "build",
        str(digits_bs1),
        "-o",
        str(out),
        "--precision",
        "int8",
        "--calib-data",
        str(DIGITS / "calib"),
        "--preprocess",
        spec,
    )
    assert_user_error(proc, out, "preprocess")


def test_empty_calibration_folder(digits_bs1: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "x.engine"
    proc = run_cli(
        "build",
        str(digits_bs1),
        "-o",
        str(out),
        "--precision",
        "int8",
        "--calib-data",
        str(empty),
        "--preprocess",
        DIGITS_PREPROCESS,
    )
    assert_user_error(proc, out, "no images")


def test_folder_with_no_readable_image(digits_bs1: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(3):
        (broken / f"{i}.png").write_bytes(b"not a png")
    out = tmp_path / "x.engine"
    proc = run_cli(
        "build",
        str(digits_bs1),
        "-o",
        str(out),
        "--precision",
        "int8",
        "--calib-data",
        str(broken),
        "--preprocess",
        DIGITS_PREPROCESS,
    )
    assert proc.returncode == 2 and "none of the 3 images" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


def test_unreadable_images_are_skipped_and_counted(digits_bs1: Path, tmp_path: Path) -> None:
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for src in sorted((DIGITS / "calib").glob("*.png"))[:20]:
        shutil.copy(src, mixed / src.name)
    (mixed / "zz-broken.png").write_bytes(b"not a png")
    out = tmp_path / "x.engine"
    proc = run_cli(
        "build",
        str(digits_bs1),
        "-o",
        str(out),
        "--precision",
        "int8",
        "--calib-data",
        str(mixed),
        "--preprocess",
        DIGITS_PREPROCESS,
    )
    assert proc.returncode == 0, proc.stderr
    assert "skipped 1 unreadable file" in proc.stderr and out.exists()


def test_int8_without_calibration_data(digits_bs1: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.engine"
    assert_user_error(run_cli("build", str(digits_bs1), "-o", str(out), "--precision", "int8"), out, "--calib-data")


def test_unknown_input_name_for_nchw(tmp_path: Path) -> None:
    out = tmp_path / "x.onnx"
    proc = run_cli("convert", str(DIGITS / "saved_model"), "-o", str(out), "--inputs-as-nchw", "pixels")
    assert_user_error(proc, out, "pixels")


def test_changed_engine_is_refused(digits_bs1: Path, tmp_path: Path) -> None:
    engine = tmp_path / "x.engine"
    assert run_cli("build", str(digits_bs1), "-o", str(engine)).returncode == 0
    engine.write_bytes(engine.read_bytes() + b"\x00")
    assert_user_error(run_cli("bench", str(engine), "--duration", "0"), None, "does not match its manifest")


def test_unknown_precision_and_backend(digits_bs1: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.engine"
    assert_user_error(run_cli("build", str(digits_bs1), "-o", str(out), "--precision", "fp12"), out, "fp12")
    assert_user_error(run_cli("build", str(digits_bs1), "-o", str(out), "--backend", "nope"), out, "nope")
