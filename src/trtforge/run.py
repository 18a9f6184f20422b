"""``run``: an engine (or an ONNX model) on real inputs, many samples at a time.

Samples come from a ``.npz``/``.npy`` (first axis = samples), an image folder through a
``--preprocess`` spec (the same typed spec as calibration, so the same pixels), or seeded
random values.  They are fed in chunks the engine accepts: its fixed batch (the last chunk
padded by repeating its last sample, whose outputs are dropped) or, for a dynamic batch,
up to :data:`MAX_CHUNK` at a time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trtforge.config import TensorSpec
from trtforge.data import Samples, load_samples
from trtforge.data.arrays import is_classifier
from trtforge.data.preprocess import Preprocess
from trtforge.data.samples import output_axis, sample_count, take
from trtforge.errors import TrtforgeError
from trtforge.graph.batch import batch_axes

if TYPE_CHECKING:
    from trtforge.backends.base import Runner
    from trtforge.converters import ConvertOptions

MAX_CHUNK = 64


class SourceRunner:
    """A source model (SavedModel, Keras, PyTorch...) run by its own framework, fed like its ONNX.

    The converter that ``trtforge convert`` uses runs once into a scratch file, which gives the
    ONNX names, shapes and layouts; ``infer`` takes and returns arrays keyed and laid out as the
    converted model's (inputs asked for as NCHW are transposed to the source's NHWC and back).
    """

    def __init__(self, path: Path, options: ConvertOptions | None = None, source_format: str | None = None) -> None:
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
        return {
            o.name: (
                np.asarray(raw[o.name]).transpose(0, 3, 1, 2) if o.name in ref.nchw_outputs else np.asarray(raw[o.name])
            )
            for o in self.outputs
        }


def open_runner(
    path: str | os.PathLike[str], source_options: ConvertOptions | None = None, source_format: str | None = None
) -> tuple[Runner, str]:
    """A trtforge engine (verified against its manifest), an ONNX model run in FP32 by ONNX Runtime,
    or a source model run by its framework (:class:`SourceRunner`, with ``source_options``:
    a ConvertOptions saying e.g. which inputs the ONNX takes as NCHW)."""
    from trtforge.engine import kind_of

    p = Path(path)
    kind = "source" if source_format else kind_of(p)
    if kind == "onnx":
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
    if kind == "source":
        if not p.exists():
            raise TrtforgeError(f"model to compare against not found: {p}")
        runner = SourceRunner(p, source_options, source_format)
        return runner, f"{p} ({runner.framework}, the source model)"
    from trtforge.build import load_with_manifest

    engine, manifest = load_with_manifest(p)
    return engine, f"{p} ({manifest.backend} {manifest.precision} engine)"


def _chunk_size(specs: Sequence[TensorSpec], axes: Mapping[str, int | None]) -> int | None:
    """The engine's fixed batch, or None when the batch is dynamic (or no input has one)."""
    for spec in specs:
        axis = axes.get(spec.name)
        if axis is not None:
            dim = spec.shape[axis]
            return int(dim) if isinstance(dim, int) and dim > 0 else None
    return None


def run_samples(runner: Runner, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every sample through ``runner``, in chunks it accepts, each input cut along its own batch
    axis; outputs by name, joined along theirs (first axis for images, axis 1 for a state)."""
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
        chunk = {k: take(v, axes.get(k, 0), index).astype(dtypes.get(k, v.dtype), copy=False) for k, v in feeds.items()}
        out = runner.infer(chunk)  # type: ignore[attr-defined]
        for name, value in out.items():
            value = np.asarray(value)
            axis = out_axes.setdefault(name, output_axis(value, len(index)))
            results.setdefault(name, []).append(take(value, axis, slice(0, real)))
    return {k: v[0] if out_axes[k] is None else np.concatenate(v, axis=out_axes[k]) for k, v in results.items()}


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


def run(
    engine: str | os.PathLike[str],
    inputs: str | os.PathLike[str] | None = None,
    preprocess: Preprocess | None = None,
    output: str | os.PathLike[str] | None = None,
    *,
    random: int | None = None,
    limit: int | None = None,
    seed: int = 0,
) -> RunResult:
    """Run ``engine`` on every sample of ``inputs``; write the outputs to ``output`` (``.npz``) if given."""
    from trtforge._files import check_outputs

    check_outputs([("-o", output)], [engine, inputs])
    runner, described = open_runner(engine)
    notes: list[str] = []
    samples = load_samples(inputs, runner.inputs, preprocess, random, None, limit, seed, notes)  # type: ignore[attr-defined]
    outputs = run_samples(runner, samples.feeds)
    if output is not None:
        from trtforge._files import atomic_path

        with atomic_path(output) as tmp, open(tmp, "wb") as f:
            np.savez(f, **outputs)  # type: ignore[arg-type]
    return RunResult(outputs, samples, described, notes)
