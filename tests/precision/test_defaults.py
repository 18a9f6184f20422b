"""The INT8 defaults are the ones the README states (issue 13's section), in the library and every CLI verb."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trtforge.cli import make_parser
from trtforge.config import DEFAULT_CALIB_METHOD, CalibrationConfig

README = Path(__file__).resolve().parents[2] / "README.md"


def _issue_13() -> str:
    return README.read_text().split("<!-- issue 13 -->")[1].split("<!-- /issue 13 -->")[0]


def test_readme_states_the_default_method_the_library_uses() -> None:
    said = re.search(r"default range search is `--calib-method (\w+)`", _issue_13())
    assert said is not None, "README's issue-13 section must say: default range search is `--calib-method X`"
    assert said.group(1) == str(DEFAULT_CALIB_METHOD) == str(CalibrationConfig(data=Path("calib")).method)


def test_readme_states_that_bias_correction_is_on_by_default() -> None:
    assert "bias correction is on by default" in _issue_13().lower()
    assert CalibrationConfig(data=Path("calib")).bias_correction


@pytest.mark.parametrize(
    "argv",
    [
        ["build", "m.onnx", "-o", "m.plan", "--precision", "int8"],
        ["deploy", "m.onnx", "--output", "d"],
        ["sensitivity", "m.onnx", "--calib-data", "c", "--val-data", "v"],
    ],
)
def test_every_verb_defaults_to_it(argv: list[str]) -> None:
    args = make_parser().parse_args(argv)
    assert args.calib_method == str(DEFAULT_CALIB_METHOD) and args.bias_correction is True
    args = make_parser().parse_args([*argv, "--no-bias-correction"])
    assert args.bias_correction is False


@pytest.mark.parametrize(
    "argv", [["build", "m.onnx", "-o", "m.plan", "--precision", "int8"], ["deploy", "m.onnx", "--output", "d"]]
)
def test_the_measured_bias_correction_is_on_unless_switched_off(argv: list[str]) -> None:
    assert make_parser().parse_args(argv).empirical_bias_correction is True
    assert CalibrationConfig(data=Path("calib")).empirical_bias_correction
    assert make_parser().parse_args([*argv, "--no-measured-bias-correction"]).empirical_bias_correction is False


def test_readme_states_that_channel_equalisation_is_on_by_default() -> None:
    assert "channel equalisation before calibration is on by default" in _issue_13().lower()
    assert "--no-equalize" in _issue_13() and CalibrationConfig(data=Path("calib")).equalize
