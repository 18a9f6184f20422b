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

# The verbs are bound eagerly: a module of the same name (trtforge/build.py, trtforge/bench/) would
# otherwise replace the function as the package's attribute once anything imported it. Their modules
# import only numpy and trtforge's own light modules at the top; frameworks load when a stage runs.
from trtforge.bench import BenchSettings, bench  # noqa: E402
from trtforge.build import build, load  # noqa: E402
from trtforge.compare import Thresholds, compare  # noqa: E402
from trtforge.deploy import DeployOptions, deploy  # noqa: E402
from trtforge.run import run  # noqa: E402

_LAZY = {
    "convert": "trtforge.converters:convert",
    "ConvertOptions": "trtforge.converters:ConvertOptions",
    "reshape": "trtforge.graph.shapes:reshape",
    "Batch": "trtforge.graph.shapes:Batch",
    "ShapeRange": "trtforge.graph.ranges:ShapeRange",
    "BuildConfig": "trtforge.config:BuildConfig",
    "CalibrationConfig": "trtforge.config:CalibrationConfig",
    "CalibMethod": "trtforge.config:CalibMethod",
    "Precision": "trtforge.config:Precision",
    "Preprocess": "trtforge.data.preprocess:Preprocess",
    "TrtforgeError": "trtforge.errors:TrtforgeError",
    "precision": "trtforge.precision",  # the subpackage: trtforge.precision.sensitivity(...)
}

__all__ = [
    "__version__",
    "Batch",
    "bench",
    "BenchSettings",
    "build",
    "BuildConfig",
    "CalibMethod",
    "CalibrationConfig",
    "compare",
    "convert",
    "ConvertOptions",
    "deploy",
    "DeployOptions",
    "load",
    "Precision",
    "Preprocess",
    "reshape",
    "run",
    "ShapeRange",
    "Thresholds",
    "TrtforgeError",
]

if TYPE_CHECKING:
    from trtforge.config import BuildConfig, CalibMethod, CalibrationConfig, Precision
    from trtforge.converters import ConvertOptions, convert
    from trtforge.data.preprocess import Preprocess
    from trtforge.errors import TrtforgeError
    from trtforge.graph.ranges import ShapeRange
    from trtforge.graph.shapes import Batch, reshape


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'trtforge' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr) if attr else importlib.import_module(module)
    globals()[name] = value
    return value
