"""The ``model.py`` of a Triton Python-backend model that runs a trtforge engine.

It needs trtforge (and the engine's backend) importable by Triton's Python stub; the batching and
request checks are :class:`trtforge.serve.batching.EngineModel`'s, the same as ``trtforge serve``.
"""

MODEL_PY = '''"""Triton Python-backend model written by `trtforge export triton --backend python`.

Serves model.engine (checked against model.engine.json) with trtforge's runner; needs trtforge
installed where Triton's Python stub runs (pip install trtforge).
"""

import json
import os

import triton_python_backend_utils as pb_utils

from trtforge.serve.batching import load_model


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        folder = os.path.join(args["model_repository"], args["model_version"])
        delay = config.get("dynamic_batching", {}).get("max_queue_delay_microseconds", 0)
        self.model = load_model(os.path.join(folder, "model.engine"), config["name"],
                                int(config["max_batch_size"]), int(delay))[0]
        self.inputs = [s.name for s in self.model.model.inputs]

    def execute(self, requests):
        arrays = [{n: pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.inputs} for r in requests]
        try:
            results = self.model.infer(arrays)
        except Exception as exc:  # a bad request fails the batch it came in, the model keeps serving
            error = pb_utils.TritonError(str(exc))
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(k, v) for k, v in out.items()])
                for out in results]
'''
