"""Which axis of each input is the batch: axis 0 for a batch of images, none for a scalar.

Not every input is a batch of samples.  A stateful audio model takes ``input [N, 512]``,
``state [2, N, 128]`` (the batch on axis 1) and ``sr`` (a scalar sample rate).  Stages that
split, join or resize the batch (reshape, run, compare, calibration) ask :func:`batch_axes`
instead of assuming axis 0, and leave inputs without a batch axis whole.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from trtforge.config import TensorSpec


def _dynamic(dim: int | str) -> bool:
    return not isinstance(dim, int) or dim < 1


def _unnamed(dim: int | str) -> bool:
    """A dim the exporter left without a name (trtforge reads it as ``dimN``; ORT writes ``unk__N``)."""
    return not isinstance(dim, str) or re.fullmatch(r"dim\d+|unk__\d+|", dim) is not None


def _model_batch(specs: Sequence[TensorSpec]) -> int | str | None:
    """The batch most inputs lead with: a dynamic dim's name, else the static size (None: no inputs)."""
    firsts = [s.shape[0] for s in specs if s.shape]
    named = [d for d in firsts if _dynamic(d)]
    if named:
        return named[0]
    return min((d for d in firsts if isinstance(d, int)), default=None)


def batch_axis(spec: TensorSpec, model_batch: int | str | None) -> int | None:
    """The batch axis of one input, given the batch the model's inputs lead with."""
    if not spec.shape:
        return None
    first = spec.shape[0]
    if _dynamic(first) or model_batch is None or first == model_batch:
        return 0
    if _dynamic(model_batch):
        # A fixed leading dim (a state's layer count): the batch is the dim named like the
        # others' batch; when the exporter left dims unnamed, the first unnamed one; else none.
        same = [a for a, d in enumerate(spec.shape) if d == model_batch]
        unnamed = [a for a, d in enumerate(spec.shape) if _dynamic(d) and _unnamed(d)]
        found = same or (unnamed if _unnamed(model_batch) else [])
        return found[0] if found else None
    same = [a for a, d in enumerate(spec.shape) if d == model_batch]
    return same[0] if same else None


def batch_axes(specs: Sequence[TensorSpec]) -> dict[str, int | None]:
    """``{input name: batch axis or None}`` for a model's inputs."""
    model_batch = _model_batch(specs)
    return {s.name: batch_axis(s, model_batch) for s in specs}
