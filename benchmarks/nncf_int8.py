"""OpenVINO + NNCF INT8 of an ONNX model, the peer for benchmarks/cpu_peers.py (run in NNCF's own venv).

    /work/cache/venvs/nncf/bin/python benchmarks/nncf_int8.py MODEL_B1.onnx CALIB.npy OUT.xml

Post-training quantization with NNCF's defaults (``nncf.quantize``) on the same calibration arrays
trtforge uses, one sample per batch-1 query. NNCF is not a trtforge dependency.
"""

from __future__ import annotations

import sys

import nncf
import numpy as np
import openvino as ov


def main(model_path: str, calib_path: str, out_path: str) -> None:
    model = ov.Core().read_model(model_path)
    samples = np.load(calib_path).astype(np.float32)
    dataset = nncf.Dataset([s[None] for s in samples])
    quantized = nncf.quantize(model, dataset, subset_size=len(samples))
    ov.save_model(quantized, out_path, compress_to_fp16=False)
    print(f"wrote {out_path} (NNCF {nncf.__version__}, {len(samples)} calibration samples)")


if __name__ == "__main__":
    main(*sys.argv[1:4])
