"""trtforge: from a trained model to a validated, benchmarked inference engine.

The public API mirrors the CLI, one call per stage::

    import trtforge
    trtforge.convert("saved_model", "model.onnx", trtforge.ConvertOptions(inputs_as_nchw=("image",)))
    trtforge.reshape("model.onnx", "model-bs1.onnx", batch=1)
    trtforge.build("model-bs1.onnx", "model.engine", trtforge.BuildConfig(precision="fp32"))
    runner = trtforge.load("model.engine")
    outputs = runner.infer({"image": x})
    result = trtforge.bench("model.engine")

Heavy dependencies (TensorFlow, PyTorch, TensorRT, ONNX Runtime) are imported only when a
stage needs them, so ``import trtforge`` is cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "convert": "trtforge.converters:convert",
    "ConvertOptions": "trtforge.converters:ConvertOptions",
    "reshape": "trtforge.graph.shapes:reshape",
    "Batch": "trtforge.graph.shapes:Batch",
    "ShapeRange": "trtforge.graph.ranges:ShapeRange",
    "build": "trtforge.builder:build",
    "load": "trtforge.builder:load",
    "bench": "trtforge.benchmark:bench",
    "BenchSettings": "trtforge.benchmark:BenchSettings",
    "run": "trtforge.inference:run",
    "compare": "trtforge.comparison:compare",
    "Thresholds": "trtforge.comparison:Thresholds",
    "deploy": "trtforge.deployment:deploy",
    "DeployOptions": "trtforge.deployment:DeployOptions",
    "BuildConfig": "trtforge.config:BuildConfig",
    "CalibrationConfig": "trtforge.config:CalibrationConfig",
    "CalibMethod": "trtforge.config:CalibMethod",
    "Precision": "trtforge.config:Precision",
    "Preprocess": "trtforge.precision.data:Preprocess",
    "TrtforgeError": "trtforge.errors:TrtforgeError",
}

__all__ = sorted(_LAZY) + ["__version__"]

if TYPE_CHECKING:
    from trtforge.benchmark import BenchSettings, bench
    from trtforge.builder import build, load
    from trtforge.comparison import Thresholds, compare
    from trtforge.inference import run
    from trtforge.config import BuildConfig, CalibMethod, CalibrationConfig, Precision
    from trtforge.converters import ConvertOptions, convert
    from trtforge.deployment import DeployOptions, deploy
    from trtforge.errors import TrtforgeError
    from trtforge.graph.ranges import ShapeRange
    from trtforge.graph.shapes import Batch, reshape
    from trtforge.precision.data import Preprocess


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'trtforge' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value
