"""What a model holds: IO, opset, op counts, parameters."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import onnx

from trtforge.config import TensorSpec
from trtforge.graph.model import graph_inputs, graph_outputs


@dataclass(frozen=True)
class ModelSummary:
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    opsets: dict[str, int]
    op_counts: dict[str, int]
    parameters: int
    parameter_bytes: int
    producer: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "opsets": self.opsets,
            "op_counts": self.op_counts,
            "parameters": self.parameters,
            "parameter_bytes": self.parameter_bytes,
            "producer": self.producer,
        }


def summarize(model: onnx.ModelProto) -> ModelSummary:
    counts = Counter(
        node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        for node in model.graph.node
    )
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    param_bytes = sum(
        int(np.prod(t.dims)) * onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
        for t in model.graph.initializer
    )
    return ModelSummary(
        inputs=graph_inputs(model),
        outputs=graph_outputs(model),
        opsets={(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
        op_counts=dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        parameters=params,
        parameter_bytes=param_bytes,
        producer=f"{model.producer_name} {model.producer_version}".strip(),
    )
