"""An engine and its manifest are one unit: under a kill at any step and under two writers at once."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import onnx
import pytest

import trtforge
from trtforge import engine
from trtforge.config import BuildConfig, TensorSpec
from trtforge.errors import TrtforgeError

ROOT = Path(__file__).resolve().parents[1]


def _manifest(data: bytes, tag: str) -> engine.Manifest:
    from trtforge._files import sha256_bytes

    return engine.Manifest(
        backend="onnxruntime",
        backend_version=tag,
        precision="fp32",
        device={"kind": "cpu"},
        inputs=[TensorSpec("x", "float32", (1,))],
        outputs=[],
        build={},
        source_sha256="0",
        engine_sha256=sha256_bytes(data),
    )


_CHILD = textwrap.dedent("""
    import os, signal, sys
    from trtforge import engine
    from tests.test_engine_pair import _manifest
    real, count = os.replace, [0]
    def replace(src, dst):
        real(src, dst)
        count[0] += 1
        if count[0] == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)
    os.replace = replace
    engine.save(sys.argv[1], b"new engine", _manifest(b"new engine", "new"))
""")


@pytest.mark.parametrize("kill_after", [1, 2, 3])
@pytest.mark.parametrize("first_build", [False, True])
def test_a_kill_between_any_two_renames_leaves_a_consistent_pair(
    tmp_path: Path, kill_after: int, first_build: bool
) -> None:
    out = tmp_path / "m.engine"
    if not first_build:
        engine.save(out, b"old engine", _manifest(b"old engine", "old"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(out), str(kill_after)], env=env, cwd=ROOT)
    assert proc.returncode in (-signal.SIGKILL, 0)
    if first_build and kill_after == 1:  # only the pending manifest exists: no engine yet
        assert not out.exists()
        return
    data, manifest = engine.read_verified(out)
    assert (data, manifest.backend_version) in ((b"old engine", "old"), (b"new engine", "new"))
    assert engine.kind_of(out) == "engine"
    engine.save(out, b"next", _manifest(b"next", "next"))  # and the next writer sweeps what was left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.engine", "m.engine.json"]


def _writer(out: str, tag: str, rounds: int) -> None:
    for i in range(rounds):
        data = f"{tag}{i}".encode() * 1000
        engine.save(out, data, _manifest(data, f"{tag}{i}"))


def test_two_writers_and_a_reader_never_see_a_mismatched_pair(tmp_path: Path) -> None:
    out = str(tmp_path / "m.engine")
    engine.save(out, b"start", _manifest(b"start", "start"))
    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_writer, args=(out, tag, 150)) for tag in ("a", "b")]
    for w in writers:
        w.start()
    reads = 0
    while any(w.is_alive() for w in writers) or reads < 50:
        engine.read_verified(out)  # raises on a mismatched pair
        reads += 1
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.engine", "m.engine.json"]


def _build(source: str, out: str, rounds: int) -> None:
    for _ in range(rounds):
        trtforge.build(source, out, BuildConfig(backend="onnxruntime"))


def test_two_builds_to_one_output(tmp_path: Path) -> None:
    from onnx_models import dynamic, flatten

    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(flatten(1), str(a))
    onnx.save(dynamic(), str(b))
    out = str(tmp_path / "m.engine")
    ctx = multiprocessing.get_context("fork")
    builds = [ctx.Process(target=_build, args=(str(src), out, 15)) for src in (a, b)]
    for p in builds:
        p.start()
    while any(p.is_alive() for p in builds):
        if Path(out).exists():
            _, manifest = engine.read_verified(out)
            assert manifest.source_sha256 in (engine.source_digest(a), engine.source_digest(b))
    for p in builds:
        p.join()
        assert p.exitcode == 0
    trtforge.load(out)


def test_a_changed_engine_is_still_refused(tmp_path: Path) -> None:
    out = tmp_path / "m.engine"
    engine.save(out, b"engine", _manifest(b"engine", "v"))
    out.write_bytes(b"other")
    with pytest.raises(TrtforgeError, match="does not match its manifest"):
        engine.read_verified(out)


def test_ort_profiles_are_checked_and_recorded(tmp_path: Path) -> None:
    from onnx_models import dynamic

    from trtforge.graph.ranges import ShapeRange

    model = tmp_path / "d.onnx"
    onnx.save(dynamic(), str(model))
    profile = ShapeRange.parse("x:1x4", "x:2x4", "x:8x4")
    manifest = trtforge.build(model, tmp_path / "d.engine", BuildConfig(backend="onnxruntime", profiles=(profile,)))
    assert manifest.build["profiles"] == [profile.to_json()]
    with pytest.raises(TrtforgeError, match="nope"):
        trtforge.build(
            model,
            tmp_path / "e.engine",
            BuildConfig(backend="onnxruntime", profiles=(ShapeRange.parse("nope:1x4", "nope:1x4", "nope:1x4"),)),
        )
    assert not (tmp_path / "e.engine").exists()


def test_cache_and_sidecar_are_one_unit(tmp_path: Path) -> None:
    from trtforge.precision.cache import CacheFacts, CalibrationCache, read_facts, sidecar_path, write_cache_with_facts

    cache = tmp_path / "c.cache"
    facts = CacheFacts("a" * 64, "entropy", None, 4)
    write_cache_with_facts(cache, CalibrationCache.from_ranges("entropy", {"x": (-1.0, 1.0)}), facts)
    assert read_facts(cache) == CacheFacts("a" * 64, "entropy", None, 4, None, {})
    assert sidecar_path(cache).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.cache", "c.cache.json"]
