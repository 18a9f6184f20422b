"""PyTorch -> ONNX through torch.onnx: a ``.pt2`` ExportedProgram, or ``module.py:factory``.

The export uses torch's TorchScript-based exporter (``dynamo=False``): it needs nothing
beyond torch, and it takes the batch as a dynamic axis when ``--batch dynamic`` asks.  A
``.pt2`` records its input names and shapes; ``module.py:factory`` (a function returning
the ``nn.Module``) needs ``--input-shape NAME:1x3x224x224`` for each input.  A pickled
``.pt``/``.pth`` is refused: it holds weights (or TorchScript) without the code to rebuild
the model here.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from trtforge.converters.base import (
    Converter,
    ConvertOptions,
    Reference,
    TensorArg,
    import_file,
    is_module_factory,
    layout_names,
    register,
    with_batch,
)
from trtforge.errors import TrtforgeError, require

TORCHSCRIPT_MAX_OPSET = 20  # torch.onnx's TorchScript exporter
_PROBE = {0: 2}  # example size for a symbolic dim of a .pt2, by axis; other axes get 16


def _is_torch(path: Path) -> bool:
    return path.suffix.lower() in (".pt2", ".pt", ".pth") or is_module_factory(str(path))


class _NeedsPickle(Exception):
    pass


def _refuse_pickle(*_args: Any, **_kwargs: Any) -> Any:
    raise _NeedsPickle()


@contextlib.contextmanager
def _never_unpickle(torch: Any) -> Iterator[None]:
    """While loading a ``.pt2``: every ``torch.load`` is ``weights_only=True``; raw unpickling raises.

    ``torch.export.load`` falls back to ``weights_only=False`` (and ``pickle.loads`` for opaque
    constants) when a member is not plain tensors, which runs whatever the pickle says.
    """
    from torch.export.pt2_archive import _package

    real_load, real_pickle, real_obj = torch.load, _package.pickle, torch._C._pickle_load_obj

    def safe_load(f: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        try:
            return real_load(f, *args, **kwargs)
        except Exception as exc:
            if "weights only" in str(exc).lower() or "weights_only" in str(exc):
                raise _NeedsPickle() from None
            raise

    torch.load = safe_load
    _package.pickle = type("_NoPickle", (), {"loads": staticmethod(_refuse_pickle)})  # type: ignore[assignment]
    torch._C._pickle_load_obj = _refuse_pickle
    try:
        yield
    finally:
        torch.load, _package.pickle, torch._C._pickle_load_obj = real_load, real_pickle, real_obj


def _load_program(torch: Any, source: Path) -> Any:
    try:
        with _never_unpickle(torch), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols: noise here
            return torch.export.load(str(source))
    except _NeedsPickle:
        raise TrtforgeError(
            f"{source} holds pickled Python objects beyond plain tensors, and trtforge never unpickles "
            f"(a pickle can run any code); re-export it with torch.export.save from a model whose "
            f"weights, constants and example inputs are tensors, or pass FILE.py:FACTORY with --input-shape"
        ) from None
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrtforgeError(f"{source} is not a torch.export ExportedProgram (.pt2): {first}") from None


def _from_exported(torch: Any, source: Path) -> tuple[Any, list[TensorArg], set[str]]:
    """The program's module, its inputs, and the inputs whose batch it exported as symbolic."""
    program = _load_program(torch, source)
    user = set(program.graph_signature.user_inputs)
    args, dynamic = [], set()
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user:
            value = node.meta.get("val")
            dims: list[int | None] = []
            for d in getattr(value, "shape", ()):
                dims.append(None if isinstance(d, torch.SymInt) else int(d))
            if dims and dims[0] is None:
                dynamic.add(node.name)
            dtype = str(getattr(value, "dtype", "torch.float32")).replace("torch.", "")
            args.append(TensorArg(node.name, tuple(dims), dtype))
    return program.module(), args, dynamic


def _from_factory(torch: Any, source: Path, options: ConvertOptions) -> tuple[Any, list[TensorArg]]:
    file, _, factory = str(source).rpartition(":")
    module = import_file(Path(file), "model module")
    make = getattr(module, factory, None)
    if not callable(make):
        raise TrtforgeError(f"{file} has no function {factory!r} (expected FILE.py:FACTORY returning the nn.Module)")
    if not options.input_shapes or any(a.shape is None for a in options.input_shapes):
        raise TrtforgeError(
            f"{source}: pass --input-shape NAME:DIMS for each input (e.g. input:1x3x224x224), "
            f"since a Python module does not record its input shapes"
        )
    try:
        model = make()
    except Exception as exc:
        raise TrtforgeError(f"{source} raised {type(exc).__name__}: {exc}") from None
    if not isinstance(model, torch.nn.Module):
        raise TrtforgeError(f"{source} returned a {type(model).__name__}, not a torch.nn.Module")
    return model, list(options.input_shapes)


def _override(args: list[TensorArg], options: ConvertOptions) -> list[TensorArg]:
    given = {a.name: a for a in options.input_shapes}
    unknown = set(given) - {a.name for a in args}
    if unknown:
        raise TrtforgeError(
            f"--input-shape names {sorted(unknown)[0]!r}, which is not an input; "
            f"the model's inputs are: {', '.join(a.name for a in args)}"
        )
    return [
        TensorArg(a.name, given[a.name].shape or a.shape, given[a.name].dtype or a.dtype) if a.name in given else a
        for a in args
    ]


def _example(torch: Any, arg: TensorArg, options: ConvertOptions) -> Any:
    shape = [
        d if d is not None else _PROBE.get(axis, 16) for axis, d in enumerate(with_batch(arg.shape or (), options))
    ]
    dtype = getattr(torch, arg.dtype or "float32", None)
    if not isinstance(dtype, torch.dtype):
        raise TrtforgeError(f"input {arg.name!r}: unknown dtype {arg.dtype!r} (use float32, float16, int64, ...)")
    if dtype.is_floating_point:
        return torch.rand(shape, dtype=dtype)
    return torch.randint(0, 8, shape, dtype=dtype)


def _flatten(torch: Any, value: Any) -> list[Any]:
    from torch.utils._pytree import tree_flatten

    return [v for v in tree_flatten(value)[0] if isinstance(v, torch.Tensor)]


def convert_torch(source: Path, output: Path, options: ConvertOptions) -> Reference:
    if source.suffix.lower() in (".pt", ".pth"):
        raise TrtforgeError(
            f"{source} is a pickled PyTorch file (weights or TorchScript) without the code that builds the model; "
            f"save an ExportedProgram instead: torch.export.save(torch.export.export(model.eval(), (example,)), "
            f"'model.pt2'), or pass FILE.py:FACTORY (a function that builds the model and loads the weights) "
            f"with --input-shape NAME:DIMS"
        )
    torch = require("torch", "torch", "Converting a PyTorch model")
    exported = source.suffix.lower() == ".pt2"
    dynamic: set[str] = set()
    if exported:
        module, args, dynamic = _from_exported(torch, source)
        args = _override(args, options)
    else:
        module, args = _from_factory(torch, source, options)
        module.eval()
    nchw_in = layout_names(options.inputs_as_nchw, {a.name: len(a.shape or ()) for a in args}, "input")
    examples = [_example(torch, a, options) for a in args]
    try:
        with torch.no_grad():
            outputs = _flatten(torch, module(*examples))
    except Exception as exc:
        at = ", ".join(f"{a.name}:{'x'.join(map(str, e.shape))}" for a, e in zip(args, examples))
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        hint = (
            " (an ExportedProgram takes only the shapes it was exported for: re-export it with "
            "dynamic_shapes, or leave --batch out)"
            if exported
            else ""
        )
        raise TrtforgeError(
            f"{source} does not run at {at}: {lines[0] if lines else type(exc).__name__}{hint}"
        ) from None
    in_names = [a.name for a in args]
    out_names = ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))]
    nchw_out = layout_names(options.outputs_as_nchw, {n: o.dim() for n, o in zip(out_names, outputs)}, "output")
    batch_dynamic = options.batch.is_dynamic if options.batch is not None else bool(dynamic)
    ranked = [a.name for a in args if a.shape] + [n for n, o in zip(out_names, outputs) if o.dim()]
    axes = {n: {0: "batch"} for n in ranked} if batch_dynamic else None
    _export(torch, source, module, examples, output, options, in_names, out_names, axes, exported)
    if nchw_in or nchw_out:
        _transpose(output, nchw_in, nchw_out)

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            result = _flatten(torch, module(*[torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in in_names]))
        return {n: r.detach().numpy() for n, r in zip(out_names, result)}

    return Reference("PyTorch", run, tuple(nchw_in), tuple(nchw_out))


def _export(
    torch: Any,
    source: Path,
    module: Any,
    examples: list[Any],
    output: Path,
    options: ConvertOptions,
    in_names: list[str],
    out_names: list[str],
    axes: dict[str, dict[int, str]] | None,
    exported: bool,
) -> None:
    # An ExportedProgram's module cannot switch train/eval mode: keep it as it is.
    mode = torch.onnx.TrainingMode.PRESERVE if exported else torch.onnx.TrainingMode.EVAL
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                tuple(examples),
                str(output),
                dynamo=False,
                opset_version=options.opset,
                input_names=in_names,
                output_names=out_names,
                dynamic_axes=axes,
                training=mode,
            )
    except Exception as exc:
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        raise TrtforgeError(
            f"torch.onnx could not export {source}: {lines[0] if lines else type(exc).__name__}"
        ) from None


def _transpose(output: Path, inputs: list[str], outputs: list[str]) -> None:
    import onnx

    from trtforge.converters.edits import transpose_boundary

    model = onnx.load(str(output))
    transpose_boundary(model, inputs, outputs)
    onnx.checker.check_model(model)
    onnx.save(model, str(output))


register(Converter("torch", _is_torch, convert_torch, TORCHSCRIPT_MAX_OPSET))
