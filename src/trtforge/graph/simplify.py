"""Constant folding and graph cleanup, done by onnxslim (the maintained library for it).

The caller verifies the result by running it (see :func:`trtforge.graph.shapes.reshape`).
"""

from __future__ import annotations

import onnx

from trtforge.errors import TrtforgeError, require


def simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return an onnxslim-simplified copy of ``model`` (the input is left as it was)."""
    onnxslim = require("onnxslim", "slim", "--simplify")
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    try:
        slimmed = onnxslim.slim(copy)
    except Exception as exc:  # onnxslim raises many kinds; the model is the user's input
        raise TrtforgeError(
            f"onnxslim could not simplify the model "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "nothing was written; run without --simplify"
        ) from None
    if not isinstance(slimmed, onnx.ModelProto):
        raise TrtforgeError("onnxslim returned no model; nothing was written; run without --simplify")
    return slimmed
