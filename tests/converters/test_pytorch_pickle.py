"""A .pt2 is never unpickled: a member that needs a pickle load is refused, and its payload never runs."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tests.conftest import run_cli  # noqa: E402


class _Payload:
    """Unpickling this writes a marker file: the proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (self.marker, "pwned"))


def _exported(path: Path) -> Path:
    class Double(torch.nn.Module):
        def forward(self, x):  # type: ignore[no-untyped-def]
            return x * 2

    torch.export.save(torch.export.export(Double(), (torch.rand(1, 3),)), str(path))
    return path


def _poisoned(clean: Path, out: Path, marker: Path) -> Path:
    """``clean`` with its sample inputs replaced by a pickle that writes ``marker`` when loaded."""
    with zipfile.ZipFile(clean) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if "sample_inputs" in info.filename:
                data = pickle.dumps(_Payload(marker))
            dst.writestr(info, data)
    return out


def test_pickle_payload_in_pt2_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    bad = _poisoned(_exported(tmp_path / "clean.pt2"), tmp_path / "bad.pt2", marker)
    out = tmp_path / "bad.onnx"
    proc = run_cli("convert", str(bad), "-o", str(out))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "never unpickles" in lines[0] and "Traceback" not in proc.stderr
    assert not marker.exists() and not out.exists()


def test_clean_pt2_still_converts(tmp_path: Path) -> None:
    clean = _exported(tmp_path / "clean.pt2")
    out = tmp_path / "clean.onnx"
    proc = run_cli("convert", str(clean), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.exists()
