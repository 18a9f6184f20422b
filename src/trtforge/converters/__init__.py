"""Source framework -> ONNX.

Each source form registers a :class:`Converter`; :func:`convert` detects the form from
the path (or takes ``source_format``) and hands over.  The registry refuses duplicates.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trtforge.errors import TrtforgeError

DEFAULT_OPSET = 17
"""Opset 17: the newest that tf2onnx and torch.onnx both emit well, fully parsed by
TensorRT 10/11 and TensorRT-RTX (LayerNormalization is native from 17), and run by
every ONNX Runtime release we support."""


@dataclass(frozen=True)
class ConvertOptions:
    opset: int = DEFAULT_OPSET
    inputs_as_nchw: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 7 <= self.opset <= 23:
            raise TrtforgeError(f"--opset {self.opset} is out of range; use 13..21 (default {DEFAULT_OPSET})")


@dataclass(frozen=True)
class Converter:
    name: str
    detect: Callable[[Path], bool]
    run: Callable[[Path, Path, ConvertOptions], None]
    """Writes the ONNX model for ``source`` to the given (temporary) output path."""


_CONVERTERS: dict[str, Converter] = {}


def register(converter: Converter) -> Converter:
    if converter.name in _CONVERTERS:
        raise ValueError(f"converter {converter.name!r} is already registered")
    _CONVERTERS[converter.name] = converter
    return converter


def converters() -> dict[str, Converter]:
    _load_builtin()
    return dict(_CONVERTERS)


def _load_builtin() -> None:
    if not _CONVERTERS:
        from trtforge.converters import tensorflow  # noqa: F401  (registers on import)


def detect_format(source: Path) -> str:
    for converter in converters().values():
        if converter.detect(source):
            return converter.name
    raise TrtforgeError(
        f"cannot tell what kind of model {source} is; supported: "
        f"{', '.join(converters())} (pass --from to say which)"
    )


def convert(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    options: ConvertOptions | None = None,
    source_format: str | None = None,
) -> Path:
    """Convert ``source`` to an ONNX model at ``output`` and return its path."""
    from trtforge._files import atomic_path

    src = Path(source)
    if not src.exists():
        raise TrtforgeError(f"model to convert not found: {src}")
    name = source_format or detect_format(src)
    table = converters()
    if name not in table:
        raise TrtforgeError(f"unknown source format {name!r}; expected one of: {', '.join(table)}")
    with atomic_path(output) as tmp:
        table[name].run(src, tmp, options or ConvertOptions())
    return Path(output)
