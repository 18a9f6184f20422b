"""inspect: symbolic dims, domains, custom ops, parameters; the engine describe hook."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx_models as M

from trtforge.backends.base import _REGISTRY, register_backend
from trtforge.backends.onnxruntime import OnnxRuntimeBackend
from trtforge.engine import describe as describe_engine
from trtforge.graph.inspect import summarize


def test_summary_names_dynamic_dims_and_the_nodes_that_use_them() -> None:
    s = summarize(M.custom_op())
    assert s.inputs[0].shape == ("batch", 4)
    assert s.dynamic_dims == {"batch": ["x[0]"]}
    assert s.dim_users["batch"] == ["relu", "plugin"]
    assert s.domains == ["ai.onnx", "com.example"]
    assert s.custom_ops == {"com.example.MyPlugin": 1}
    assert s.opsets == {"ai.onnx": 17, "com.example": 1}


def test_parameters_count_constant_nodes_too() -> None:
    s = summarize(M.flatten(1, through_concat=True))
    assert s.parameters == 48 * 5 + 1 + 1 + 1  # weights, the scalar 2, and the two shape Constants
    assert s.parameter_bytes == 48 * 5 * 4 + 4 + 8 + 8
    assert s.dynamic_dims == {} and s.custom_ops == {}
    assert s.op_counts["Constant"] == 2


class _Describing(OnnxRuntimeBackend):
    name = "onnxruntime-describing"

    def describe(self, data: bytes) -> dict[str, object]:
        return {"nodes": len(onnx.load_from_string(data).graph.node)}


def test_engine_inspect_prints_what_the_backend_describes(tmp_path: Path) -> None:
    import trtforge

    if _Describing.name not in _REGISTRY:
        register_backend(_Describing.name, _Describing)
    onnx.save(M.foldable(), tmp_path / "m.onnx")
    trtforge.build(tmp_path / "m.onnx", tmp_path / "m.engine", trtforge.BuildConfig(backend=_Describing.name))
    details = describe_engine(tmp_path / "m.engine")
    assert details["manifest"]["backend"] == _Describing.name  # type: ignore[index]
    assert details["backend"] == {"nodes": 3}
    trtforge.build(tmp_path / "m.onnx", tmp_path / "plain.engine", trtforge.BuildConfig())
    assert "backend" not in describe_engine(tmp_path / "plain.engine")
