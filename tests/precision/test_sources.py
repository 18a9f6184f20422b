"""Calibration sources: image folders (recursive, sorted, sampled, resized), .npz, .npy, loaders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trtforge.errors import TrtforgeError
from trtforge.precision.sources import CalibrationSource, LoaderSource, Preprocess, image_files


def _image(path: Path, size: tuple[int, int], value: int = 200, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value // 2, 10)).save(path, format=fmt)
    return path


def test_folder_is_recursive_sorted_and_takes_every_format(tmp_path: Path) -> None:
    names = ["b.png", "a/z.jpg", "a/y.bmp", "c/d/x.tiff", "c/w.TIF", "e.jpeg"]
    for name in names:
        _image(tmp_path / name, (8, 8))
    (tmp_path / "notes.txt").write_text("not an image")
    found = [p.relative_to(tmp_path).as_posix() for p in image_files(tmp_path)]
    assert found == sorted(names)


def test_more_files_than_num_are_sampled_by_seed(tmp_path: Path) -> None:
    for i in range(20):
        _image(tmp_path / f"{i:02d}.png", (4, 4), value=i)
    pre = Preprocess.parse("resize=4x4")
    picks = [CalibrationSource(tmp_path, ["x"], pre, num=5, seed=s)._files for s in (0, 0, 1)]
    assert len(picks[0]) == 5 and picks[0] == picks[1] and picks[0] != picks[2]
    assert picks[0] == sorted(picks[0])


def test_unreadable_files_are_skipped_and_counted(tmp_path: Path) -> None:
    for i in range(3):
        _image(tmp_path / f"{i}.png", (4, 4))
    (tmp_path / "9.png").write_bytes(b"not a png")
    source = CalibrationSource(tmp_path, ["x"], Preprocess.parse("resize=4x4"), batch_size=2)
    with pytest.warns(UserWarning, match="skipped unreadable image"):
        batches = list(source.batches())
    assert sum(len(b["x"]) for b in batches) == 3 and len(source.skipped.files) == 1


@pytest.mark.parametrize(
    "mode, expect",
    [
        ("stretch", (10, 6)),  # the whole 20x6 image squeezed
        ("fit", (10, 10)),  # centre crop of the scaled image
        ("letterbox", (10, 3)),  # scaled to 10x3 inside grey padding
    ],
)
def test_resize_modes(tmp_path: Path, mode: str, expect: tuple[int, int]) -> None:
    img = _image(tmp_path / "wide.png", (20, 6), value=250)
    pre = Preprocess.parse(f"resize=10x10:{mode},layout=nhwc")
    pixels = pre.load(img)
    assert pixels.shape == (10, 10, 3)
    red = pixels[:, :, 0]
    if mode == "letterbox":
        rows = np.flatnonzero((red > 240).all(axis=1))
        assert len(rows) == expect[1] and (red[0] == 114).all() and (red[-1] == 114).all()
    else:
        assert (red > 240).all()


def test_bare_resize_mode_takes_the_model_input_size(tmp_path: Path) -> None:
    pre = Preprocess.parse("resize=letterbox,color=gray").for_input(("N", 1, 12, 16))
    assert pre.size == (16, 12)
    assert pre.load(_image(tmp_path / "x.png", (5, 5))).shape == (1, 12, 16)


def test_mean_std_scale_layout_dtype(tmp_path: Path) -> None:
    img = _image(tmp_path / "x.png", (2, 2), value=200)  # RGB (200, 100, 10)
    pre = Preprocess.parse("scale=1/255,mean=0.5:0.5:0.5,std=0.25,layout=nchw,dtype=float16,color=bgr")
    x = pre.load(img)
    assert x.dtype == np.float16 and x.shape == (3, 2, 2)
    np.testing.assert_allclose(x[:, 0, 0], [(v / 255 - 0.5) / 0.25 for v in (10, 100, 200)], rtol=1e-3)


def test_npz_is_keyed_by_input_name(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, a=np.ones((10, 6), np.float32), b=np.zeros((10, 6), np.float32))
    batches = list(CalibrationSource(path, ["a", "b"], num=7, batch_size=3).batches())
    assert [len(b["a"]) for b in batches] == [3, 3, 1] and set(batches[0]) == {"a", "b"}
    with pytest.raises(TrtforgeError, match="no array for input"):
        list(CalibrationSource(path, ["a", "c"]).batches())


def test_npy_feeds_a_single_input(tmp_path: Path) -> None:
    path = tmp_path / "d.npy"
    np.save(path, np.arange(12, dtype=np.float32).reshape(4, 3))
    batches = list(CalibrationSource(path, ["x"], batch_size=4).batches())
    assert batches[0]["x"].shape == (4, 3)
    with pytest.raises(TrtforgeError, match="feeds one input"):
        list(CalibrationSource(path, ["x", "y"]).batches())


LOADER = """
import numpy as np

def batches():
    rng = np.random.default_rng(0)
    for _ in range(5):
        yield {"a": rng.standard_normal((4, 6)).astype(np.float32), "b": np.ones((4, 6), np.float32)}

def broken():
    yield {"a": np.ones((4, 6))}
"""


def test_loader_yields_batches_up_to_num(tmp_path: Path) -> None:
    (tmp_path / "load.py").write_text(LOADER)
    batches = list(LoaderSource(str(tmp_path / "load.py"), ["a", "b"], num=10).batches())
    assert [len(b["a"]) for b in batches] == [4, 4, 2]


def test_loader_errors_name_the_problem(tmp_path: Path) -> None:
    (tmp_path / "load.py").write_text(LOADER)
    with pytest.raises(TrtforgeError, match="batch 0 has no array for input"):
        list(LoaderSource(f"{tmp_path / 'load.py'}:broken", ["a", "b"]).batches())
    with pytest.raises(TrtforgeError, match="has no function 'missing'; it defines: batches, broken"):
        LoaderSource(f"{tmp_path / 'load.py'}:missing", ["a"])
    with pytest.raises(TrtforgeError, match="not a Python file"):
        LoaderSource(str(tmp_path / "nope.py"), ["a"])
