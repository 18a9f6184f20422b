"""Input shapes as values: ``--shapes`` for reshaping, and min/opt/max ranges for builders.

Both are parsed once, at the CLI edge, from trtexec's syntax::

    name:1x3x224x224,other:1x10          # one shape per input
    'input:0':1x3x224x224                # quoted names may hold ':' (and ',')
    input:0:1x3x224x224                  # unquoted: the last ':' separates name and dims

:class:`InputShapes` (``--shapes``) allows a dynamic dimension as ``-1`` or a word
(``batchxsx3`` is not a word: dims are separated by ``x``, so ``Nx3x224x224`` names the
first dim ``N``).  :class:`ShapeRange` holds one optimisation profile (min/opt/max per
input); several profiles are a ``tuple[ShapeRange, ...]`` (see :func:`parse_profiles`).
Every malformed string raises :class:`~trtforge.errors.TrtforgeError`, nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from trtforge.config import TensorSpec
from trtforge.errors import TrtforgeError

MAX_DIM = 2**31 - 1  # TensorRT dimensions are int32
_INT = re.compile(r"[0-9]+")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Dim = int | str
"""A dimension: an int when static, a str naming a dynamic dimension."""


def split_items(text: str, what: str) -> list[tuple[str, str]]:
    """``name:dims,name2:dims`` -> ``[(name, dims), ...]``; names may be single-quoted."""
    if not isinstance(text, str) or not text.strip():
        raise TrtforgeError(f"empty {what}; expected NAME:DIMS[,NAME:DIMS...], e.g. input:1x3x224x224")
    items: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise TrtforgeError(f"bad {what} {text!r}: unclosed quote in a name")
            name = text[i + 1 : end]
            if end + 1 >= n or text[end + 1] != ":":
                raise TrtforgeError(f"bad {what} {text!r}: expected ':' after the quoted name '{name}'")
            comma = text.find(",", end + 2)
            dims = text[end + 2 : n if comma < 0 else comma]
        else:
            comma = text.find(",", i)
            item = text[i : n if comma < 0 else comma]
            name, sep, dims = item.rpartition(":")
            if not sep:
                raise TrtforgeError(f"bad {what} {text!r}: item {item!r} needs NAME:DIMS, e.g. input:1x3x224x224")
        if not name.strip():
            raise TrtforgeError(f"bad {what} {text!r}: an item has an empty input name")
        items.append((name.strip() if text[i] != "'" else name, dims.strip()))
        if comma < 0:
            break
        i = comma + 1
        if i >= n:
            raise TrtforgeError(f"bad {what} {text!r}: it ends with ','")
    names = [name for name, _ in items]
    dupes = sorted({x for x in names if names.count(x) > 1})
    if dupes:
        raise TrtforgeError(f"bad {what} {text!r}: input {dupes[0]!r} is given twice")
    return items


def _dim(token: str, item: str, what: str, dynamic: bool) -> Dim:
    if _INT.fullmatch(token):
        value = int(token) if len(token) <= 12 else MAX_DIM + 1
        if 1 <= value <= MAX_DIM:
            return value
        raise TrtforgeError(f"bad {what} {item!r}: dimension {token} must be between 1 and {MAX_DIM}")
    if dynamic and (token == "-1" or _WORD.fullmatch(token)):
        return -1 if token == "-1" else token
    allowed = "a positive integer, -1 or a name" if dynamic else "a positive integer"
    raise TrtforgeError(f"bad {what} {item!r}: dimension {token!r} is not {allowed} (dims are separated by 'x')")


def parse_dims(text: str, item: str, what: str, dynamic: bool = False) -> tuple[Dim, ...]:
    if not text:
        raise TrtforgeError(f"bad {what} {item!r}: no dimensions after ':' (e.g. input:1x3x224x224)")
    return tuple(_dim(t.strip(), item, what, dynamic) for t in text.split("x"))


def _resolve(given: Sequence[str], inputs: Sequence[TensorSpec], what: str) -> dict[str, str]:
    from trtforge.graph.model import resolve_input_name

    names = [t.name for t in inputs]
    resolved = {name: resolve_input_name(name, names) for name in given}
    if len(set(resolved.values())) < len(resolved):
        twice = sorted(n for n in set(resolved.values()) if list(resolved.values()).count(n) > 1)
        raise TrtforgeError(f"{what} names input {twice[0]!r} twice (with and without ':0')")
    return resolved


@dataclass(frozen=True)
class InputShapes:
    """``--shapes``: a full shape per named input; ``-1`` or a str is a dynamic dimension."""

    shapes: tuple[tuple[str, tuple[Dim, ...]], ...]

    @classmethod
    def parse(cls, text: str) -> InputShapes:
        what = "--shapes"
        return cls(
            tuple(
                (name, parse_dims(dims, f"{name}:{dims}", what, dynamic=True)) for name, dims in split_items(text, what)
            )
        )

    def as_dict(self) -> dict[str, tuple[Dim, ...]]:
        return dict(self.shapes)

    def validate(self, inputs: Sequence[TensorSpec]) -> InputShapes:
        """Check names and ranks against the model; returns the value with the model's exact names."""
        ranks = {t.name: len(t.shape) for t in inputs}
        names = _resolve([n for n, _ in self.shapes], inputs, "--shapes")
        resolved = []
        for name, dims in self.shapes:
            real = names[name]
            if len(dims) != ranks[real]:
                raise TrtforgeError(
                    f"--shapes gives {name!r} {len(dims)} dimensions, but the model's input has "
                    f"{ranks[real]} "
                    f"({'x'.join(str(d) for d in next(t.shape for t in inputs if t.name == real)) or 'scalar'})"
                )
            resolved.append((real, dims))
        return InputShapes(tuple(resolved))


@dataclass(frozen=True)
class InputRange:
    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


@dataclass(frozen=True)
class ShapeRange:
    """One optimisation profile: min, opt and max shape per input.

    ``ShapeRange.parse(min_text, opt_text, max_text)`` reads trtexec's
    ``--minShapes/--optShapes/--maxShapes`` strings; ``.validate(model_inputs)`` checks it
    against the model and returns it with the model's exact input names.
    """

    entries: tuple[InputRange, ...]

    @classmethod
    def parse(cls, min_text: str | None, opt_text: str | None = None, max_text: str | None = None) -> ShapeRange:
        """Any of the three may be ``None``: opt defaults to max (else min), min and max to opt."""
        given = {k: v for k, v in (("min", min_text), ("opt", opt_text), ("max", max_text)) if v is not None}
        if not given:
            raise TrtforgeError("a shape range needs at least one of --min-shapes, --opt-shapes, --max-shapes")
        parsed = {k: _parse_static(v, f"--{k}-shapes") for k, v in given.items()}
        if "opt" not in parsed:
            parsed["opt"] = parsed["max"] if "max" in parsed else parsed["min"]
        parsed.setdefault("min", parsed["opt"])
        parsed.setdefault("max", parsed["opt"])
        names = list(parsed["opt"])
        for kind in ("min", "max"):
            for name in set(names) ^ set(parsed[kind]):
                raise TrtforgeError(
                    f"input {name!r} has a shape in {'--opt-shapes' if name in names else f'--{kind}-shapes'} "
                    f"but not in {f'--{kind}-shapes' if name in names else '--opt-shapes'}; "
                    "give every input in all three"
                )
        entries = tuple(InputRange(n, parsed["min"][n], parsed["opt"][n], parsed["max"][n]) for n in names)
        for e in entries:
            _check_order(e)
        return cls(entries)

    @classmethod
    def fixed(cls, text: str) -> ShapeRange:
        """min = opt = max, from one ``name:dims,...`` string."""
        return cls.parse(None, text, None)

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.entries)

    @property
    def min(self) -> dict[str, tuple[int, ...]]:
        return {e.name: e.min for e in self.entries}

    @property
    def opt(self) -> dict[str, tuple[int, ...]]:
        return {e.name: e.opt for e in self.entries}

    @property
    def max(self) -> dict[str, tuple[int, ...]]:
        return {e.name: e.max for e in self.entries}

    def to_json(self) -> dict[str, dict[str, list[int]]]:
        return {e.name: {"min": list(e.min), "opt": list(e.opt), "max": list(e.max)} for e in self.entries}

    def validate(self, inputs: Sequence[TensorSpec]) -> ShapeRange:
        """Check against the model's inputs: known names, ranks, static dims; every dynamic input covered."""
        names = _resolve(self.inputs, inputs, "shape range")
        specs = {t.name: t for t in inputs}
        entries = []
        for e in self.entries:
            spec = specs[names[e.name]]
            _check_against(e, spec)
            entries.append(InputRange(spec.name, e.min, e.opt, e.max))
        covered = set(names.values())
        for spec in inputs:
            if spec.is_dynamic and spec.name not in covered:
                raise TrtforgeError(
                    f"input {spec.name!r} has dynamic dimensions ({spec.shape_text()}) but no shape in the "
                    f"range; add it to --min-shapes/--opt-shapes/--max-shapes, e.g. {spec.name}:"
                    + "x".join(str(d) if isinstance(d, int) and d > 0 else "1" for d in spec.shape)
                )
        return ShapeRange(tuple(entries))


def _parse_static(text: str, what: str) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for name, dims in split_items(text, what):
        out[name] = tuple(int(d) for d in parse_dims(dims, f"{name}:{dims}", what))
    return out


def _check_order(e: InputRange) -> None:
    if not len(e.min) == len(e.opt) == len(e.max):
        raise TrtforgeError(
            f"input {e.name!r}: min, opt and max shapes have different ranks ({len(e.min)}, {len(e.opt)}, {len(e.max)})"
        )
    for axis, (lo, mid, hi) in enumerate(zip(e.min, e.opt, e.max)):
        if not lo <= mid <= hi:
            raise TrtforgeError(
                f"input {e.name!r}: dimension {axis} must satisfy min <= opt <= max, got {lo}, {mid}, {hi}"
            )


def _check_against(e: InputRange, spec: TensorSpec) -> None:
    if len(e.opt) != len(spec.shape):
        raise TrtforgeError(
            f"input {spec.name!r} has {len(spec.shape)} dimensions ({spec.shape_text()}), "
            f"but its range gives {len(e.opt)} ({'x'.join(map(str, e.opt))})"
        )
    for axis, dim in enumerate(spec.shape):
        if isinstance(dim, int) and dim > 0 and not e.min[axis] == e.opt[axis] == e.max[axis] == dim:
            raise TrtforgeError(
                f"input {spec.name!r}: dimension {axis} is fixed at {dim} in the model ({spec.shape_text()}), "
                f"but the range gives {e.min[axis]}..{e.max[axis]}; use {dim} there, or make the dimension "
                "dynamic first (trtforge reshape --shapes)"
            )


def parse_profiles(
    mins: Sequence[str],
    opts: Sequence[str],
    maxs: Sequence[str],
) -> tuple[ShapeRange, ...]:
    """Several profiles, trtexec style: the i-th ``--min/--opt/--max-shapes`` form profile i."""
    count = max(len(mins), len(opts), len(maxs))
    lengths = {len(x) for x in (mins, opts, maxs) if x}
    if len(lengths) > 1:
        raise TrtforgeError(
            f"profiles need the same number of --min-shapes, --opt-shapes and --max-shapes "
            f"(or none of a kind); got {len(mins)}, {len(opts)} and {len(maxs)}"
        )

    def at(seq: Sequence[str], i: int) -> str | None:
        return seq[i] if seq else None

    return tuple(ShapeRange.parse(at(mins, i), at(opts, i), at(maxs, i)) for i in range(count))


def validate_profiles(profiles: Sequence[ShapeRange], inputs: Sequence[TensorSpec]) -> tuple[ShapeRange, ...]:
    checked = []
    for i, p in enumerate(profiles):
        try:
            checked.append(p.validate(inputs))
        except TrtforgeError as exc:
            raise TrtforgeError(f"profile {i}: {exc}" if len(profiles) > 1 else str(exc)) from None
    return tuple(checked)


def as_mapping(shapes: Mapping[str, tuple[Dim, ...]] | InputShapes | str) -> dict[str, tuple[Dim, ...]]:
    """Accept ``--shapes`` text, an :class:`InputShapes`, or a plain dict."""
    if isinstance(shapes, str):
        return InputShapes.parse(shapes).as_dict()
    if isinstance(shapes, InputShapes):
        return shapes.as_dict()
    return {str(k): tuple(v) for k, v in shapes.items()}
