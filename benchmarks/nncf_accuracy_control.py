"""NNCF's accuracy-controlled INT8 of an ONNX model on OpenVINO: the peer of trtforge's
``--max-accuracy-drop`` (run in NNCF's own venv; NNCF is not a trtforge dependency).

    /work/cache/venvs/nncf/bin/python benchmarks/nncf_accuracy_control.py MODEL.onnx CALIB.npz VAL.npz MAX_DROP OUT.xml

``nncf.quantize_with_accuracy_control`` with its defaults: calibrate on CALIB.npz (one sample per
query), then, while the validation metric drops more than MAX_DROP (absolute) below FP32's, revert
the most sensitive quantized layers to float. The metric: top-1 agreement with the FP32 model on
VAL.npz (first output), as a fraction, the same answer trtforge's top1 metric counts in points.
Prints one JSON line: seconds, NNCF and OpenVINO versions, layers reverted.
"""

from __future__ import annotations

import json
import sys
import time

import nncf
import numpy as np
import openvino as ov


def main(model_path: str, calib_path: str, val_path: str, max_drop: str, out_path: str) -> None:
    core = ov.Core()
    model = core.read_model(model_path)
    name = model.inputs[0].get_any_name()
    calib = np.load(calib_path)[name].astype(np.float32)
    val = np.load(val_path)[name].astype(np.float32)
    exact = {"INFERENCE_PRECISION_HINT": "f32"}  # not the CPU's bf16 default: FP32 is the reference
    fp32 = core.compile_model(model, "CPU", exact)
    reference = np.stack([fp32(s[None])[0][0] for s in val]).argmax(-1)

    def agreement(compiled: ov.CompiledModel, samples: object) -> float:
        answers = np.stack([compiled(s)[0][0] for s in samples]).argmax(-1)  # type: ignore[attr-defined]
        return float(np.mean(answers == reference))

    started = time.perf_counter()
    quantized = nncf.quantize_with_accuracy_control(
        model,
        nncf.Dataset([s[None] for s in calib]),
        nncf.Dataset([s[None] for s in val]),
        validation_fn=agreement,
        max_drop=float(max_drop),
        drop_type=nncf.DropType.ABSOLUTE,
        subset_size=len(calib),
    )
    seconds = time.perf_counter() - started
    ov.save_model(quantized, out_path, compress_to_fp16=False)
    final = agreement(core.compile_model(quantized, "CPU", exact), [s[None] for s in val])
    fq = sum(1 for op in quantized.get_ops() if op.get_type_name() == "FakeQuantize")
    print(
        json.dumps(
            {
                "seconds": round(seconds, 2),
                "nncf": nncf.__version__,
                "openvino": ov.__version__,
                "agreement_on_val": final,
                "fake_quantize_ops": fq,
                "out": out_path,
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:6])
