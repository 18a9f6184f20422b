"""Small ONNX models built in code for tests/gpu, and the CPU reference they are checked against."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def conv_net(batch: int | str = 2, seed: int = 0) -> onnx.ModelProto:
    """x[B,3,16,16] -> Conv 3x3 (8) -> Relu -> Conv 1x1 (16) -> GlobalAveragePool -> Flatten -> Gemm (10)."""
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(a.astype(np.float32), n)
        for n, a in [
            ("w1", rng.standard_normal((8, 3, 3, 3)) * 0.3),
            ("b1", rng.standard_normal(8) * 0.1),
            ("w2", rng.standard_normal((16, 8, 1, 1)) * 0.3),
            ("b2", rng.standard_normal(16) * 0.1),
            ("wf", rng.standard_normal((16, 10)) * 0.3),
            ("bf", rng.standard_normal(10) * 0.1),
        ]
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2"),
        helper.make_node("GlobalAveragePool", ["c2"], ["p"], name="pool"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "convnet",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def cpu_reference(model_path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]
