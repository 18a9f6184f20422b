"""Source framework -> ONNX, checked against the source framework.

Each source form registers a :class:`Converter` (one module per framework:
:mod:`~trtforge.converters.tensorflow`, :mod:`~trtforge.converters.pytorch`).  A converter
writes the ONNX model and hands back a :class:`Reference`: the source model, runnable.
:func:`convert` then applies the renames, runs both on the same random inputs (transposed
where NCHW was asked for) and refuses to write a model whose outputs differ.  The
registry refuses duplicates.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trtforge.errors import TrtforgeError, VerificationError

if TYPE_CHECKING:
    from trtforge.graph.verify import OutputCheck

from trtforge.converters.base import (  # noqa: F401  (re-exported: the converters API)
    _CONVERTERS,
    DEFAULT_OPSET,
    FORMS,
    Conversion,
    Converter,
    ConvertOptions,
    Reference,
    TensorArg,
    _dims,
    _is_shape,
    import_file,
    is_module_factory,
    layout_names,
    parse_names,
    parse_renames,
    parse_tensor_args,
    register,
    with_batch,
)


def converters() -> dict[str, Converter]:
    _load_builtin()
    return dict(_CONVERTERS)


def _load_builtin() -> None:
    if not _CONVERTERS:
        # Each registers its forms on import, in this order (TensorFlow's first, as the CLI lists them).
        from trtforge.converters import tensorflow  # noqa: F401

        # isort: split
        from trtforge.converters import pytorch  # noqa: F401


KERAS_FORMATS = ("keras", "h5")  # the formats --custom-objects applies to


def detect_format(source: Path) -> str:
    for converter in converters().values():
        if converter.detect(source):
            return converter.name
    if source.suffix.lower() == ".onnx":
        raise TrtforgeError(f"{source} is already an ONNX model: nothing to convert (pass it to reshape/build)")
    raise TrtforgeError(
        f"cannot tell what kind of model {source} is; supported: {', '.join(converters())} (pass --from to say which)"
    )


def check_source(source: Path) -> None:
    """A user error unless ``source`` names something convert can read (a checkpoint by its prefix,
    ``FILE.py:FACTORY`` by its file)."""
    text = str(source)
    if source.exists() or Path(text + ".index").exists():  # a checkpoint is named by its prefix
        return
    if is_module_factory(text):
        module = Path(text.rpartition(":")[0])
        if module.is_file():
            return
        raise TrtforgeError(f"model module not found: {module} (from {text!r}, expected FILE.py:FACTORY)")
    raise TrtforgeError(f"model to convert not found: {source}")


def convert(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    options: ConvertOptions | None = None,
    source_format: str | None = None,
    **overrides: Any,
) -> Conversion:
    """Convert ``source`` to ONNX at ``output``, check it against the source, and say how it went.

    ``overrides`` are :class:`ConvertOptions` fields (``opset=13, batch=1, ...``).  A model
    whose outputs differ from the source's beyond ``atol``/``rtol`` raises
    :class:`~trtforge.errors.VerificationError` and nothing is written.
    """
    from trtforge._files import atomic_path, check_outputs

    module = str(source).rpartition(":")[0] if is_module_factory(str(source)) else None
    given = options.custom_objects if options else overrides.get("custom_objects")
    check_outputs([("-o", output)], [module or source, given])
    options = replace(options or ConvertOptions(), **overrides) if overrides else (options or ConvertOptions())
    src = Path(source)
    check_source(src)
    table = converters()
    name = source_format or detect_format(src)
    if name not in table:
        raise TrtforgeError(f"unknown source format {name!r}; expected one of: {', '.join(table)}")
    if options.custom_objects is not None and name not in KERAS_FORMATS:
        raise TrtforgeError(
            f"--custom-objects is for Keras models (.keras, .h5), but {src} is a {name} source, "
            "which would not use it; drop the flag"
        )
    if options.opset > table[name].max_opset:
        raise TrtforgeError(
            f"--opset {options.opset}: the {name} converter emits opsets up to "
            f"{table[name].max_opset}; use 13..{table[name].max_opset} (default {DEFAULT_OPSET})"
        )
    with atomic_path(output) as tmp, quiet_native_logs():
        reference = table[name].run(src, tmp, options)
        renamed = _rename(tmp, options)
        checks: tuple[OutputCheck, ...] = ()
        if options.verify:
            checks = _check(tmp, reference, renamed, options)
    return Conversion(Path(output), name, reference.framework, checks, reference.note, options.verify)


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Send file descriptor 2 to a temporary file while frameworks run.

    TensorFlow and absl log from C++ at import and on first use, past any Python setting;
    our errors are one line.  The log is replayed if a bug (not a user error) escapes, and
    ``TRTFORGE_VERBOSE=1`` turns this off.
    """
    if os.environ.get("TRTFORGE_VERBOSE"):
        yield
        return
    import sys
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        failed = False
        try:
            yield
        except TrtforgeError:
            raise
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                log.seek(0)
                sys.stderr.write(log.read().decode(errors="replace"))


def _rename(path: Path, options: ConvertOptions) -> dict[str, str]:
    """Apply --rename-inputs/--rename-outputs in place; returns new name -> converter's name."""
    if not options.rename_inputs and not options.rename_outputs:
        return {}
    from trtforge.converters.edits import rename
    from trtforge.graph.model import load, save

    model = load(path)
    renamed = rename(model, options.rename_inputs, options.rename_outputs)
    save(model, path)
    return renamed


def _check(
    path: Path, reference: Reference, renamed: dict[str, str], options: ConvertOptions
) -> tuple[OutputCheck, ...]:
    import numpy as np

    from trtforge.graph.model import graph_outputs, load
    from trtforge.graph.verify import compare_outputs, conversion_feeds, session

    model = load(path)
    feeds = conversion_feeds(model, options.seed)
    try:
        got = dict(zip([o.name for o in graph_outputs(model)], session(model).run(None, feeds)))
    except Exception as exc:
        raise VerificationError(
            f"the converted model does not run in ONNX Runtime ({str(exc).splitlines()[0]}); nothing was written"
        ) from None
    source_feeds = {}
    for name, value in feeds.items():
        original = renamed.get(name, name)
        source_feeds[original] = value.transpose(0, 2, 3, 1) if original in reference.nchw_inputs else value
    try:
        raw = reference.run(source_feeds)
    except TrtforgeError:
        raise
    except Exception as exc:
        at = ", ".join(f"{k}:{'x'.join(map(str, v.shape))}" for k, v in source_feeds.items())
        raise VerificationError(
            f"{reference.framework} could not run the source model at {at} to check the conversion "
            f"({str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}); "
            f"nothing was written (pass --no-verify to keep the unchecked model)"
        ) from None
    expected = {}
    for name in got:
        original = renamed.get(name, name)
        value = np.asarray(raw[original])
        expected[name] = value.transpose(0, 3, 1, 2) if original in reference.nchw_outputs else value
    spread = reference.spread(source_feeds) if reference.spread is not None else {}
    checks = tuple(
        check
        for name in got
        for check in compare_outputs(
            {name: expected[name]},
            {name: got[name]},
            max(options.atol, 2 * spread.get(renamed.get(name, name), 0.0)),
            options.rtol,
        )
    )
    bad = [c for c in checks if not c.ok]
    if bad and reference.quantized:
        raise VerificationError(_quantized_mismatch(bad, expected, reference, spread, options))
    if bad:
        lines = "; ".join(c.describe() for c in bad)
        raise VerificationError(
            f"the converted model disagrees with {reference.framework} beyond atol {options.atol:g} + "
            f"rtol {options.rtol:g}: {lines}; nothing was written. The converter, not your model, is the "
            f"likely cause: try another --opset, or pass --no-verify to keep the model anyway"
        )
    return checks


def _quantized_mismatch(
    bad: list[OutputCheck],
    expected: dict[str, Any],
    reference: Reference,
    spread: dict[str, float],
    options: ConvertOptions,
) -> str:
    """A quantized source against its float conversion: the facts, and no blame without evidence."""
    import numpy as np

    facts = []
    for check in bad:
        step = float(np.abs(np.asarray(expected[check.name])).max()) / 127 or 1.0
        facts.append(f"{check.describe()} ({check.max_abs / step:.1f} int8 steps of its range)")
    measured = max(spread.values(), default=0.0)
    suggest = max(c.max_abs for c in bad) * 1.5
    return (
        f"the converted model differs from {reference.framework} beyond atol {options.atol:g} + rtol "
        f"{options.rtol:g}: {'; '.join(facts)}; the source has {reference.quantized}, which its kernels "
        f"compute in reduced precision while the ONNX model computes in float (the source's own kernels "
        f"differ from each other by {measured:.3g}); nothing was written. If that difference is "
        f"acceptable for a quantized model, pass --atol {suggest:.2g}, or --no-verify"
    )
