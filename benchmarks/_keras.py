"""keras.applications models (weights=None) as ONNX, for the precision benchmarks.

Keras runs in a child process, so TensorFlow's memory is not counted in the caller's peak RSS.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_EXPORT = """
import keras
keras.utils.set_random_seed(0)
model = keras.applications.{name}(weights=None, input_shape=({size}, {size}, 3))
model.export({path!r}, verbose=False)
"""


def keras_onnx(name: str, folder: Path, size: int = 224) -> Path:
    """``keras.applications.<name>(weights=None)`` -> SavedModel -> ``folder/<name>.onnx`` (NHWC input)."""
    import trtforge

    saved = folder / f"{name}_saved_model"
    out = folder / f"{name}.onnx"
    if not out.exists():
        subprocess.run(
            [sys.executable, "-c", _EXPORT.format(name=name, size=size, path=str(saved))],
            check=True,
            capture_output=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        trtforge.convert(saved, out)
    return out
