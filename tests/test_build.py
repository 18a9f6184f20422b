"""``build``'s shared rules and ``load_runners``: one behaviour for every front."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from trtforge.build import build, load_runners, settle
from trtforge.config import BuildConfig, TensorRTOptions
from trtforge.errors import TrtforgeError


def test_tensorrt_options_on_onnxruntime_are_refused_by_the_library(tmp_path: Path, digits_bs1: Path) -> None:
    config = BuildConfig(backend="onnxruntime", tensorrt=TensorRTOptions(opt_level=5))
    with pytest.raises(TrtforgeError, match="TensorRT builder options were given, but the backend is onnxruntime"):
        build(digits_bs1, tmp_path / "m.engine", config)
    assert not (tmp_path / "m.engine").exists()


def test_auto_resolves_to_a_real_backend_here() -> None:
    # No GPU on CI machines, so auto is ONNX Runtime, or stays auto for build() to measure it against
    # OpenVINO where that is installed; with TensorRT options that is refused, naming auto.
    import importlib.util

    expected = "auto" if importlib.util.find_spec("openvino") else "onnxruntime"
    assert settle(BuildConfig(backend="auto")).backend == expected
    with pytest.raises(TrtforgeError, match="--backend auto found no TensorRT"):
        settle(BuildConfig(backend="auto", tensorrt=TensorRTOptions(workspace_mib=64)))


def test_load_runners_gives_one_session_per_stream_sharing_the_cores(tmp_path: Path, digits_bs1: Path) -> None:
    engine = tmp_path / "m.engine"
    build(digits_bs1, engine)
    runners, manifest = load_runners(engine, streams=2, threads=1)
    assert len(runners) == 2 and runners[0] is not runners[1]
    assert manifest.backend == "onnxruntime"
    assert [r.inputs for r in runners] == [runners[0].inputs] * 2


def test_the_calibration_preprocess_is_resolved_against_the_model_once(digits_bs1: Path) -> None:
    from trtforge.config import CalibrationConfig
    from trtforge.data.preprocess import Preprocess
    from trtforge.precision.apply import resolve

    calibration = CalibrationConfig(data=Path("imgs"), preprocess=Preprocess.parse("color=gray,resize=fit"))
    config = resolve(BuildConfig(precision="int8", calibration=calibration), onnx.load(digits_bs1))
    assert config.calibration is not None and config.calibration.preprocess is not None
    assert config.calibration.preprocess.size == (32, 32)  # what both INT8 paths write in the cache sidecar
