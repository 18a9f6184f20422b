"""IO formats in trtexec's syntax: ``fp16:chw``, ``int8:hwc8``, ``fp32:chw+hwc8``.

``--inputIOFormats=spec[,spec...]`` gives one spec per network input, in order (one spec for
all inputs is also accepted here).  A spec is ``type:format[+format...]``.  The type is the
tensor's dtype at the engine boundary; the formats are TensorRT memory layouts the builder may
choose among.  Backends without layouts (ONNX Runtime) honour the dtype and linear layouts only.
"""

from __future__ import annotations

from dataclasses import dataclass

from trtforge.errors import TrtforgeError

# trtexec type word -> numpy dtype name
DTYPES = {
    "fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "int32": "int32", "int64": "int64",
    "int8": "int8", "uint8": "uint8", "bool": "bool", "fp8": "float8e4m3fn",
}
# TensorRT TensorFormat names (trtexec's spelling, lower case).  The linear ones are the plain
# row-major layouts every backend can read.
FORMATS = ("chw", "hwc", "chw2", "chw4", "hwc8", "chw16", "chw32", "dhwc8", "cdhw32", "hwc16",
           "dhwc", "dla_linear", "dla_hwc4")
LINEAR = frozenset({"chw", "dla_linear"})


@dataclass(frozen=True)
class IOFormat:
    """One tensor's boundary dtype (numpy name) and allowed memory formats."""

    dtype: str
    formats: tuple[str, ...] = ("chw",)

    @classmethod
    def parse(cls, text: str) -> IOFormat:
        kind, sep, layouts = text.strip().lower().partition(":")
        if kind not in DTYPES:
            raise TrtforgeError(
                f"bad IO format {text!r}: unknown type {kind!r}; expected one of {', '.join(DTYPES)}"
            )
        formats = tuple(f for f in layouts.split("+") if f) if sep else ("chw",)
        unknown = [f for f in formats if f not in FORMATS]
        if unknown or not formats:
            raise TrtforgeError(
                f"bad IO format {text!r}: unknown format {(unknown or [''])[0]!r}; "
                f"expected one of {', '.join(FORMATS)} (several joined with +)"
            )
        return cls(DTYPES[kind], formats)

    @property
    def linear(self) -> bool:
        return any(f in LINEAR for f in self.formats)

    def __str__(self) -> str:
        word = next(k for k, v in DTYPES.items() if v == self.dtype)
        return f"{word}:{'+'.join(self.formats)}"


def parse_formats(text: str | None) -> tuple[IOFormat, ...]:
    """``"fp16:chw,int8:hwc8"`` -> one IOFormat per spec; empty or None -> ()."""
    if not text:
        return ()
    return tuple(IOFormat.parse(part) for part in text.split(",") if part.strip())


def for_tensors(formats: tuple[IOFormat, ...], names: list[str], what: str) -> dict[str, IOFormat]:
    """Match specs to tensors by position; a single spec applies to every tensor."""
    if not formats:
        return {}
    if len(formats) == 1:
        return {name: formats[0] for name in names}
    if len(formats) != len(names):
        raise TrtforgeError(
            f"{len(formats)} {what} IO formats given for {len(names)} {what}s ({', '.join(names)}); "
            f"give one per {what}, in order, or a single one for all"
        )
    return dict(zip(names, formats))
