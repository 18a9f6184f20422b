"""TensorFlow SavedModel -> ONNX through tf2onnx.

tf2onnx runs as a module in a child process: TensorFlow's import cost and memory then
end with the conversion, and its log noise stays out of ours unless it fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from trtforge.converters import Converter, ConvertOptions, register
from trtforge.errors import TrtforgeError, require


def _is_saved_model(path: Path) -> bool:
    return path.is_dir() and (
        (path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists()
    )


def _tensor_names(names: tuple[str, ...]) -> str:
    # tf2onnx matches graph tensor names, which carry ":0"; accept both spellings.
    return ",".join(n if ":" in n else f"{n}:0" for n in names)


def convert_saved_model(source: Path, output: Path, options: ConvertOptions) -> None:
    require("tf2onnx", "tf", "Converting a TensorFlow model")
    if not _is_saved_model(source):
        raise TrtforgeError(f"{source} is not a TensorFlow SavedModel folder (no saved_model.pb in it)")
    cmd = [sys.executable, "-m", "tf2onnx.convert", "--saved-model", str(source),
           "--output", str(output), "--opset", str(options.opset)]
    if options.inputs_as_nchw:
        cmd += ["--inputs-as-nchw", _tensor_names(options.inputs_as_nchw)]
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if proc.returncode != 0 or not output.exists() or output.stat().st_size == 0:
        raise TrtforgeError(f"tf2onnx could not convert {source}: {_last_error(proc.stderr)}")
    _check_nchw_applied(output, options.inputs_as_nchw)


    return dict(os.environ)


def _last_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return line
    return lines[-1] if lines else "no message"


def _check_nchw_applied(output: Path, names: tuple[str, ...]) -> None:
    """tf2onnx ignores unknown --inputs-as-nchw names; we refuse them instead."""
    if not names:
        return
    import onnx

    from trtforge.graph.model import resolve_input_name

    model = onnx.load(str(output), load_external_data=False)
    inputs = [i.name for i in model.graph.input]
    for name in names:
        resolve_input_name(name, inputs)


register(Converter("savedmodel", _is_saved_model, convert_saved_model))
