"""The bad-input catalogue: every class of hostile input, on every command, ends the same way.

Each row is (case, command, expected exit code, words the one line must hold).  Every case
runs the CLI in-process in a fresh copy of one prepared folder, and asserts: the exit code,
exactly one line on stderr, no traceback, and no file created, changed or removed (the folder
is hashed before and after).  ``{d}`` in a command is that folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

import trtforge
from trtforge.cli import main
from trtforge.config import BuildConfig

LONG = "9" * 5000

CASES: list[tuple[str, str, int, str]] = [
    # 1. numbers: one strict parser for every flag
    ("calib-seed negative", "build {d}/m.onnx -o {d}/o.engine --calib-seed -1", 2, "--calib-seed"),
    ("workspace nan", "build {d}/m.onnx -o {d}/o.engine --workspace nan", 2, "--workspace"),
    ("atol nan", "compare {d}/m.engine {d}/m.onnx --random 2 --atol nan", 2, "--atol"),
    ("rtol inf", "compare {d}/m.engine {d}/m.onnx --random 2 --rtol inf", 2, "--rtol"),
    ("duration nan", "bench {d}/m.engine --duration nan", 2, "--duration"),
    ("warmup 1e400", "bench {d}/m.engine --warmup 1e400", 2, "--warmup"),
    ("limit 0", "run {d}/m.engine --inputs {d}/good.npz --limit 0", 2, "--limit"),
    ("random -1", "run {d}/m.engine --random -1", 2, "--random"),
    ("bench batch 10**12", "bench {d}/m.engine --batch 1000000000000", 2, "--batch"),
    ("iterations unicode digit", "bench {d}/m.engine --iterations ５", 2, "--iterations"),
    ("5000-digit batch", f"reshape {{d}}/m.onnx -o {{d}}/o.onnx --batch {LONG}", 2, "batch"),
    ("batch past int64", "reshape {d}/m.onnx -o {d}/o.onnx --batch 9223372036854775808", 2, "batch"),
    ("5000-digit shape", f"reshape {{d}}/m.onnx -o {{d}}/o.onnx --shapes x:{LONG}x3x4x4", 2, "dimension"),
    ("opset huge", "convert {d}/net.py:make -o {d}/o.onnx --opset 99999999999999999999", 2, "--opset"),
    ("val-num 0", "deploy {d}/m.onnx -o {d}/dep --val-num 0", 2, "--val-num"),
    (
        "sensitivity val-num 0",
        "sensitivity {d}/m.onnx --calib-data {d}/good.npz --val-data {d}/good.npz --val-num 0",
        2,
        "--val-num",
    ),
    (
        "sensitivity metric unknown",
        "sensitivity {d}/m.onnx --calib-data {d}/good.npz --val-data {d}/good.npz --metric nope",
        2,
        "--metric",
    ),
    (
        "sensitivity val-data missing",
        "sensitivity {d}/m.onnx --calib-data {d}/good.npz --val-data {d}/none.npz",
        2,
        "none.npz",
    ),
    (
        "sensitivity fp32",
        "sensitivity {d}/m.onnx --precision fp32 --val-data {d}/good.npz",
        2,
        "nothing to rank",
    ),
    (
        "build budget at fp32",
        "build {d}/m.onnx -o {d}/o.engine --max-accuracy-drop 1 --val-data {d}/good.npz",
        2,
        "--max-accuracy-drop",
    ),
    (
        "build fp16 budget with exclusions",
        "build {d}/m.onnx -o {d}/o.engine --precision fp16 --max-accuracy-drop 1 --val-data {d}/good.npz "
        "--exclude-op-types Relu",
        2,
        "--exclude-op-types",
    ),
    (
        "build budget without val-data",
        "build {d}/m.onnx -o {d}/o.engine --precision int8 --calib-data {d}/good.npz --max-accuracy-drop 1",
        2,
        "--val-data",
    ),
    (
        "preprocess resize superscript",
        "build {d}/m.onnx -o {d}/o.engine --precision int8 --calib-data {d}/img --preprocess resize=²x2",
        2,
        "resize",
    ),
    (
        "preprocess scale 1e400",
        "build {d}/m.onnx -o {d}/o.engine --precision int8 --calib-data {d}/img --preprocess scale=1e400",
        2,
        "scale",
    ),
    ("exec memPoolSize inf", "exec --onnx={d}/m.onnx --memPoolSize=workspace:inf", 2, "memPoolSize"),
    ("exec duration nan", "exec --onnx={d}/m.onnx --duration=nan", 2, "--duration"),
    ("exec iterations 0", "exec --onnx={d}/m.onnx --iterations=0", 2, "--iterations"),
    ("export max-batch -1", "export triton {d}/m.engine -o {d}/repo --max-batch -1", 2, "--max-batch"),
    ("export preferred-batch 0", "export triton {d}/m.engine -o {d}/repo --preferred-batch 0", 2, "--preferred-batch"),
    ("export kind tpu", "export triton {d}/m.engine -o {d}/repo --kind tpu", 2, "instance kind"),
    ("serve port 70000", "serve {d}/m.engine --http-port 70000", 2, "--http-port"),
    ("serve one port twice", "serve {d}/m.engine --http-port 18414 --grpc-port 18414", 2, "must differ"),
    ("serve a missing engine", "serve {d}/nope.engine", 2, "engine not found"),
    ("bench --server concurrency 0", "bench --server localhost:9 --model m --concurrency 1,0", 2, "--concurrency"),
    # 2. an output that is an input
    ("build onto its model", "build {d}/m.onnx -o {d}/m.onnx", 2, "would destroy"),
    ("build onto a hard link of its model", "build {d}/hard.onnx -o {d}/m.onnx", 2, "would destroy"),
    ("build onto a symlink of its model", "build {d}/m.onnx -o {d}/link.onnx", 2, "would destroy"),
    ("run -o the engine", "run {d}/m.engine --random 2 -o {d}/m.engine", 2, "would destroy"),
    ("bench --json the manifest", "bench {d}/m.engine --json {d}/m.engine.json", 2, "manifest"),
    ("bench two flags one file", "bench {d}/m.engine --json {d}/a.json --export-times {d}/a.json", 2, "another flag"),
    ("bench --plot the engine", "bench {d}/m.engine --plot {d}/m.engine", 2, "would destroy"),
    ("compare --json the model", "compare {d}/m.engine {d}/m.onnx --random 2 --json {d}/m.onnx", 2, "would destroy"),
    ("reshape onto its model", "reshape {d}/m.onnx -o {d}/m.onnx --batch 1", 2, "would destroy"),
    ("convert onto its module", "convert {d}/net.py:make -o {d}/net.py", 2, "would destroy"),
    (
        "calib-cache onto the model",
        "build {d}/m.onnx -o {d}/o.engine --precision int8 --calib-data {d}/good.npz --calib-cache {d}/m.onnx",
        2,
        "would destroy",
    ),
    ("exec saveEngine the model", "exec --onnx={d}/m.onnx --saveEngine={d}/m.onnx", 2, "would destroy"),
    ("exec exportTimes the engine", "exec --loadEngine={d}/m.engine --exportTimes={d}/m.engine", 2, "would destroy"),
    ("deploy --force over its source", "deploy {d}/m.onnx -o {d} --force", 2, "holds the input"),
    # 3. write failures
    ("build -o a folder", "build {d}/m.onnx -o {d}/sub", 2, "is a folder"),
    ("run -o a folder", "run {d}/m.engine --random 2 -o {d}/sub", 2, "is a folder"),
    ("build under a file", "build {d}/m.onnx -o {d}/good.npz/o.engine", 2, "cannot create output folder"),
    # 4. calibration cache scales and sidecars
    ("cache scale inf", "build {d}/m.onnx -o {d}/o.engine --precision int8 --calib-cache {d}/inf.cache", 2, "line 2"),
    ("cache scale nan", "build {d}/m.onnx -o {d}/o.engine --precision int8 --calib-cache {d}/nan.cache", 2, "line 2"),
    (
        "cache scale negative",
        "build {d}/m.onnx -o {d}/o.engine --precision int8 --calib-cache {d}/neg.cache",
        2,
        "line 2",
    ),
    (
        "sidecar wrong type",
        "build {d}/m.onnx -o {d}/o.engine --precision int8 --calib-cache {d}/badside.cache",
        2,
        "'samples'",
    ),
    # 5. manifests read against their schema
    ("manifest string shape", "inspect {d}/strshape.engine", 2, "inputs[0].shape"),
    ("manifest binary", "run {d}/binary.engine --random 1", 2, "UTF-8"),
    ("manifest list", "bench {d}/list.engine", 2, "JSON object"),
    ("manifest wrong-typed field", "run {d}/badtype.engine --random 1", 2, "'backend'"),
    ("junk engine with matching sha", "run {d}/junk.engine --random 1", 2, "cannot load this engine"),
    # 6. feeds checked against the model
    ("int32 into float", "run {d}/m.engine --inputs {d}/i32.npz", 2, "floats into ints"),
    ("float64 out of float32 range", "run {d}/m.engine --inputs {d}/f64big.npz", 2, "out of range"),
    ("nan input", "run {d}/m.engine --inputs {d}/nan.npz", 2, "NaN"),
    ("wrong rank", "compare {d}/m.engine {d}/m.onnx --inputs {d}/rank.npz", 2, "dimensions"),
    ("wrong channels", "run {d}/m.engine --inputs {d}/chan.npz", 2, "dimension 1 differs"),
    ("empty npz", "run {d}/m.engine --inputs {d}/empty.npz", 2, "no array"),
    ("zero samples", "run {d}/m.engine --inputs {d}/zero.npz", 2, "no samples"),
    ("model with no inputs", "run {d}/noin.onnx --random 1", 2, "no inputs"),
    ("calibration nan", "build {d}/m.onnx -o {d}/o.engine --precision int8 --calib-data {d}/nan.npz", 2, "NaN"),
    (
        "calib-loader ragged",
        "build {d}/m.onnx -o {d}/o.engine --precision int8 --calib-loader {d}/ragged.py",
        2,
        "ragged",
    ),
    (
        "calib-loader strings",
        "build {d}/m.onnx -o {d}/o.engine --precision int8 --calib-loader {d}/strings.py",
        2,
        "not numbers",
    ),
    (
        "calib-loader wrong shape",
        "build {d}/m.onnx -o {d}/o.engine --precision int8 --calib-loader {d}/shape.py",
        2,
        "dimension",
    ),
    (
        "preprocess gray into rgb",
        "build {d}/m.onnx -o {d}/o.engine --precision int8 --calib-data {d}/img "
        "--preprocess color=gray,resize=4x4,layout=nchw",
        2,
        "1-channel",
    ),
    ("exec loadInputs nan", "exec --loadEngine={d}/m.engine --loadInputs=x:{d}/nan.npy", 2, "NaN"),
    # 7. shape profiles on ONNX Runtime
    (
        "exec profile unknown input",
        "exec --onnx={d}/dyn.onnx --minShapes=nope:1x4 --optShapes=nope:1x4 --maxShapes=nope:1x4",
        2,
        "nope",
    ),
    ("exec profile rank mismatch", "exec --onnx={d}/dyn.onnx --minShapes=x:1 --optShapes=x:1 --maxShapes=x:1", 2, "x"),
    # 8. --custom-objects with a source that is not Keras
    (
        "custom objects on torch",
        "convert {d}/net.py:make -o {d}/o.onnx --custom-objects {d}/co.py",
        2,
        "--custom-objects",
    ),
    # 9. commands and flags added after the catalogue was first written (issue 14, second pass)
    ("build allow-inaccurate on fp32", "build {d}/m.onnx -o {d}/o.engine --allow-inaccurate", 2, "--allow-inaccurate"),
    (
        "build allow-inaccurate on fp16",
        "build {d}/m.onnx -o {d}/o.engine --precision fp16 --allow-inaccurate",
        2,
        "does nothing for fp16",
    ),
    ("build backend unknown", "build {d}/m.onnx -o {d}/o.engine --backend nope", 2, "unknown backend"),
    ("build openvino on cuda", "build {d}/m.onnx -o {d}/o.engine --backend openvino --device cuda", 2, "CPU only"),
    ("build auto on a tpu", "build {d}/m.onnx -o {d}/o.engine --backend auto --device tpu", 2, "'tpu'"),
    (
        "build budget val-data nan",
        "build {d}/m.onnx -o {d}/o.engine --precision int8 --calib-data {d}/good.npz --max-accuracy-drop 1 "
        "--val-data {d}/nan.npz",
        2,
        "NaN",
    ),
    (
        "build budget val-data wrong channels",
        "build {d}/m.onnx -o {d}/o.engine --precision int8 --calib-data {d}/good.npz --max-accuracy-drop 1 "
        "--val-data {d}/chan.npz",
        2,
        "dimension 1 differs",
    ),
    (
        "build budget val-data a module",
        "build {d}/m.onnx -o {d}/o.engine --precision int8 --calib-data {d}/good.npz --max-accuracy-drop 1 "
        "--val-data {d}/net.py",
        2,
        "numpy data",
    ),
    (
        "build budget metric unknown",
        "build {d}/m.onnx -o {d}/o.engine --precision int8 --calib-data {d}/good.npz --max-accuracy-drop 1 "
        "--val-data {d}/good.npz --metric nope",
        2,
        "--metric",
    ),
    (
        "build budget metric function missing",
        "build {d}/m.onnx -o {d}/o.engine --precision int8 --calib-data {d}/good.npz --max-accuracy-drop 1 "
        "--val-data {d}/good.npz --metric {d}/co.py:nofn",
        2,
        "no function",
    ),
    (
        "deploy val-data missing",
        "deploy {d}/m.onnx -o {d}/dep --precision fp32 --val-data {d}/none.npz",
        2,
        "not found",
    ),
    ("deploy val-data a module", "deploy {d}/m.onnx -o {d}/dep --precision fp32 --val-data {d}/net.py", 2, ".npz"),
    ("deploy batch 0", "deploy {d}/m.onnx -o {d}/dep --val-data {d}/good.npz --batch 0", 2, "batch"),
    ("deploy backend unknown", "deploy {d}/m.onnx -o {d}/dep --val-data {d}/good.npz --backend nope", 2, "nope"),
    ("deploy --triton without --select", "deploy {d}/m.onnx -o {d}/dep --triton {d}/repo", 2, "--select fastest"),
    ("deploy --serve without --select", "deploy {d}/m.onnx -o {d}/dep --serve", 2, "--select fastest"),
    ("deploy select slowest", "deploy {d}/m.onnx -o {d}/dep --select slowest", 2, "--select"),
    ("deploy metric unknown", "deploy {d}/m.onnx -o {d}/dep --metric nope", 2, "--metric"),
    ("deploy precision twice", "deploy {d}/m.onnx -o {d}/dep --precision fp32,fp32", 2, "twice"),
    ("deploy precision empty", "deploy {d}/m.onnx -o {d}/dep --precision ,", 2, "empty"),
    ("deploy int8 without calibration", "deploy {d}/m.onnx -o {d}/dep --precision int8", 2, "--calib-data"),
    ("deploy -o an input file", "deploy {d}/m.onnx -o {d}/good.npz --val-data {d}/good.npz", 2, "holds the input"),
    ("deploy an engine as a source", "deploy {d}/m.engine -o {d}/dep --val-data {d}/good.npz", 2, "what kind of model"),
    (
        "sensitivity --json onto its model",
        "sensitivity {d}/m.onnx --calib-data {d}/good.npz --val-data {d}/good.npz --json {d}/m.onnx",
        2,
        "would destroy",
    ),
    (
        "sensitivity --plot onto its data",
        "sensitivity {d}/m.onnx --calib-data {d}/good.npz --val-data {d}/good.npz --plot {d}/good.npz",
        2,
        "would destroy",
    ),
    (
        "sensitivity --json a folder",
        "sensitivity {d}/m.onnx --calib-data {d}/good.npz --val-data {d}/good.npz --json {d}/sub",
        2,
        "is a folder",
    ),
    (
        "sensitivity backend unknown",
        "sensitivity {d}/m.onnx --calib-data {d}/good.npz --val-data {d}/good.npz --backend nope",
        2,
        "unknown backend",
    ),
    (
        "sensitivity calibration nan",
        "sensitivity {d}/m.onnx --calib-data {d}/nan.npz --val-data {d}/good.npz",
        2,
        "NaN",
    ),
    (
        "sensitivity val-data wrong channels",
        "sensitivity {d}/m.onnx --calib-data {d}/good.npz --val-data {d}/chan.npz",
        2,
        "dimension 1 differs",
    ),
    ("sensitivity without calibration", "sensitivity {d}/m.onnx --val-data {d}/good.npz", 2, "calibration data"),
    ("export backend unknown", "export triton {d}/m.engine -o {d}/repo --backend nope", 2, "Triton backend"),
    ("export name with a slash", "export triton {d}/m.engine -o {d}/repo --name a/b", 2, "bad model name"),
    ("export name ..", "export triton {d}/m.engine -o {d}/repo --name ..", 2, "holds the input"),
    (
        "export auto batches of a fixed batch",
        "export triton {d}/m.engine -o {d}/repo --preferred-batch auto",
        2,
        "fixed",
    ),
    ("export max-batch into a fixed batch", "export triton {d}/m.engine -o {d}/repo --max-batch 4", 2, "fixed batch"),
    ("export -o a file", "export triton {d}/m.engine -o {d}/good.npz", 2, "cannot create model repository"),
    ("export an ONNX without manifest", "export triton {d}/m.onnx -o {d}/repo", 2, "no manifest"),
    ("export a folder without engine", "export triton {d}/sub -o {d}/repo", 2, "without model.engine"),
    ("export target unknown", "export onnx {d}/m.engine -o {d}/repo", 2, "invalid choice"),
    ("serve an ONNX without manifest", "serve {d}/m.onnx", 2, "no manifest"),
    ("serve one engine twice", "serve {d}/m.engine {d}/m.engine", 2, "two engines"),
    ("bench --server port not a number", "bench --server nohost:abc --model m", 2, "port"),
    ("bench --server port 0", "bench --server localhost:0 --model m", 2, "port"),
    ("bench --server with a scheme", "bench --server http://localhost:8000 --model m", 2, "HOST:PORT"),
    ("bench --server without a port", "bench --server localhost --model m", 2, "HOST:PORT"),
    ("bench --server without --model", "bench --server localhost:9", 2, "--model"),
    ("bench --server and an engine", "bench {d}/m.engine --server localhost:9 --model m", 2, "no engine"),
    ("bench --server protocol unknown", "bench --server localhost:9 --model m --protocol nope", 2, "--protocol"),
    ("bench --server concurrency empty", "bench --server localhost:9 --model m --concurrency ,", 2, "--concurrency"),
]


def _hash_tree(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            out[key] = "-> " + os.readlink(path)
        elif path.is_file():
            out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[key] = "dir"
    return out


def _engine_variant(folder: Path, name: str, manifest: object, data: bytes | None = None) -> None:
    shutil.copy(folder / "m.engine", folder / name)
    if data is not None:
        (folder / name).write_bytes(data)
    raw = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
    (folder / f"{name}.json").write_bytes(raw)


def _caches(folder: Path, model: onnx.ModelProto) -> None:
    sha = hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()
    facts = {
        "format": "trtforge-calibration-cache/1",
        "model_sha256": sha,
        "method": "entropy",
        "preprocess": None,
        "samples": 4,
        "data": None,
        "ranges": {},
    }
    for name, scale in (("inf", "7f800000"), ("nan", "7fc00000"), ("neg", "bf800000"), ("badside", "3c010a14")):
        (folder / f"{name}.cache").write_text(f"TRT-100300-EntropyCalibration2\nx: {scale}\n")
        side = dict(facts, samples="four") if name == "badside" else facts
        (folder / f"{name}.cache.json").write_text(json.dumps(side))


_LOADERS = {
    "ragged": "def batches():\n    yield {'x': [[1.0, 2.0], [3.0]]}\n",
    "strings": "import numpy as np\ndef batches():\n    yield {'x': np.array([['a'] * 48]).reshape(1, 3, 4, 4)}\n",
    "shape": "import numpy as np\ndef batches():\n    yield {'x': np.zeros((2, 3, 5, 5), np.float32)}\n",
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from onnx_models import dynamic, flatten
    from PIL import Image

    d = tmp_path_factory.mktemp("catalogue")
    model = flatten(1)
    onnx.save(model, str(d / "m.onnx"))
    onnx.save(dynamic(), str(d / "dyn.onnx"))
    out = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    const = helper.make_node("Constant", [], ["y"], value=onnx.numpy_helper.from_array(np.ones(1, np.float32)))
    onnx.save(
        helper.make_model(helper.make_graph([const], "g", [], [out]), opset_imports=[helper.make_opsetid("", 17)]),
        str(d / "noin.onnx"),
    )
    os.link(d / "m.onnx", d / "hard.onnx")
    (d / "link.onnx").symlink_to(d / "m.onnx")
    trtforge.build(d / "m.onnx", d / "m.engine", BuildConfig(backend="onnxruntime"))
    manifest = json.loads((d / "m.engine.json").read_text())
    strshape = json.loads(json.dumps(manifest))
    strshape["inputs"][0]["shape"] = "1x3x4x4"
    _engine_variant(d, "strshape.engine", strshape)
    _engine_variant(d, "binary.engine", b"\xff\xfe\x00binary")
    _engine_variant(d, "list.engine", [manifest])
    _engine_variant(d, "badtype.engine", dict(manifest, backend=7))
    junk = b"not an onnx model at all" * 10
    _engine_variant(d, "junk.engine", dict(manifest, engine_sha256=hashlib.sha256(junk).hexdigest()), junk)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32)
    np.savez(d / "good.npz", x=x)
    np.savez(d / "i32.npz", x=x.astype(np.int32))
    np.savez(d / "f64big.npz", x=np.full((2, 3, 4, 4), 1e39))
    np.savez(d / "nan.npz", x=np.where(x > 1, np.nan, x))
    np.save(d / "nan.npy", np.full((1, 3, 4, 4), np.nan, np.float32))
    np.savez(d / "rank.npz", x=x[0])
    np.savez(d / "chan.npz", x=np.zeros((2, 1, 4, 4), np.float32))
    np.savez(d / "empty.npz")
    np.savez(d / "zero.npz", x=np.zeros((0, 3, 4, 4), np.float32))
    _caches(d, model)
    for name, code in _LOADERS.items():
        (d / f"{name}.py").write_text(code)
    (d / "net.py").write_text("def make():\n    raise SystemExit('must not run')\n")
    (d / "co.py").write_text("X = 1\n")
    (d / "img").mkdir()
    for i in range(2):
        Image.fromarray(np.full((6, 6, 3), 40 * i, np.uint8)).save(d / "img" / f"{i}.png")
    (d / "sub").mkdir()
    return d


@pytest.mark.parametrize("case, command, code, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input(
    prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, command: str, code: int, words: str
) -> None:
    folder = tmp_path / "d"
    shutil.copytree(prepared, folder, symlinks=True)
    (folder / "link.onnx").unlink()
    (folder / "link.onnx").symlink_to(folder / "m.onnx")
    (folder / "hard.onnx").unlink()
    os.link(folder / "m.onnx", folder / "hard.onnx")
    before = _hash_tree(folder)
    capsys.readouterr()
    assert main(command.format(d=folder).split()) == code
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("trtforge: error: ") and words in lines[0], err
    assert _hash_tree(folder) == before, f"{case}: the folder changed"


# Errors deploy can find only once its work has begun (the data against the converted model, the
# device at the first build): its progress lines come first, then the one error line.
CASES_AFTER_WORK: list[tuple[str, str, int, str]] = [
    ("deploy val-data nan", "deploy {d}/m.onnx -o {d}/dep --precision fp32 --val-data {d}/nan.npz", 2, "NaN"),
    (
        "deploy val-data wrong channels",
        "deploy {d}/m.onnx -o {d}/dep --precision fp32 --val-data {d}/chan.npz",
        2,
        "dimension 1 differs",
    ),
    (
        "deploy openvino on cuda",
        "deploy {d}/m.onnx -o {d}/dep --precision fp32 --val-data {d}/good.npz --backend openvino --device cuda",
        2,
        "CPU only",
    ),
    (
        "deploy val images without preprocess",
        "deploy {d}/m.onnx -o {d}/dep --precision fp32 --val-data {d}/img",
        2,
        "--preprocess",
    ),
]


@pytest.mark.parametrize("case, command, code, words", CASES_AFTER_WORK, ids=[c[0] for c in CASES_AFTER_WORK])
def test_bad_input_found_after_work_began(
    prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, command: str, code: int, words: str
) -> None:
    folder = tmp_path / "d"
    shutil.copytree(prepared, folder, symlinks=True)
    before = _hash_tree(folder)
    capsys.readouterr()
    assert main(command.format(d=folder).split()) == code
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err and lines[-1].startswith("trtforge: error: ") and words in lines[-1], err
    assert all(ln.startswith(("[deploy] ", "trtforge: warning: ")) for ln in lines[:-1]), err
    assert _hash_tree(folder) == before, f"{case}: the folder changed"


SUBPROCESS = ["build onto its model", "run -o the engine", "manifest binary", "nan input", "exec memPoolSize inf"]


@pytest.mark.parametrize("case", SUBPROCESS)
def test_bad_input_in_a_fresh_process(prepared: Path, tmp_path: Path, case: str) -> None:
    """A few rows again as a user runs them: ``python -m trtforge`` in its own process."""
    from tests.conftest import run_cli_subprocess

    _, command, code, words = next(c for c in CASES if c[0] == case)
    folder = tmp_path / "d"
    shutil.copytree(prepared, folder, symlinks=True)
    before = _hash_tree(folder)
    proc = run_cli_subprocess(*command.format(d=folder).split())
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == code and len(lines) == 1 and words in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and _hash_tree(folder) == before


def test_the_catalogue_covers_every_command() -> None:
    from trtforge.cli import SUBCOMMANDS

    assert set(SUBCOMMANDS) <= {c[1].split()[0] for c in CASES}


# Every numeric flag of every command, with values no flag accepts: one line naming the flag.
NUMERIC_FLAGS = {
    "build {d}/m.onnx -o {d}/o.engine": [
        "--calib-num",
        "--calib-batch-size",
        "--calib-percentile",
        "--calib-seed",
        "--workspace",
        "--opt-level",
        "--max-accuracy-drop",
        "--val-num",
    ],
    "sensitivity {d}/m.onnx --calib-data {d}/good.npz --val-data {d}/good.npz": ["--calib-num", "--val-num", "--top"],
    "bench {d}/m.engine": ["--batch", "--seed", "--warmup", "--iterations", "--duration", "--streams", "--threads"],
    "run {d}/m.engine --random 2": ["--limit", "--top-k", "--show"],
    "run {d}/m.engine": ["--random"],
    "compare {d}/m.engine {d}/m.onnx --random 2": ["--seed", "--atol", "--rtol", "--min-cosine"],
    "compare {d}/m.engine {d}/m.onnx": ["--random"],
    "convert {d}/net.py:make -o {d}/o.onnx": ["--opset", "--atol", "--rtol"],
    "deploy {d}/m.onnx -o {d}/dep": [
        "--calib-num",
        "--val-num",
        "--max-accuracy-drop",
        "--warmup",
        "--iterations",
        "--duration",
        "--serve-port",
    ],
    "export triton {d}/m.engine -o {d}/repo": ["--max-batch", "--max-queue-delay-us", "--instances"],
    "serve {d}/m.engine": [
        "--http-port",
        "--grpc-port",
        "--metrics-port",
        "--max-batch",
        "--max-queue-delay-us",
        "--instances",
    ],
    "exec --onnx={d}/m.onnx": [
        "--workspace",
        "--builderOptimizationLevel",
        "--iterations",
        "--duration",
        "--warmUp",
        "--avgRuns",
        "--streams",
    ],
}
HOSTILE_NUMBERS = ["nan", "inf", "-inf", "1e400", "²", "５", "9" * 5000, "1_000", "0x10", "", "1e", "−1"]
SWEEP = [
    (f"{command} {flag}", value)
    for command, flags in NUMERIC_FLAGS.items()
    for flag in flags
    for value in HOSTILE_NUMBERS
]


@pytest.fixture(scope="module")
def prepared_hash(prepared: Path) -> dict[str, str]:
    return _hash_tree(prepared)


@pytest.mark.parametrize("command, value", SWEEP, ids=[f"{c.split()[0]} {c.split()[-1]}={v[:6]!r}" for c, v in SWEEP])
def test_hostile_number(
    prepared: Path, prepared_hash: dict[str, str], capsys: pytest.CaptureFixture[str], command: str, value: str
) -> None:
    words = command.format(d=prepared).split()
    flag = words.pop()
    argv = [*words, f"{flag}={value}"] if words[0] == "exec" else [*words, flag, value]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err and flag in lines[0], err
    assert _hash_tree(prepared) == prepared_hash
