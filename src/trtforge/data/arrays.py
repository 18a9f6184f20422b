"""Inputs for bench, run, compare and exec: random, from files, or from images.

* :func:`concrete_shapes`: every input's shape, with dynamic dimensions filled from
  ``--shapes`` (trtexec's syntax) or ``--batch`` (the leading dimension only).
* :func:`random_feeds`: seeded values in a range that suits the dtype (never all zeros).
* :func:`load_npz`: ``--inputs FILE.npz`` (or ``.npy`` for a one-input model).
* :func:`load_trtexec_inputs`: ``--loadInputs=name:file.bin,name2:file.npy`` (trtexec's raw
  ``.bin`` holds the values in the input's dtype, C order, at its shape).
* :func:`image_feeds`: an image folder through a :class:`~trtforge.data.preprocess.Preprocess`.

Arrays given in another dtype than the engine's are cast when the kinds agree (float to
float, int to int) and the cast is reported; anything else is refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trtforge.config import TensorSpec
from trtforge.errors import TrtforgeError

if TYPE_CHECKING:
    from trtforge.data.preprocess import Preprocess

Feeds = dict[str, np.ndarray]

# (low, high) of the uniform/integers draw per numpy dtype kind or name; high is exclusive.
_RANGES: dict[str, tuple[float, float]] = {
    "f": (-1.0, 1.0),  # floats: activations and normalised pixels live here
    "uint8": (0, 256),  # raw pixels
    "int8": (-128, 128),
    "i": (0, 8),  # other ints are often indices or ids: keep them small and valid
    "u": (0, 8),
}


def concrete_shapes(
    specs: Sequence[TensorSpec], shapes: str | None = None, batch: int | None = None
) -> dict[str, tuple[int, ...]]:
    """Each input's shape with no dynamic dimension left, or a user error saying what to pass."""
    given: dict[str, tuple[int, ...]] = {}
    if shapes:
        from trtforge.graph.model import resolve_input_name
        from trtforge.graph.ranges import ShapeRange

        parsed = ShapeRange.fixed(shapes)
        named = {resolve_input_name(n, [s.name for s in specs]) for n in parsed.inputs}
        given = parsed.validate([s for s in specs if s.name in named]).opt
    if batch is not None and batch < 1:
        raise TrtforgeError(f"--batch must be at least 1, got {batch}")
    from trtforge.graph.batch import batch_axes

    axes = batch_axes(specs)
    out: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        if spec.name in given:
            out[spec.name] = given[spec.name]
            continue
        dims: list[int] = []
        at = axes[spec.name]  # a state's batch may sit on axis 1; a scalar has none
        for axis, d in enumerate(spec.shape):
            static = isinstance(d, int) and d > 0
            if axis == at and batch is not None:
                if static and d != batch:
                    raise TrtforgeError(
                        f"--batch {batch}: input {spec.name!r} has a fixed batch of {d} "
                        f"({spec.shape_text()}); rebuild with trtforge reshape --batch {batch}"
                    )
                dims.append(batch)
            elif static:
                dims.append(int(d))
            elif axis == at:
                dims.append(1)
            else:
                example = "x".join(str(x) if isinstance(x, int) and x > 0 else "N" for x in spec.shape)
                raise TrtforgeError(
                    f"input {spec.name!r} has a dynamic dimension {d!r} at axis {axis} "
                    f"({spec.shape_text()}); give its shape with --shapes {spec.name}:{example} "
                    "(N replaced by numbers)"
                )
        out[spec.name] = tuple(dims)
    return out


def random_feeds(
    specs: Sequence[TensorSpec], shapes: Mapping[str, tuple[int, ...]] | None = None, seed: int = 0
) -> Feeds:
    """Seeded random inputs in a range that suits each dtype; see :data:`_RANGES`."""
    shapes = shapes if shapes is not None else concrete_shapes(specs)
    rng = np.random.default_rng(seed)
    feeds: Feeds = {}
    for spec in specs:
        shape = shapes[spec.name]
        dtype = _numpy_dtype(spec)
        if dtype.kind == "b":
            feeds[spec.name] = rng.integers(0, 2, shape).astype(bool)
            continue
        bounds = _RANGES.get(dtype.name) or _RANGES.get(dtype.kind)
        if bounds is None:
            raise TrtforgeError(
                f"input {spec.name!r} has dtype {dtype}, for which trtforge cannot make "
                "random values; pass --inputs FILE.npz"
            )
        low, high = bounds
        if dtype.kind == "f":
            values = rng.uniform(low, high, shape).astype(dtype)
        else:
            values = rng.integers(int(low), int(high), shape).astype(dtype)
        feeds[spec.name] = values
    return feeds


def random_inputs(specs: Sequence[TensorSpec], seed: int = 0, batch: int | None = None) -> Feeds:
    """Seeded random inputs at the specs' shapes (dynamic batch: ``batch`` or 1)."""
    return random_feeds(specs, concrete_shapes(specs, None, batch), seed)


def _numpy_dtype(spec: TensorSpec) -> np.dtype:
    try:
        return np.dtype(spec.dtype)
    except TypeError:
        raise TrtforgeError(
            f"input {spec.name!r} has dtype {spec.dtype}, which numpy cannot hold; "
            "pass inputs in a dtype the engine takes"
        ) from None


def engine_arrays(feeds: Mapping[str, np.ndarray], specs: Sequence[TensorSpec]) -> Feeds:
    """An array for every input of the engine, in the input's dtype: what device runners stage."""
    missing = [s.name for s in specs if s.name not in feeds]
    if missing:
        raise TrtforgeError(
            f"no array for input(s) {', '.join(missing)}; the engine takes {', '.join(s.name for s in specs)}"
        )
    return {s.name: np.asarray(feeds[s.name], dtype=np.dtype(s.dtype)) for s in specs}


def conform(
    feeds: Mapping[str, np.ndarray],
    specs: Sequence[TensorSpec],
    where: str,
    notes: list[str] | None = None,
    samples: bool = False,
) -> Feeds:
    """Feeds checked against the engine's inputs (see :func:`trtforge.data.check.check_feeds`).

    ``samples``: each input's batch axis (:func:`trtforge.graph.batch.batch_axes`: axis 0, a
    state's axis 1, none for a scalar) counts samples (run/compare feed them in chunks), so it may
    differ from a fixed batch.
    """
    from trtforge.data.check import check_feeds

    return check_feeds(feeds, specs, where, notes, samples)


def _read_numpy(path: Path) -> object:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise TrtforgeError(f"cannot read {path} as numpy data (.npz/.npy): {str(exc).splitlines()[0]}") from None


def load_npz(
    path: str | os.PathLike[str], specs: Sequence[TensorSpec], notes: list[str] | None = None, samples: bool = False
) -> Feeds:
    """``--inputs FILE.npz`` keyed by input name (or ``FILE.npy`` for a one-input engine)."""
    from trtforge._files import existing_file

    p = existing_file(path, "--inputs file")
    loaded = _read_numpy(p)
    if isinstance(loaded, np.ndarray):
        if len(specs) != 1:
            raise TrtforgeError(
                f"{p} is one array, but the engine has {len(specs)} inputs "
                f"({', '.join(s.name for s in specs)}); use a .npz keyed by input name"
            )
        arrays = {specs[0].name: loaded}
    else:
        arrays = {k: loaded[k] for k in loaded.files}  # type: ignore[attr-defined,index]
    return conform(arrays, specs, str(p), notes, samples)


def load_npz_partial(
    path: str | os.PathLike[str],
    specs: Sequence[TensorSpec],
    shapes: str | None = None,
    batch: int | None = None,
    seed: int = 0,
    notes: list[str] | None = None,
) -> Feeds:
    """``bench --inputs FILE.npz``: the inputs the file holds; the others seeded random (said in ``notes``).

    Giving only some inputs is how fixed values reach a model: a sample rate that picks a
    branch, a zero state.
    """
    from trtforge._files import existing_file

    p = existing_file(path, "--inputs file")
    loaded = _read_numpy(p)
    if isinstance(loaded, np.ndarray):
        return load_npz(p, specs, notes)
    names = set(loaded.files)  # type: ignore[attr-defined]
    given = [s for s in specs if s.name in names or f"{s.name}:0" in names]
    rest = [s for s in specs if s not in given]
    if not given:
        return load_npz(p, specs, notes)
    feeds = conform({k: loaded[k] for k in names}, given, str(p), notes)  # type: ignore[index]
    if rest:
        feeds.update(random_feeds(rest, concrete_shapes(rest, shapes, batch), seed))
        if notes is not None:
            notes.append(f"{', '.join(s.name for s in rest)}: not in {p}, seeded random (seed {seed})")
    return {s.name: feeds[s.name] for s in specs}


def load_trtexec_inputs(
    text: str, specs: Sequence[TensorSpec], shapes: Mapping[str, tuple[int, ...]], notes: list[str] | None = None
) -> Feeds:
    """``--loadInputs=name:file[,name:file]``: ``.npy`` files, or raw ``.bin`` in the input's dtype.

    Inputs not named are filled with random values, as trtexec does.
    """
    from trtforge._files import existing_file
    from trtforge.graph.model import resolve_input_name
    from trtforge.graph.ranges import split_items

    names = [s.name for s in specs]
    by_name = {s.name: s for s in specs}
    loaded: Feeds = {}
    for given, file in split_items(text, "--loadInputs"):
        name = resolve_input_name(given, names)
        path = existing_file(file, f"--loadInputs file for {name!r}")
        if path.suffix.lower() == ".npy":
            array = _read_numpy(path)
            assert isinstance(array, np.ndarray)
        else:
            dtype = _numpy_dtype(by_name[name])
            shape = shapes[name]
            raw = path.read_bytes()
            want = int(np.prod(shape)) * dtype.itemsize
            if len(raw) != want:
                raise TrtforgeError(
                    f"--loadInputs {path}: {len(raw)} bytes, but {name!r} at "
                    f"{'x'.join(map(str, shape))} in {dtype} needs {want}; "
                    "check --shapes, or save the array as .npy"
                )
            array = np.frombuffer(raw, dtype=dtype).reshape(shape)
        loaded[name] = array
    rest = [s for s in specs if s.name not in loaded]
    if rest:
        loaded.update(random_feeds(rest, shapes))
        if notes is not None:
            notes.append(f"--loadInputs: random values for {', '.join(s.name for s in rest)}")
    return conform(loaded, specs, "--loadInputs", notes)


def image_feeds(
    folder: str | os.PathLike[str], specs: Sequence[TensorSpec], preprocess: Preprocess | None, limit: int | None = None
) -> tuple[Feeds, list[Path]]:
    """An image folder as one batch for a one-input engine, and the files in batch order."""
    from trtforge.data.images import image_files

    if len(specs) != 1:
        raise TrtforgeError(
            f"an image folder feeds one input, but the engine has {len(specs)} "
            f"({', '.join(s.name for s in specs)}); pass --inputs FILE.npz"
        )
    if preprocess is None:
        raise TrtforgeError(
            "an image folder needs --preprocess to say how images become inputs (the same spec as for calibration)"
        )
    preprocess = preprocess.resolve(specs[0])
    files = image_files(Path(folder))[:limit]
    arrays, used = [], []
    for file in files:
        try:
            arrays.append(preprocess.load(file))
            used.append(file)
        except Exception as exc:  # PIL raises many types for corrupt files
            raise TrtforgeError(f"cannot read image {file}: {exc}") from None
    return {specs[0].name: np.stack(arrays)}, used


def is_classifier(output: np.ndarray) -> bool:
    """Scores per class: (samples, classes) with more than one class, trailing 1-dims allowed."""
    flat = output.reshape(output.shape[0], -1) if output.ndim >= 2 else output
    return output.ndim >= 2 and flat.shape[1] > 1 and all(d == 1 for d in output.shape[2:])
