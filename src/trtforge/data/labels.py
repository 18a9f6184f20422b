"""Labels of samples: a folder's ``labels.csv``, ``<name>_<label>`` file names, or a .txt/.npy list."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from trtforge._files import existing_file
from trtforge.errors import TrtforgeError


def read_labels_csv(path: Path) -> dict[str, int]:
    """A ``labels.csv``: ``file,label`` rows, the file relative to the image folder."""
    with open(existing_file(path, "--labels file"), newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise TrtforgeError(f"{path} needs the columns 'file' and 'label'")
    try:
        return {row["file"]: int(row["label"]) for row in rows}
    except ValueError as exc:
        raise TrtforgeError(f"{path}: labels must be integers ({exc})") from None


def _labels_csv(path: Path, folder: Path, files: list[Path]) -> np.ndarray:
    """The labels of ``files`` (in their order) from a ``labels.csv``."""
    table = read_labels_csv(path)
    keys = [f.relative_to(folder).as_posix() for f in files]
    missing = [k for k in keys if k not in table]
    if missing:
        raise TrtforgeError(f"{path} has no label for {missing[0]} ({len(missing)} files unlabelled)")
    return np.array([table[k] for k in keys])


def labels_for(folder: Path, files: list[Path], labels: str | None) -> tuple[np.ndarray | None, str | None]:
    if labels:
        path = Path(labels)
        if path.suffix.lower() == ".csv":
            return _labels_csv(path, folder, files), str(path)
        existing_file(path, "--labels file")
        values = np.load(path) if path.suffix.lower() == ".npy" else np.loadtxt(path, dtype=np.int64, ndmin=1)
        if len(values) != len(files):
            raise TrtforgeError(f"{path} holds {len(values)} labels for {len(files)} samples")
        return np.asarray(values, dtype=np.int64), str(path)
    if (folder / "labels.csv").exists():
        return labels_for(folder, files, str(folder / "labels.csv"))
    found = [re.search(r"_(\d+)$", f.stem) for f in files]
    if files and all(found):
        return np.array([int(m.group(1)) for m in found if m]), "file names (<name>_<label>.<ext>)"
    return None, None
