"""Calibration sources: batches of ``{input_name: array}`` for the calibrator.

From an image folder (through a :class:`~trtforge.data.preprocess.Preprocess`), a ``.npz``/``.npy``,
or a user's ``--calib-loader`` function; :func:`rebatch` regroups them for a static batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trtforge.data.images import Skipped, batched, image_files, read_images
from trtforge.data.preprocess import Preprocess
from trtforge.errors import TrtforgeError

if TYPE_CHECKING:
    from trtforge.config import CalibrationConfig, TensorSpec


@dataclass
class CalibrationSource:
    """Batches of ``{input_name: array}`` from an image folder, ``.npz`` or ``.npy``."""

    path: Path
    input_names: list[str]
    preprocess: Preprocess | None = None
    num: int = 500
    batch_size: int = 8
    seed: int = 0
    skipped: Skipped = field(default_factory=Skipped)
    axes: Mapping[str, int | None] = field(default_factory=dict)
    """Each input's batch axis in a .npz (absent: 0; None: one value for every sample, e.g. a
    scalar sample rate); see :func:`trtforge.graph.batch.batch_axes`."""

    def __post_init__(self) -> None:
        if not self.path.exists():
            raise TrtforgeError(f"calibration data not found: {self.path}")
        if self.path.is_dir():
            if len(self.input_names) != 1:
                raise TrtforgeError(
                    f"an image folder feeds one input, but the model has {len(self.input_names)} "
                    f"({', '.join(self.input_names)}); pass a .npz keyed by input name"
                )
            if self.preprocess is None:
                raise TrtforgeError("an image folder needs --preprocess to say how images become inputs")
            files = image_files(self.path)
            if len(files) > self.num:
                pick = np.random.default_rng(self.seed).choice(len(files), self.num, replace=False)
                files = [files[i] for i in sorted(pick)]
            self._files = files
        elif self.path.suffix.lower() not in (".npz", ".npy"):
            raise TrtforgeError(
                f"cannot read calibration data from {self.path}: expected a folder of images, .npz or .npy"
            )

    def __len__(self) -> int:
        """Number of samples this source yields at most."""
        if self.path.is_dir():
            return len(self._files)
        counts = [
            v.shape[self.axes.get(k, 0) or 0]
            for k, v in self._arrays().items()
            if self.axes.get(k, 0) is not None and v.ndim
        ]
        return min(self.num, counts[0] if counts else 1)

    def _arrays(self) -> dict[str, np.ndarray]:
        try:
            loaded = np.load(self.path, allow_pickle=False)
        except Exception as exc:
            raise TrtforgeError(f"cannot read {self.path} as numpy data: {exc}") from None
        if isinstance(loaded, np.ndarray):
            if len(self.input_names) != 1:
                raise TrtforgeError(
                    f"a .npy file feeds one input, but the model has {len(self.input_names)}; use a .npz "
                    f"keyed by input name ({', '.join(self.input_names)})"
                )
            return {self.input_names[0]: loaded}
        arrays = {k: loaded[k] for k in loaded.files}
        missing = [n for n in self.input_names if n not in arrays]
        if missing:
            raise TrtforgeError(
                f"{self.path} has no array for input(s) {', '.join(missing)}; it holds: "
                f"{', '.join(arrays) or 'nothing'}"
            )
        return {n: arrays[n] for n in self.input_names}

    def batches(self) -> Iterator[dict[str, np.ndarray]]:
        if self.path.is_dir():
            assert self.preprocess is not None
            name = self.input_names[0]
            count = 0
            for batch in batched(read_images(self._files, self.preprocess, self.skipped), self.batch_size):
                count += len(batch)
                yield {name: batch}
            if count == 0:
                raise TrtforgeError(
                    f"none of the {len(self._files)} images in {self.path} could be read "
                    f"(first problem: {self.skipped.files[0][1]})"
                )
            return
        arrays = self._arrays()
        n = len(self)
        if n == 0:
            raise TrtforgeError(f"{self.path} holds no samples")
        for start in range(0, n, self.batch_size):
            yield {k: self._cut(k, v, slice(start, min(start + self.batch_size, n))) for k, v in arrays.items()}

    def _cut(self, name: str, array: np.ndarray, samples: slice) -> np.ndarray:
        """``samples`` along the input's batch axis; an input without one (a scalar) whole."""
        axis = self.axes.get(name, 0)
        if axis is None or not array.ndim:
            return array
        where: list[slice] = [slice(None)] * array.ndim
        where[axis] = samples
        return array[tuple(where)]

    @property
    def total(self) -> int | None:
        return len(self)

    def describe(self) -> str:
        return str(self.path)


def load_loader(spec: str) -> Callable[[], Iterable[Mapping[str, np.ndarray]]]:
    """``FILE.py[:func]`` -> the function (default name ``batches``) it names."""
    import importlib.util

    file, sep, func = spec.rpartition(":") if spec.rpartition(":")[2].isidentifier() else (spec, "", "")
    if not sep:
        file, func = spec, "batches"
    path = Path(file)
    if path.suffix != ".py" or not path.is_file():
        raise TrtforgeError(f"--calib-loader {spec!r}: {path} is not a Python file; expected FILE.py[:function]")
    module_spec = importlib.util.spec_from_file_location(f"trtforge_calib_loader_{path.stem}", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)  # the user's code: its own errors keep their traceback
    fn = getattr(module, func, None)
    if not callable(fn):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise TrtforgeError(
            f"--calib-loader {spec!r}: {path} has no function {func!r}; it defines: {', '.join(found) or 'none'}"
        )
    return fn


@dataclass
class LoaderSource:
    """Batches of ``{input_name: array}`` from a user function (``--calib-loader FILE.py[:func]``)."""

    spec: str
    input_names: list[str]
    num: int = 500
    skipped: Skipped = field(default_factory=Skipped)

    def __post_init__(self) -> None:
        self._fn = load_loader(self.spec)

    @property
    def total(self) -> int | None:
        return None  # a generator does not say how many it holds

    def describe(self) -> str:
        return self.spec

    def batches(self) -> Iterator[dict[str, np.ndarray]]:
        count = 0
        for index, batch in enumerate(self._fn()):
            if not isinstance(batch, Mapping):
                raise TrtforgeError(
                    f"--calib-loader {self.spec}: batch {index} is a {type(batch).__name__}, "
                    f"expected a dict {{input_name: array}} with keys {', '.join(self.input_names)}"
                )
            missing = [n for n in self.input_names if n not in batch]
            if missing:
                raise TrtforgeError(
                    f"--calib-loader {self.spec}: batch {index} has no array for input(s) {', '.join(missing)}; "
                    f"it holds: {', '.join(map(str, batch)) or 'nothing'}"
                )
            try:
                arrays = {n: np.asarray(batch[n]) for n in self.input_names}
            except (ValueError, TypeError):
                raise TrtforgeError(
                    f"--calib-loader {self.spec}: batch {index} holds a ragged or non-numeric "
                    "value; expected one rectangular array per input"
                ) from None
            sizes = {len(a) if a.ndim else 0 for a in arrays.values()}
            if len(sizes) != 1 or 0 in sizes:
                raise TrtforgeError(
                    f"--calib-loader {self.spec}: batch {index} arrays need one shared, non-empty batch axis; "
                    f"got shapes {', '.join(f'{n}={a.shape}' for n, a in arrays.items())}"
                )
            take = min(sizes.pop(), self.num - count)
            yield {n: a[:take] for n, a in arrays.items()}
            count += take
            if count >= self.num:
                break
        if count == 0:
            raise TrtforgeError(f"--calib-loader {self.spec} yielded no batches")


def calibration_source(
    data: Path | None,
    loader: str | None,
    input_names: list[str],
    shapes: Mapping[str, tuple[int | str, ...]],
    preprocess: Preprocess | None,
    num: int,
    batch_size: int,
    seed: int,
) -> CalibrationSource | LoaderSource:
    """The source a calibration config names: a loader wins over data when both are given."""
    if loader is not None:
        return LoaderSource(loader, input_names, num)
    assert data is not None
    if preprocess is not None and len(input_names) == 1:
        preprocess = preprocess.for_input(shapes.get(input_names[0], ()))
    from trtforge.config import TensorSpec
    from trtforge.graph.batch import batch_axes

    axes = batch_axes([TensorSpec(n, "float32", tuple(shapes.get(n, ()))) for n in input_names])
    return CalibrationSource(data, input_names, preprocess, num, batch_size, seed, axes=axes)


def source_for(
    specs: Sequence[TensorSpec], calibration: CalibrationConfig, num: int | None = None
) -> CalibrationSource | LoaderSource:
    """The source ``calibration`` names, for a model with inputs ``specs``: at most ``num`` samples
    (``calibration.num`` when not given)."""
    return calibration_source(
        calibration.data,
        calibration.loader,
        [t.name for t in specs],
        {t.name: t.shape for t in specs},
        calibration.preprocess,
        calibration.num if num is None else num,
        calibration.batch_size,
        calibration.seed,  # type: ignore[arg-type]
    )


def rebatch(
    batches: Iterable[dict[str, np.ndarray]], size: int, axes: Mapping[str, int | None] | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """Regroup batches into exactly ``size`` samples (for models with a static batch).

    Each input is joined and cut along its batch axis (``axes``; default 0); an input without
    one (a scalar) is passed as it is.  A final partial group is dropped: a model of static
    batch cannot run it.
    """
    axes = axes or {}
    pending: dict[str, list[np.ndarray]] = {}
    count = 0
    for batch in batches:
        for name, array in batch.items():
            pending.setdefault(name, []).append(array)
        count += _samples_in(batch, axes)
        while count >= size:
            joined = {
                k: v[-1] if _axis(k, v[-1], axes) is None else np.concatenate(v, axis=_axis(k, v[-1], axes))
                for k, v in pending.items()
            }
            yield {k: _part(v, _axis(k, v, axes), 0, size) for k, v in joined.items()}
            pending = {k: [_part(v, _axis(k, v, axes), size, None)] for k, v in joined.items()}
            count -= size


def _axis(name: str, array: np.ndarray, axes: Mapping[str, int | None]) -> int | None:
    return axes.get(name, 0) if array.ndim else None


def _samples_in(batch: Mapping[str, np.ndarray], axes: Mapping[str, int | None]) -> int:
    for name, array in batch.items():
        axis = _axis(name, array, axes)
        if axis is not None:
            return int(array.shape[axis])
    return 1


def _part(array: np.ndarray, axis: int | None, start: int, stop: int | None) -> np.ndarray:
    if axis is None:
        return array
    where: list[slice] = [slice(None)] * array.ndim
    where[axis] = slice(start, stop)
    return array[tuple(where)]
