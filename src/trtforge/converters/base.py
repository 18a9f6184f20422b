"""What every converter shares: the options, the registry, the reference contract, small helpers.

A leaf of :mod:`trtforge.converters`: the framework modules import it, and :mod:`trtforge.converters`
(which loads them) re-exports it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trtforge.errors import TrtforgeError
from trtforge.numbers import LARGEST_DIM

if TYPE_CHECKING:
    import numpy as np

    from trtforge.graph.shapes import Batch
    from trtforge.graph.verify import OutputCheck

DEFAULT_OPSET = 17
"""Opset 17: the newest that tf2onnx 1.17 and torch's exporter both emit well, inside the
range TensorRT 10/11 and TensorRT-RTX parse (LayerNormalization is native from 17, which
TensorRT fuses), and run by every ONNX Runtime release we support."""

FORMS = ("savedmodel", "keras", "h5", "pb", "tflite", "checkpoint", "torch")


@dataclass(frozen=True)
class TensorArg:
    """A tensor named on the command line, with an optional shape and dtype.

    ``x``, ``x:0``, ``x:0[-1,6]``, ``x:1x3x224x224``, ``ids:1x16:int64``; ``-1`` or ``?`` is an
    unknown dim (``None``).
    """

    name: str
    shape: tuple[int | None, ...] | None = None
    dtype: str | None = None

    @classmethod
    def parse(cls, text: str) -> TensorArg:
        text = text.strip()
        bracket = re.fullmatch(r"(.+?)\[([-?\d,\s]*)\]", text)
        if bracket:
            return cls(bracket.group(1), _dims(bracket.group(2).split(","), text))
        parts = text.split(":")
        dtype = None
        if len(parts) > 2 and re.fullmatch(r"[a-z]+\d*", parts[-1]) and _is_shape(parts[-2]):
            dtype = parts.pop()
        if len(parts) > 1 and _is_shape(parts[-1]):
            return cls(":".join(parts[:-1]), _dims(parts[-1].split("x"), text), dtype)
        return cls(text)

    def __str__(self) -> str:
        if self.shape is None:
            return self.name
        shape = "x".join("-1" if d is None else str(d) for d in self.shape)
        return f"{self.name}:{shape}" + (f":{self.dtype}" if self.dtype else "")


def _is_shape(text: str) -> bool:
    # A lone number after ':' is TensorFlow's output index ("x:0"), not a rank-1 shape.
    return "x" in text and bool(re.fullmatch(r"(-1|\?|\d+)(x(-1|\?|\d+))+", text))


def _dims(items: Iterable[str], text: str) -> tuple[int | None, ...]:
    dims: list[int | None] = []
    for item in (i.strip() for i in items):
        if item in ("-1", "?", ""):
            dims.append(None)
        elif item.isascii() and item.isdigit() and len(item) <= 10 and 0 < int(item) <= LARGEST_DIM:
            dims.append(int(item))
        else:
            raise TrtforgeError(f"bad shape in {text!r}: expected dims like 1x3x224x224 (-1 for unknown)")
    return tuple(dims)


def parse_names(value: str | Iterable[str]) -> tuple[str, ...]:
    """``a,b`` (or a list) -> ('a', 'b')."""
    items = value.split(",") if isinstance(value, str) else value
    return tuple(str(n).strip() for n in items if str(n).strip())


def parse_renames(value: str | Mapping[str, str] | Iterable[Any]) -> tuple[tuple[str, str], ...]:
    """``old=new,...`` (or a dict) -> pairs; a bare ``new`` renames the next tensor in order."""
    if isinstance(value, Mapping):
        return tuple((str(k), str(v)) for k, v in value.items())
    pairs = []
    for item in value.split(",") if isinstance(value, str) else value:
        if isinstance(item, str) and not item.strip():
            continue
        if isinstance(item, str):
            old, _, new = item.strip().rpartition("=")  # no '=': the next name, in order
            if not new:
                raise TrtforgeError(f"bad rename {item!r}: expected OLD=NEW or NEW (comma-separated)")
            pairs.append((old, new))
        else:
            old, new = item
            pairs.append((str(old), str(new)))
    return tuple(pairs)


def parse_tensor_args(value: str | Iterable[str | TensorArg]) -> tuple[TensorArg, ...]:
    """``x:0[-1,6],y:1x4`` (or a list) -> TensorArgs; commas inside brackets stay."""
    items = re.split(r",(?![^\[]*\])", value) if isinstance(value, str) else value
    return tuple(i if isinstance(i, TensorArg) else TensorArg.parse(i) for i in items if str(i).strip())


@dataclass(frozen=True)
class ConvertOptions:
    """Everything ``trtforge convert`` takes; lists may be given as comma-separated text."""

    opset: int = DEFAULT_OPSET
    inputs_as_nchw: tuple[str, ...] = ()
    outputs_as_nchw: tuple[str, ...] = ()
    batch: Batch | None = None
    """Set at export time: N, or dynamic (None keeps what the source declares); an int or
    'dynamic' is accepted too, as are comma-separated text for the name lists."""
    rename_inputs: tuple[tuple[str, str], ...] = ()
    rename_outputs: tuple[tuple[str, str], ...] = ()
    tag: str | None = None
    """SavedModel tag set, comma-separated (default 'serve')."""
    signature: str | None = None
    """SavedModel signature (default 'serving_default', else the only one)."""
    custom_objects: Path | None = None
    """A Python file defining the custom Keras classes/functions the model uses."""
    inputs: tuple[TensorArg, ...] = ()
    """Frozen graph / TF1 checkpoint inputs (NAME[:SHAPE])."""
    outputs: tuple[str, ...] = ()
    input_shapes: tuple[TensorArg, ...] = ()
    """PyTorch inputs (NAME:SHAPE[:DTYPE]); optional for a .pt2, which records them."""
    verify: bool = True
    atol: float = 1e-4
    rtol: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        from trtforge.graph.shapes import Batch

        fix = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        if not 13 <= self.opset <= 20:
            raise TrtforgeError(f"--opset {self.opset} is out of range; use 13..20 (default {DEFAULT_OPSET})")
        for name in ("inputs_as_nchw", "outputs_as_nchw", "outputs"):
            fix(name, parse_names(getattr(self, name)))
        for name in ("rename_inputs", "rename_outputs"):
            fix(name, parse_renames(getattr(self, name)))
        for name in ("inputs", "input_shapes"):
            fix(name, parse_tensor_args(getattr(self, name)))
        if self.batch is not None and not isinstance(self.batch, Batch):
            fix("batch", Batch.parse(self.batch))
        if self.custom_objects is not None:
            fix("custom_objects", Path(self.custom_objects))
        if self.atol < 0 or self.rtol < 0:
            raise TrtforgeError(f"--atol {self.atol} / --rtol {self.rtol}: tolerances cannot be negative")

    @property
    def batch_size(self) -> int | None:
        """The batch to export with: N, None for dynamic; only meaningful when ``batch`` is set."""
        return getattr(self.batch, "size", None)

    def cli_args(self) -> list[str]:
        """The ``trtforge convert`` flags that give these options (defaults left out)."""
        words: list[str] = [] if self.opset == DEFAULT_OPSET else ["--opset", str(self.opset)]
        joined = {
            "--inputs-as-nchw": ",".join(self.inputs_as_nchw),
            "--outputs-as-nchw": ",".join(self.outputs_as_nchw),
            "--rename-inputs": ",".join(f"{a}={b}" for a, b in self.rename_inputs),
            "--rename-outputs": ",".join(f"{a}={b}" for a, b in self.rename_outputs),
            "--tag": self.tag or "",
            "--signature": self.signature or "",
            "--custom-objects": str(self.custom_objects or ""),
            "--inputs": ",".join(map(str, self.inputs)),
            "--outputs": ",".join(self.outputs),
            "--input-shape": ",".join(map(str, self.input_shapes)),
            "--batch": str(self.batch) if self.batch is not None else "",
        }
        words += [w for flag, value in joined.items() if value for w in (flag, value)]
        if not self.verify:
            words.append("--no-verify")
        if self.atol != 1e-4:
            words += ["--atol", f"{self.atol:g}"]
        if self.rtol != 1e-3:
            words += ["--rtol", f"{self.rtol:g}"]
        return words


@dataclass(frozen=True)
class Reference:
    """The source model, runnable, to check the converted one against.

    ``run`` takes and returns arrays keyed by the converter's ONNX names, in the source's
    own layout (NHWC where NCHW was asked for); ``nchw_inputs``/``nchw_outputs`` are those
    ONNX names.
    """

    framework: str
    run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
    nchw_inputs: tuple[str, ...] = ()
    nchw_outputs: tuple[str, ...] = ()
    note: str = ""
    """Anything the converter did that the user should know (said before the check)."""
    quantized: str = ""
    """What is quantized in the source ("int8 weights"), whose kernels then differ from float math."""
    spread: Callable[[dict[str, np.ndarray]], dict[str, float]] | None = None
    """The source's own disagreement with itself per output (e.g. TFLite's default against its
    reference kernels): the conversion check tolerates twice that."""


@dataclass(frozen=True)
class Converter:
    name: str
    detect: Callable[[Path], bool]
    run: Callable[[Path, Path, ConvertOptions], Reference]
    """Writes the ONNX model for ``source`` to the given (temporary) path; returns the source, runnable."""
    max_opset: int = 20
    """The newest opset the underlying exporter emits."""


@dataclass(frozen=True)
class Conversion:
    """What :func:`convert` did: the file written (a path-like), the form, and the check."""

    path: Path
    form: str
    framework: str = ""
    checks: tuple[OutputCheck, ...] = ()
    note: str = ""
    verified: bool = False

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


_CONVERTERS: dict[str, Converter] = {}


def register(converter: Converter) -> Converter:
    if converter.name in _CONVERTERS:
        raise ValueError(f"converter {converter.name!r} is already registered")
    _CONVERTERS[converter.name] = converter
    return converter


def is_module_factory(text: str) -> bool:
    """``module.py:factory`` names a Python file and a function in it that returns the model."""
    return bool(re.fullmatch(r".+\.py:[A-Za-z_]\w*", text))


def layout_names(requested: tuple[str, ...], ranks: Mapping[str, int | None], what: str) -> list[str]:
    """Resolve --inputs-as-nchw/--outputs-as-nchw names (with or without ``:0``); rank 4 only."""
    from trtforge.graph.model import resolve_input_name

    resolved = []
    for name in requested:
        match = resolve_input_name(name, list(ranks), what)
        rank = ranks[match]
        if rank is not None and rank != 4:
            raise TrtforgeError(
                f"--{what}s-as-nchw {name}: {what} {match!r} has rank {rank}; only rank-4 (NHWC image) "
                f"tensors can be transposed to NCHW"
            )
        resolved.append(match)
    return resolved


def with_batch(shape: Iterable[int | None], options: ConvertOptions) -> list[int | None]:
    """``shape`` with axis 0 set by --batch (when given)."""
    dims = list(shape)
    if options.batch is not None and dims:
        dims[0] = options.batch_size
    return dims


def import_file(path: Path, what: str) -> Any:
    """Import a user's Python file as a module, or raise a user error saying why not."""
    import importlib.util
    import sys

    if not path.is_file():
        raise TrtforgeError(f"{what} not found: {path}")
    stem = re.sub(r"\W", "_", path.stem)
    name = f"trtforge_user_{stem}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TrtforgeError(f"{what} {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise TrtforgeError(f"{what} {path} failed to import: {type(exc).__name__}: {exc}") from None
    return module
