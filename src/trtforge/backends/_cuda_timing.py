"""``python -m trtforge.backends._cuda_timing MODEL OPTIONS_JSON GRAPH``: times one CUDA-provider
candidate for ``build --device cuda`` in a process of its own (see ``onnxruntime.build_cuda``)."""

import sys

from trtforge.backends.onnxruntime import _child_main

if __name__ == "__main__":
    raise SystemExit(_child_main(sys.argv[1:]))
