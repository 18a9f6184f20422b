"""An output that is an input (same path, a symlink, a hard link, an engine's manifest) is refused."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import pytest

from trtforge import cli
from trtforge._files import atomic_path, check_folder_output, check_outputs, write_text_atomic
from trtforge.errors import TrtforgeError


def test_same_path_symlink_and_hard_link_are_refused(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    (tmp_path / "link.onnx").symlink_to(model)
    os.link(model, tmp_path / "hard.onnx")
    for out in ("m.onnx", "link.onnx", "hard.onnx", "./m.onnx"):
        with pytest.raises(TrtforgeError, match="would destroy"):
            check_outputs([("-o", tmp_path / out)], [model])
    check_outputs([("-o", tmp_path / "new.onnx")], [model])


def test_an_engines_manifest_and_two_flags_to_one_file_are_refused(tmp_path: Path) -> None:
    engine = tmp_path / "m.engine"
    with pytest.raises(TrtforgeError, match="manifest"):
        check_outputs([("--json", tmp_path / "m.engine.json")], [engine])
    with pytest.raises(TrtforgeError, match="another flag"):
        check_outputs([("--json", tmp_path / "a.json"), ("--export-times", tmp_path / "a.json")], [engine])


def test_an_output_folder_holding_an_input_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TrtforgeError, match="holds the input"):
        check_folder_output("-o", tmp_path, [tmp_path / "sub" / "m.onnx"])
    check_folder_output("-o", tmp_path / "out", [tmp_path / "m.onnx"])


def test_build_onto_its_own_model_leaves_it_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from onnx_models import flatten

    model = tmp_path / "m.onnx"
    onnx.save(flatten(1), str(model))
    before = model.read_bytes()
    assert cli.main(["build", str(model), "-o", str(model)]) == 2
    assert "would destroy" in capsys.readouterr().err
    assert model.read_bytes() == before and not (tmp_path / "m.onnx.json").exists()


def test_outputs_respect_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640


def test_a_folder_in_the_way_is_one_user_error(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(TrtforgeError, match="is a folder"), atomic_path(tmp_path / "out"):
        pass


def test_a_full_disk_is_one_line_and_nothing_partial(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes a write fail (EFBIG) as a full disk (ENOSPC) would: same path through the code."""
    import resource
    import subprocess
    import sys

    from onnx_models import flatten

    from tests.conftest import ROOT

    model = tmp_path / "m.onnx"
    onnx.save(flatten(1), str(model))
    out = tmp_path / "out" / "m.engine"
    out.parent.mkdir()

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (256, resource.RLIM_INFINITY))

    # Without coverage's subprocess hook: its data file, written at exit, would hit the same size limit.
    plain = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE")}
    env = {**plain, "PYTHONPATH": str(ROOT / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "trtforge", "build", str(model), "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=limit,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write" in lines[0] and "Traceback" not in proc.stderr
    assert list(out.parent.iterdir()) == []
