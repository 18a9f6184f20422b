"""Image folders: the files in them, reading them through a :class:`Preprocess`, and their labels."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trtforge.data.preprocess import Preprocess
from trtforge.errors import TrtforgeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass
class Skipped:
    """Files a source could not read, counted and reported."""

    files: list[tuple[Path, str]] = field(default_factory=list)

    def add(self, path: Path, why: str) -> None:
        self.files.append((path, why))
        warnings.warn(f"skipped unreadable image {path}: {why}", stacklevel=2)


def image_files(folder: Path) -> list[Path]:
    """Every image file under ``folder``, recursively, in a stable order."""
    if not folder.is_dir():
        raise TrtforgeError(f"calibration folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise TrtforgeError(
            f"no images in {folder} (looked for {', '.join(IMAGE_SUFFIXES)}, recursively); "
            "point --calib-data at a folder of images, or at a .npz/.npy file"
        )
    return files


def read_images(files: list[Path], preprocess: Preprocess, skipped: Skipped) -> Iterator[np.ndarray]:
    for path in files:
        try:
            yield preprocess.load(path)
        except Exception as exc:  # PIL raises many types for corrupt files
            skipped.add(path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def batched(samples: Iterator[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
    batch: list[np.ndarray] = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == batch_size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)
