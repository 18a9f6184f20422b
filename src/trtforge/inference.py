"""``run``: an engine (or an ONNX model) on real inputs, many samples at a time.

Samples come from a ``.npz``/``.npy`` (first axis = samples), an image folder through a
``--preprocess`` spec (the same typed spec as calibration, so the same pixels), or seeded
random values.  They are fed in chunks the engine accepts: its fixed batch (the last chunk
padded by repeating its last sample, whose outputs are dropped) or, for a dynamic batch,
up to :data:`MAX_CHUNK` at a time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trtforge.config import TensorSpec
from trtforge.errors import TrtforgeError

MAX_CHUNK = 64


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


class SourceRunner:
    """A source model (SavedModel, Keras, PyTorch...) run by its own framework, fed like its ONNX.

    The converter that ``trtforge convert`` uses runs once into a scratch file, which gives the
    ONNX names, shapes and layouts; ``infer`` takes and returns arrays keyed and laid out as the
    converted model's (inputs asked for as NCHW are transposed to the source's NHWC and back).
    """

    def __init__(self, path: Path, options: object = None, source_format: str | None = None) -> None:
        import tempfile

        from trtforge.converters import ConvertOptions, converters, detect_format, quiet_native_logs
        from trtforge.graph.model import graph_inputs, graph_outputs, load

        options = options or ConvertOptions()
        name = source_format or detect_format(path)
        with tempfile.TemporaryDirectory(prefix="trtforge-ref-") as scratch:
            onnx_path = Path(scratch) / "source.onnx"
            with quiet_native_logs():
                self.reference = converters()[name].run(path, onnx_path, options)  # type: ignore[arg-type]
            model = load(onnx_path)
        self.inputs = graph_inputs(model)
        self.outputs = graph_outputs(model)
        self.framework = self.reference.framework

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        ref = self.reference
        source = {k: v.transpose(0, 2, 3, 1) if k in ref.nchw_inputs else v for k, v in feeds.items()}
        try:
            raw = ref.run(source)
        except Exception as exc:
            at = ", ".join(f"{k}:{'x'.join(map(str, v.shape))}" for k, v in source.items())
            last = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise TrtforgeError(f"{ref.framework} could not run the source model at {at}: {last}") from None
        return {o.name: (np.asarray(raw[o.name]).transpose(0, 3, 1, 2) if o.name in ref.nchw_outputs
                         else np.asarray(raw[o.name])) for o in self.outputs}


def open_runner(path: str | os.PathLike[str], source_options: object = None,
                source_format: str | None = None) -> tuple[object, str]:
    """A trtforge engine (verified against its manifest), an ONNX model run in FP32 by ONNX Runtime,
    or a source model run by its framework (:class:`SourceRunner`, with ``source_options``:
    a ConvertOptions saying e.g. which inputs the ONNX takes as NCHW)."""
    from trtforge.engine import manifest_path

    p = Path(path)
    if p.suffix.lower() == ".onnx" and not manifest_path(p).exists():
        from trtforge._files import existing_file
        from trtforge.backends.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeRunner

        existing_file(p, "ONNX model")
        try:
            session = OnnxRuntimeBackend()._session(p.read_bytes(), "cpu")
        except TrtforgeError:
            raise
        except Exception as exc:
            raise TrtforgeError(f"onnxruntime cannot load {p}: {str(exc).splitlines()[0]}") from None
        return OnnxRuntimeRunner(session), f"{p} (ONNX, onnxruntime fp32 on the CPU)"
    if p.is_dir() or source_format or not manifest_path(p).exists():
        if not p.exists():
            raise TrtforgeError(f"model to compare against not found: {p}")
        runner = SourceRunner(p, source_options, source_format)
        return runner, f"{p} ({runner.framework}, the source model)"
    from trtforge.builder import load_with_manifest

    engine, manifest = load_with_manifest(p)
    return engine, f"{p} ({manifest.backend} {manifest.precision} engine)"


def _labels_csv(path: Path, folder: Path, files: list[Path]) -> np.ndarray:
    """``file,label`` rows (file relative to the image folder), in the order of ``files``."""
    import csv

    from trtforge._files import existing_file

    with open(existing_file(path, "--labels file"), newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"file", "label"} <= set(rows[0]):
        raise TrtforgeError(f"{path} needs the columns 'file' and 'label'")
    try:
        table = {row["file"]: int(row["label"]) for row in rows}
    except ValueError as exc:
        raise TrtforgeError(f"{path}: labels must be integers ({exc})") from None
    keys = [f.relative_to(folder).as_posix() for f in files]
    missing = [k for k in keys if k not in table]
    if missing:
        raise TrtforgeError(f"{path} has no label for {missing[0]} ({len(missing)} files unlabelled)")
    return np.array([table[k] for k in keys])


def _labels_from(folder: Path, files: list[Path], labels: str | None) -> tuple[np.ndarray | None, str | None]:
    if labels:
        path = Path(labels)
        if path.suffix.lower() == ".csv":
            return _labels_csv(path, folder, files), str(path)
        from trtforge._files import existing_file

        existing_file(path, "--labels file")
        values = np.load(path) if path.suffix.lower() == ".npy" else np.loadtxt(path, dtype=np.int64, ndmin=1)
        if len(values) != len(files):
            raise TrtforgeError(f"{path} holds {len(values)} labels for {len(files)} samples")
        return np.asarray(values, dtype=np.int64), str(path)
    if (folder / "labels.csv").exists():
        return _labels_from(folder, files, str(folder / "labels.csv"))
    found = [re.search(r"_(\d+)$", f.stem) for f in files]
    if files and all(found):
        return np.array([int(m.group(1)) for m in found if m]), "file names (<name>_<label>.<ext>)"
    return None, None


def load_samples(source: str | os.PathLike[str] | None, specs: Sequence[TensorSpec], preprocess: object = None,
                 random: int | None = None, labels: str | None = None, limit: int | None = None,
                 seed: int = 0, notes: list[str] | None = None) -> Samples:
    """Samples for ``specs`` from a ``.npz``/``.npy``, an image folder, or ``random`` seeded samples."""
    from trtforge.graph.batch import batch_axes
    from trtforge.inputs import concrete_shapes, image_feeds, load_npz, random_feeds

    if source is None:
        if not random:
            raise TrtforgeError("no inputs: give --inputs FILE.npz, --inputs IMAGE_DIR with --preprocess, "
                                "or --random N")
        shapes = concrete_shapes(specs)
        axes = batch_axes(specs)
        for spec in specs:
            axis = axes[spec.name]
            if axis is not None and isinstance(spec.shape[axis], int) and spec.shape[axis] > 1:
                raise TrtforgeError(f"--random: input {spec.name!r} has a fixed batch of {spec.shape[axis]}; "
                                    "pass --inputs FILE.npz instead")
        resized = {k: _with_batch(v, axes[k], random) for k, v in shapes.items()}
        return Samples(random_feeds(specs, resized, seed), f"random (seed {seed})", axes=axes)
    path = Path(source)
    if path.is_dir():
        feeds, files = image_feeds(path, specs, preprocess, limit)
        found, where = _labels_from(path, files, labels)
        return Samples(feeds, f"{path} (images, --preprocess {getattr(preprocess, 'spec', '')})",
                       files, found, where)
    feeds = load_npz(path, specs, notes, samples=True)
    axes = batch_axes(specs)
    if limit is not None:
        feeds = {k: _take(v, axes[k], slice(0, limit)) for k, v in feeds.items()}
    samples = Samples(feeds, str(path), axes=axes)
    if labels:
        if labels.lower().endswith(".csv"):
            raise TrtforgeError("--labels FILE.csv names image files; with --inputs FILE.npz give the labels "
                                "as .txt (one integer per line) or .npy, in sample order")
        values, where = _labels_from(path.parent, [Path(str(i)) for i in range(len(samples))], labels)
        samples.labels, samples.labels_source = values, where
    return samples


def _with_batch(shape: tuple[int, ...], axis: int | None, n: int) -> tuple[int, ...]:
    return shape if axis is None else shape[:axis] + (n,) + shape[axis + 1:]


def _take(array: np.ndarray, axis: int | None, index: slice | np.ndarray) -> np.ndarray:
    """Samples ``index`` of ``array`` along its batch axis; an input without one is the same for all."""
    if axis is None:
        return array
    where: list[slice | np.ndarray] = [slice(None)] * array.ndim
    where[axis] = index
    return array[tuple(where)]


def _chunk_size(specs: Sequence[TensorSpec], axes: Mapping[str, int | None]) -> int | None:
    """The engine's fixed batch, or None when the batch is dynamic (or no input has one)."""
    for spec in specs:
        axis = axes.get(spec.name)
        if axis is not None:
            dim = spec.shape[axis]
            return int(dim) if isinstance(dim, int) and dim > 0 else None
    return None


def _output_axis(value: np.ndarray, size: int) -> int | None:
    """An output's batch axis: 0 when it has the chunk's size, else the first axis that does
    (a state ``[layers, batch, ...]``), else none (the output does not follow the batch)."""
    if value.ndim and value.shape[0] == size:
        return 0
    return next((a for a, d in enumerate(value.shape) if d == size), None)


def run_samples(runner: object, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every sample through ``runner``, in chunks it accepts, each input cut along its own batch
    axis; outputs by name, joined along theirs (first axis for images, axis 1 for a state)."""
    from trtforge.graph.batch import batch_axes

    specs: list[TensorSpec] = runner.inputs  # type: ignore[attr-defined]
    axes = batch_axes(specs)
    dtypes = {s.name: np.dtype(s.dtype) for s in specs}
    n = sample_count(feeds, axes)
    fixed = _chunk_size(specs, axes)
    size = fixed or min(n, MAX_CHUNK)
    results: dict[str, list[np.ndarray]] = {}
    out_axes: dict[str, int | None] = {}
    for start in range(0, n, size):
        index = np.minimum(np.arange(start, start + size), n - 1)  # pad a fixed batch with the last sample
        real = min(size, n - start)
        if not fixed:
            index = index[:real]
        chunk = {k: _take(v, axes.get(k, 0), index).astype(dtypes.get(k, v.dtype), copy=False)
                 for k, v in feeds.items()}
        out = runner.infer(chunk)  # type: ignore[attr-defined]
        for name, value in out.items():
            value = np.asarray(value)
            axis = out_axes.setdefault(name, _output_axis(value, len(index)))
            results.setdefault(name, []).append(_take(value, axis, slice(0, real)))
    return {k: v[0] if out_axes[k] is None else np.concatenate(v, axis=out_axes[k]) for k, v in results.items()}


def is_classifier(output: np.ndarray) -> bool:
    """Scores per class: (samples, classes) with more than one class, trailing 1-dims allowed."""
    flat = output.reshape(output.shape[0], -1) if output.ndim >= 2 else output
    return output.ndim >= 2 and flat.shape[1] > 1 and all(d == 1 for d in output.shape[2:])


@dataclass
class RunResult:
    outputs: dict[str, np.ndarray]
    samples: Samples
    engine: str
    notes: list[str] = field(default_factory=list)

    def top_k(self, k: int = 5) -> dict[str, list[list[tuple[int, float]]]]:
        """For classifier-shaped outputs: the k best (class, score) per sample."""
        out = {}
        for name, value in self.outputs.items():
            if is_classifier(value):
                flat = value.reshape(value.shape[0], -1).astype(np.float64)
                order = np.argsort(-flat, axis=1)[:, :k]
                out[name] = [[(int(c), float(row[c])) for c in idx] for row, idx in zip(flat, order)]
        return out


def run(engine: str | os.PathLike[str], inputs: str | os.PathLike[str] | None = None,
        preprocess: object = None, output: str | os.PathLike[str] | None = None, *, random: int | None = None,
        limit: int | None = None, seed: int = 0) -> RunResult:
    """Run ``engine`` on every sample of ``inputs``; write the outputs to ``output`` (``.npz``) if given."""
    runner, described = open_runner(engine)
    notes: list[str] = []
    samples = load_samples(inputs, runner.inputs, preprocess, random, None, limit, seed, notes)  # type: ignore[attr-defined]
    outputs = run_samples(runner, samples.feeds)
    if output is not None:
        from trtforge._files import atomic_path

        with atomic_path(output) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **outputs)  # type: ignore[arg-type]
    return RunResult(outputs, samples, described, notes)
