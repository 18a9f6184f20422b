"""One way to samples: ``load_samples`` reads a ``.npz``/``.npy``, an image folder, or seeded random values."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trtforge.config import TensorSpec
from trtforge.data.arrays import concrete_shapes, image_feeds, load_npz, random_feeds
from trtforge.data.check import check_feeds
from trtforge.data.labels import labels_for
from trtforge.data.preprocess import Preprocess
from trtforge.errors import TrtforgeError


@dataclass
class Samples:
    """Inputs by name (first axis: samples), where they came from, and labels when known."""

    feeds: dict[str, np.ndarray]
    source: str
    files: list[Path] = field(default_factory=list)
    labels: np.ndarray | None = None
    labels_source: str | None = None

    def __len__(self) -> int:
        return int(next(iter(self.feeds.values())).shape[0])



def load_samples(source: str | os.PathLike[str] | None, specs: Sequence[TensorSpec], preprocess: Preprocess | None = None,
                 random: int | None = None, labels: str | None = None, limit: int | None = None,
                 seed: int = 0, notes: list[str] | None = None) -> Samples:
    """Samples for ``specs`` from a ``.npz``/``.npy``, an image folder, or ``random`` seeded samples."""
    if source is None:
        if not random:
            raise TrtforgeError("no inputs: give --inputs FILE.npz, --inputs IMAGE_DIR with --preprocess, "
                                "or --random N")
        shapes = concrete_shapes(specs)
        for spec in specs:
            if isinstance(spec.shape[0], int) and spec.shape[0] > 1:
                raise TrtforgeError(f"--random: input {spec.name!r} has a fixed batch of {spec.shape[0]}; "
                                    "pass --inputs FILE.npz instead")
        feeds = random_feeds(specs, {k: (random, *v[1:]) for k, v in shapes.items()}, seed)
        return Samples(check_feeds(feeds, specs, "--random", samples=True), f"random (seed {seed})")
    path = Path(source)
    if path.is_dir():
        feeds, files = image_feeds(path, specs, preprocess, limit)
        found, where = labels_for(path, files, labels)
        return Samples(feeds, f"{path} (images, --preprocess {preprocess.spec if preprocess else ''})",
                       files, found, where)
    feeds = load_npz(path, specs, notes, samples=True)
    if limit is not None:
        feeds = {k: v[:limit] for k, v in feeds.items()}
    samples = Samples(feeds, str(path))
    if labels:
        if labels.lower().endswith(".csv"):
            raise TrtforgeError("--labels FILE.csv names image files; with --inputs FILE.npz give the labels "
                                "as .txt (one integer per line) or .npy, in sample order")
        values, where = labels_for(path.parent, [Path(str(i)) for i in range(len(samples))], labels)
        samples.labels, samples.labels_source = values, where
    return samples
