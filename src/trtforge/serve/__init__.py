"""Serving: a trtforge engine on NVIDIA Triton Inference Server.

:func:`export_triton` writes a Triton model repository (``config.pbtxt`` checked with Triton's own
model-config protobuf); :class:`TritonServer` serves engines on a real ``tritonserver`` through
PyTriton; :func:`bench_server` load-tests a served model.  tritonclient and PyTriton come with the
``trtforge[serve]`` extra and are imported only when used.
"""

from __future__ import annotations

from trtforge.serve.export import export_triton
from trtforge.serve.triton_config import TritonModel, plan_model

__all__ = ["TritonModel", "export_triton", "plan_model"]
