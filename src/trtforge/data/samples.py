"""One way to samples: ``load_samples`` reads a ``.npz``/``.npy``, an image folder, or seeded random values."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trtforge.config import TensorSpec
from trtforge.data.arrays import concrete_shapes, image_feeds, load_npz, random_feeds
from trtforge.data.check import check_feeds
from trtforge.data.labels import labels_for
from trtforge.data.preprocess import Preprocess
from trtforge.errors import TrtforgeError
from trtforge.graph.batch import batch_axes


@dataclass
class Samples:
    """Inputs by name (first axis: samples), where they came from, and labels when known."""

    feeds: dict[str, np.ndarray]
    source: str
    files: list[Path] = field(default_factory=list)
    labels: np.ndarray | None = None
    labels_source: str | None = None
    axes: dict[str, int | None] = field(default_factory=dict)
    """Each input's batch axis (absent: 0; None: not batched, the same for every sample)."""

    def __len__(self) -> int:
        return sample_count(self.feeds, self.axes)


def sample_count(feeds: Mapping[str, np.ndarray], axes: Mapping[str, int | None]) -> int:
    """How many samples ``feeds`` hold, counted along the first batched input's batch axis."""
    for name, value in feeds.items():
        axis = axes.get(name, 0)
        if axis is not None:
            return int(value.shape[axis])
    return 1


def with_batch(shape: tuple[int, ...], axis: int | None, n: int) -> tuple[int, ...]:
    """``shape`` with ``n`` on the batch ``axis`` (unchanged without one)."""
    return shape if axis is None else shape[:axis] + (n,) + shape[axis + 1 :]


def take(array: np.ndarray, axis: int | None, index: slice | np.ndarray) -> np.ndarray:
    """Samples ``index`` of ``array`` along its batch axis; an input without one is the same for all."""
    if axis is None:
        return array
    where: list[slice | np.ndarray] = [slice(None)] * array.ndim
    where[axis] = index
    return array[tuple(where)]


def load_samples(
    source: str | os.PathLike[str] | None,
    specs: Sequence[TensorSpec],
    preprocess: Preprocess | None = None,
    random: int | None = None,
    labels: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    notes: list[str] | None = None,
) -> Samples:
    """Samples for ``specs`` from a ``.npz``/``.npy``, an image folder, or ``random`` seeded samples."""
    if source is None:
        if not random:
            raise TrtforgeError(
                "no inputs: give --inputs FILE.npz, --inputs IMAGE_DIR with --preprocess, or --random N"
            )
        shapes = concrete_shapes(specs)
        axes = batch_axes(specs)
        for spec in specs:
            axis = axes[spec.name]
            fixed = spec.shape[axis] if axis is not None else None
            if isinstance(fixed, int) and fixed > 1:
                raise TrtforgeError(
                    f"--random: input {spec.name!r} has a fixed batch of {fixed}; pass --inputs FILE.npz instead"
                )
        resized = {k: with_batch(v, axes[k], random) for k, v in shapes.items()}
        feeds = random_feeds(specs, resized, seed)
        return Samples(check_feeds(feeds, specs, "--random", samples=True), f"random (seed {seed})", axes=axes)
    path = Path(source)
    if path.is_dir():
        feeds, files = image_feeds(path, specs, preprocess, limit)
        found, where = labels_for(path, files, labels)
        return Samples(
            feeds, f"{path} (images, --preprocess {preprocess.spec if preprocess else ''})", files, found, where
        )
    feeds = load_npz(path, specs, notes, samples=True)
    axes = batch_axes(specs)
    if limit is not None:
        feeds = {k: take(v, axes[k], slice(0, limit)) for k, v in feeds.items()}
    samples = Samples(feeds, str(path), axes=axes)
    if labels:
        if labels.lower().endswith(".csv"):
            raise TrtforgeError(
                "--labels FILE.csv names image files; with --inputs FILE.npz give the labels "
                "as .txt (one integer per line) or .npy, in sample order"
            )
        values, where = labels_for(path.parent, [Path(str(i)) for i in range(len(samples))], labels)
        samples.labels, samples.labels_source = values, where
    return samples


def output_axis(value: np.ndarray, size: int) -> int | None:
    """An output's batch axis: 0 when it has the chunk's size, else the first axis that does
    (a state ``[layers, batch, ...]``), else none (the output does not follow the batch)."""
    if value.ndim and value.shape[0] == size:
        return 0
    return next((a for a, d in enumerate(value.shape) if d == size), None)
