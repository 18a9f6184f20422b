"""``trtforge inspect`` on a source model: a .tflite file, a Keras .h5/.keras file or a SavedModel.

What a user checking a source before converting it wants: its inputs and outputs (names,
shapes with dynamic dims as ``-1``, dtypes), op or layer counts, parameters, and what will
matter for conversion (TFLite custom ops, quantized weights, resource variables).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trtforge.config import TensorSpec
from trtforge.errors import TrtforgeError

DESCRIBED = ("tflite", "keras", "h5", "savedmodel")
"""Source forms :func:`describe_source` reads."""


@dataclass(frozen=True)
class SourceSummary:
    path: str
    form: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    ops: dict[str, int]
    """Op (TFLite, SavedModel) or layer (Keras) type -> count."""
    parameters: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "form": self.form,
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "ops": self.ops,
            "parameters": self.parameters,
            "notes": self.notes,
        }


def _spec(name: str, dtype: Any, shape: Any) -> TensorSpec:
    dims = tuple(-1 if d is None or int(d) < 0 else int(d) for d in shape) if shape is not None else ()
    return TensorSpec(name, np.dtype(getattr(dtype, "as_numpy_dtype", dtype)).name, dims)


def describe_source(path: str | Path, form: str) -> SourceSummary:
    """Describe a source model of ``form`` (one of :data:`DESCRIBED`)."""
    import warnings

    from trtforge.converters import quiet_native_logs
    from trtforge.converters.tensorflow import _tf

    source = Path(path)
    describe = {"tflite": _tflite, "keras": _keras, "h5": _keras, "savedmodel": _saved_model}[form]
    try:
        with quiet_native_logs(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            return describe(_tf(), source, form)
    except TrtforgeError:
        raise
    except Exception as exc:
        last = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        raise TrtforgeError(f"cannot read {source} as a {form} model: {last}") from None


def _tflite(tf: Any, source: Path, form: str) -> SourceSummary:
    from trtforge.converters.tensorflow import _STATE_OPS, _quantized_weights

    interpreter = tf.lite.Interpreter(model_path=str(source))
    spec = lambda d: _spec(d["name"], d["dtype"], d.get("shape_signature", d["shape"]))  # noqa: E731
    ops = Counter(o["op_name"] for o in interpreter._get_ops_details())
    notes = []
    custom = sorted(op for op in ops if not re.fullmatch(r"[A-Z0-9_]+", op))
    if custom:
        notes.append(f"custom ops (no ONNX op; convert names the way forward): {', '.join(custom)}")
    quantized = _quantized_weights(interpreter)
    if quantized:
        notes.append(f"quantized: {quantized}")
    if set(ops) & _STATE_OPS:
        notes.append("state kept in resource variables (a streaming model): tf2onnx cannot convert it")
    return SourceSummary(
        str(source),
        form,
        [spec(d) for d in interpreter.get_input_details()],
        [spec(d) for d in interpreter.get_output_details()],
        dict(ops.most_common()),
        None,
        notes,
    )


def _keras(tf: Any, source: Path, form: str) -> SourceSummary:
    model = tf.keras.models.load_model(str(source), compile=False)
    inputs = [_spec(t.name, t.dtype, t.shape) for t in model.inputs]
    outputs = [_spec(t.name, t.dtype, t.shape) for t in model.outputs]
    layers = Counter(type(layer).__name__ for layer in model.layers)
    return SourceSummary(str(source), form, inputs, outputs, dict(layers.most_common()), int(model.count_params()))


def _saved_model(tf: Any, source: Path, form: str) -> SourceSummary:
    loaded = tf.saved_model.load(str(source))
    signatures = dict(loaded.signatures)
    if not signatures:
        raise TrtforgeError(f"{source} has no signatures to describe (convert needs one: --signature)")
    key = "serving_default" if "serving_default" in signatures else next(iter(signatures))
    fn = signatures[key]
    args = fn.structured_input_signature[1]
    inputs = [_spec(name, t.dtype, t.shape) for name, t in args.items()]
    outputs = [_spec(name, t.dtype, t.shape) for name, t in fn.structured_outputs.items()]
    ops = Counter(op.type for op in fn.graph.get_operations() if op.type not in ("Placeholder", "NoOp"))
    params = sum(int(np.prod(v.shape)) for v in getattr(loaded, "variables", []))
    notes = [f"signature {key!r} of {', '.join(signatures)}"]
    return SourceSummary(str(source), form, inputs, outputs, dict(ops.most_common()), params, notes)
