"""TensorFlow forms -> ONNX through tf2onnx: SavedModel, Keras (.keras/.h5), frozen .pb,
TFLite, TF1 checkpoint (.meta).  TF2 checkpoints hold no graph and are refused with advice.

TensorFlow is imported only here, and only when one of these forms is converted.  Each
converter returns the source model, runnable (a signature function, the Keras model, a
TF1 session, the TFLite interpreter), so :func:`trtforge.converters.convert` can check
the ONNX model against it.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from trtforge.converters.base import (
    Converter,
    ConvertOptions,
    Reference,
    import_file,
    layout_names,
    register,
    with_batch,
)
from trtforge.errors import TrtforgeError, require

TF2ONNX_MAX_OPSET = 18  # tf2onnx 1.17

_NOT_OUTPUTS = {
    "Const",
    "NoOp",
    "Assert",
    "Placeholder",
    "PlaceholderWithDefault",
    "VarHandleOp",
    "VariableV2",
    "Variable",
    "SaveV2",
    "RestoreV2",
    "Assign",
    "AssignVariableOp",
    "MergeV2Checkpoints",
    "ShardedFilename",
    "StringJoin",
}


def _tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    require("tf2onnx", "tf", "Converting a TensorFlow model")
    tf = require("tensorflow", "tf", "Converting a TensorFlow model")
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    # TensorFlow's notice that tf.lite.Interpreter moves to LiteRT: not the user's concern here.
    warnings.filterwarnings("ignore", message=r"\s*Warning: tf\.lite\.Interpreter is deprecated")
    tf.get_logger().setLevel(logging.ERROR)
    return tf


def _tf2onnx(call: Callable[..., Any], source: Path, **kwargs: Any) -> None:
    """Run a tf2onnx entry point; its failures become one line naming the source."""
    try:
        call(**kwargs)
    except TrtforgeError:
        raise
    except Exception as exc:
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        raise TrtforgeError(
            f"tf2onnx could not convert {source}: {lines[-1] if lines else type(exc).__name__}"
        ) from None


def _tensor(name: str) -> str:
    return name if re.search(r":\d+$", name) else f"{name}:0"


def _plain(name: str) -> str:
    return name[:-2] if name.endswith(":0") else name


def _rank(shape: Any) -> int | None:
    try:
        return None if shape.rank is None else int(shape.rank)
    except AttributeError:
        return None


def _dims(shape: Any) -> list[int | None]:
    return [None if d is None or d < 0 else int(d) for d in shape]


# --- SavedModel ----------------------------------------------------------------------------------


def _is_saved_model(path: Path) -> bool:
    return path.is_dir() and ((path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists())


def _pick_graph(source: Path, options: ConvertOptions) -> tuple[list[str], str, Any]:
    """(tags, signature name, SignatureDef) chosen by --tag/--signature, or a user error listing choices."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    if (source / "saved_model.pb").exists():
        saved.ParseFromString((source / "saved_model.pb").read_bytes())
    else:
        from google.protobuf import text_format

        text_format.Parse((source / "saved_model.pbtxt").read_text(), saved)
    tags = [t.strip() for t in (options.tag or "serve").split(",") if t.strip()]
    graphs = {tuple(sorted(g.meta_info_def.tags)): g for g in saved.meta_graphs}
    graph = graphs.get(tuple(sorted(tags)))
    if graph is None:
        choices = " | ".join(",".join(t) or "''" for t in graphs)
        raise TrtforgeError(
            f"{source} has no graph tagged {','.join(tags)!r}; its tag sets are: {choices} (pass --tag)"
        )
    signatures = {k: v for k, v in graph.signature_def.items() if not k.startswith("__")}
    name = options.signature
    if name is None:
        name = (
            "serving_default"
            if "serving_default" in signatures
            else (next(iter(signatures)) if len(signatures) == 1 else None)
        )
        if name is None:
            raise TrtforgeError(
                f"{source} has several signatures and none is 'serving_default': "
                f"{', '.join(signatures) or 'none'}; pass --signature NAME"
            )
    if name not in signatures:
        raise TrtforgeError(f"{source} has no signature {name!r}; its signatures are: {', '.join(signatures)}")
    return tags, name, signatures[name]


def _proto_rank(info: Any) -> int | None:
    return None if info.tensor_shape.unknown_rank else len(info.tensor_shape.dim)


def convert_saved_model(source: Path, output: Path, options: ConvertOptions) -> Reference:
    if not _is_saved_model(source):
        raise TrtforgeError(f"{source} is not a TensorFlow SavedModel folder (no saved_model.pb in it)")
    tf = _tf()
    from tf2onnx import tf_loader
    from tf2onnx.convert import from_graph_def

    tags, name, signature = _pick_graph(source, options)
    nchw_in = layout_names(options.inputs_as_nchw, {k: _proto_rank(v) for k, v in signature.inputs.items()}, "input")
    nchw_out = layout_names(
        options.outputs_as_nchw, {k: _proto_rank(v) for k, v in signature.outputs.items()}, "output"
    )
    try:
        graph_def, inputs, outputs, renames = tf_loader.from_saved_model(
            str(source), None, None, tag=tags, signatures=[name], return_tensors_to_rename=True
        )
    except Exception as exc:
        raise TrtforgeError(f"TensorFlow could not load {source}: {str(exc).strip().splitlines()[-1]}") from None
    override = None
    if options.batch is not None:
        by_key = {v: k for k, v in renames.items()}
        override = {}
        for key, info in signature.inputs.items():
            dims = [d.size for d in info.tensor_shape.dim]
            if dims:
                override[by_key.get(key, info.name)] = [
                    -1 if d is None or d < 0 else d for d in with_batch(dims, options)
                ]
    _tf2onnx(
        from_graph_def,
        source,
        graph_def=graph_def,
        name=name,
        input_names=inputs,
        output_names=outputs,
        opset=options.opset,
        inputs_as_nchw=nchw_in or None,
        outputs_as_nchw=nchw_out or None,
        shape_override=override,
        tensors_to_rename=renames,
        output_path=str(output),
    )

    loaded = tf.saved_model.load(str(source), tags=tags)
    function = loaded.signatures[name]

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = function(**{k: tf.constant(v) for k, v in feeds.items()})
        return {k: v.numpy() for k, v in result.items()}

    return Reference("TensorFlow", run, tuple(nchw_in), tuple(nchw_out), f"signature {name!r}, tags {','.join(tags)}")


# --- Keras ---------------------------------------------------------------------------------------


def _is_keras(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".keras"


def _is_h5(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".h5", ".hdf5")


def _custom_objects(path: Path | None) -> dict[str, Any]:
    """Import a user's module of custom Keras objects: its CUSTOM_OBJECTS dict, else every class/function it defines."""
    if path is None:
        return {}
    module = import_file(path, "--custom-objects file")
    listed = getattr(module, "CUSTOM_OBJECTS", None) or getattr(module, "custom_objects", None)
    if isinstance(listed, dict):
        return dict(listed)
    return {
        k: v
        for k, v in vars(module).items()
        if callable(v) and getattr(v, "__module__", None) == module.__name__ and not k.startswith("_")
    }


_MISSING = re.compile(
    r"(?:Could not locate (?:class|function)|Unknown (?:layer|object|activation|loss|metric|"
    r"regularizer|initializer|constraint|optimizer)[\w ]*?):? *['\"`]?([\w.>]+)"
)


def _load_keras(source: Path, options: ConvertOptions) -> Any:
    keras = require("keras", "tf", "Loading a Keras model")
    custom = _custom_objects(options.custom_objects)
    try:
        return keras.saving.load_model(str(source), custom_objects=custom, compile=False)
    except Exception as exc:
        text = str(exc)
        missing = _MISSING.search(text)
        if missing:
            name = missing.group(1).split(">")[-1]
            hint = (
                f"{options.custom_objects} does not define it"
                if options.custom_objects
                else "pass --custom-objects FILE.py"
            )
            raise TrtforgeError(
                f"{source} uses a custom Keras object {name!r} that is not available; {hint}: a Python file that "
                f"defines class {name} (decorated with @keras.saving.register_keras_serializable() or listed in "
                f"CUSTOM_OBJECTS = {{'{name}': {name}}})"
            ) from None
        line = next((ln for ln in text.strip().splitlines() if ln.strip()), type(exc).__name__)
        raise TrtforgeError(f"Keras could not load {source}: {line}") from None


def convert_keras(source: Path, output: Path, options: ConvertOptions) -> Reference:
    tf = _tf()
    from tf2onnx.convert import from_function

    model = _load_keras(source, options)
    try:
        inputs = list(model.inputs)
    except (AttributeError, ValueError):
        raise TrtforgeError(
            f"{source} holds a Keras model without defined inputs (a subclassed model that was "
            f"never built); save it after calling it once, or export a SavedModel"
        ) from None
    in_names = [_plain(getattr(t, "name", f"input_{i}")) for i, t in enumerate(inputs)]
    out_names = list(getattr(model, "output_names", None) or [f"output_{i}" for i in range(len(model.outputs))])
    nchw_in = layout_names(options.inputs_as_nchw, {n: len(t.shape) for n, t in zip(in_names, inputs)}, "input")
    nchw_out = layout_names(
        options.outputs_as_nchw, {n: len(t.shape) for n, t in zip(out_names, model.outputs)}, "output"
    )
    specs = [tf.TensorSpec(with_batch(t.shape, options), t.dtype, name=n) for n, t in zip(in_names, inputs)]

    def call(*xs: Any) -> dict[str, Any]:
        result = model(list(xs) if len(xs) > 1 else xs[0], training=False)
        result = result if isinstance(result, (list, tuple)) else [result]
        return dict(zip(out_names, result))

    function = tf.function(call, input_signature=specs)
    _tf2onnx(
        from_function,
        source,
        function=function,
        input_signature=specs,
        opset=options.opset,
        inputs_as_nchw=nchw_in or None,
        outputs_as_nchw=nchw_out or None,
        output_path=str(output),
    )
    _order_outputs(output, out_names)

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in function(*[feeds[n] for n in in_names]).items()}

    return Reference("Keras", run, tuple(nchw_in), tuple(nchw_out))


def _order_outputs(path: Path, names: list[str]) -> None:
    """tf2onnx sorts a dict's outputs by key; put them back in the model's order."""
    import onnx

    model = onnx.load(str(path))
    current = [o.name for o in model.graph.output]
    if sorted(current) != sorted(names) or current == names:
        return
    ordered = sorted(model.graph.output, key=lambda o: names.index(o.name))
    copies = [type(o)() for o in ordered]
    for copy, o in zip(copies, ordered):
        copy.CopyFrom(o)
    del model.graph.output[:]
    model.graph.output.extend(copies)
    onnx.save(model, str(path))


# --- Frozen GraphDef and TF1 checkpoints ---------------------------------------------------------


def _is_frozen_graph(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".pb" and path.name != "saved_model.pb"


def _candidates(graph_def: Any) -> tuple[list[str], list[str]]:
    """Placeholder names (with shapes) and the names of ops nothing consumes: likely inputs and outputs."""
    consumed = {i.split(":")[0].lstrip("^") for node in graph_def.node for i in node.input}
    inputs = []
    for node in graph_def.node:
        if node.op == "Placeholder":
            shape = node.attr["shape"].shape
            dims = "?" if shape.unknown_rank else "x".join(str(d.size) for d in shape.dim)
            inputs.append(f"{node.name}:0 ({dims})")
    outputs = [
        f"{n.name}:0"
        for n in graph_def.node
        if n.name not in consumed and n.op not in _NOT_OUTPUTS and not n.name.startswith("save/")
    ]
    return inputs, outputs[:12]


def _need_names(source: Path, graph_def: Any, options: ConvertOptions) -> None:
    if options.inputs and options.outputs:
        return
    inputs, outputs = _candidates(graph_def)
    missing = " and ".join(
        f for f, given in (("--inputs", options.inputs), ("--outputs", options.outputs)) if not given
    )
    raise TrtforgeError(
        f"{source} is a bare TensorFlow graph: pass {missing} (NAME[:SHAPE],...). "
        f"Candidate inputs (placeholders): {', '.join(inputs) or 'none'}; "
        f"candidate outputs (ops nothing consumes): {', '.join(outputs) or 'none'}"
    )


def _graph_tensors(source: Path, graph: Any, options: ConvertOptions, graph_def: Any) -> tuple[list[str], list[str]]:
    """The --inputs/--outputs as graph tensor names, checked to exist."""
    names = []
    for name in [a.name for a in options.inputs] + list(options.outputs):
        try:
            names.append(graph.get_tensor_by_name(_tensor(name)).name)
        except (KeyError, ValueError):
            inputs, outputs = _candidates(graph_def)
            raise TrtforgeError(
                f"{source} has no tensor {name!r}; candidate inputs: {', '.join(inputs) or 'none'}; "
                f"candidate outputs: {', '.join(outputs) or 'none'}"
            ) from None
    return names[: len(options.inputs)], names[len(options.inputs) :]


def _convert_graph(
    source: Path,
    output: Path,
    options: ConvertOptions,
    graph_def: Any,
    graph: Any,
    inputs: list[str],
    outputs: list[str],
) -> tuple[list[str], list[str]]:
    """Convert a frozen graph; ONNX names drop ':0'.  Returns the NCHW tensors by ONNX name."""
    from tf2onnx.convert import from_graph_def

    tensors = {n: graph.get_tensor_by_name(n) for n in inputs + outputs}
    onnx_names = {n: _plain(n) for n in inputs + outputs}
    nchw_in = layout_names(options.inputs_as_nchw, {onnx_names[n]: _rank(tensors[n].shape) for n in inputs}, "input")
    nchw_out = layout_names(
        options.outputs_as_nchw, {onnx_names[n]: _rank(tensors[n].shape) for n in outputs}, "output"
    )
    override = {}
    for arg, name in zip(options.inputs, inputs):
        dims = (
            list(arg.shape)
            if arg.shape is not None
            else (_dims(tensors[name].shape.as_list()) if _rank(tensors[name].shape) else None)
        )
        if dims is not None and (arg.shape is not None or options.batch is not None):
            override[name] = [-1 if d is None else d for d in with_batch(dims, options)]
    graph_name = {v: k for k, v in onnx_names.items()}
    _tf2onnx(
        from_graph_def,
        source,
        graph_def=graph_def,
        name=source.stem,
        input_names=inputs,
        output_names=outputs,
        opset=options.opset,
        inputs_as_nchw=[graph_name[n] for n in nchw_in] or None,
        outputs_as_nchw=[graph_name[n] for n in nchw_out] or None,
        shape_override=override or None,
        tensors_to_rename=onnx_names,
        output_path=str(output),
    )
    return nchw_in, nchw_out


def _session_run(
    session: Any, inputs: list[str], outputs: list[str]
) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = session.run(outputs, {n: feeds[_plain(n)] for n in inputs})
        return {_plain(n): v for n, v in zip(outputs, values)}

    return run


def convert_frozen_graph(source: Path, output: Path, options: ConvertOptions) -> Reference:
    tf = _tf()
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(source.read_bytes())
    except Exception:
        raise TrtforgeError(f"{source} is not a frozen TensorFlow GraphDef (it does not parse as one)") from None
    _need_names(source, graph_def, options)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    inputs, outputs = _graph_tensors(source, graph, options, graph_def)
    nchw_in, nchw_out = _convert_graph(source, output, options, graph_def, graph, inputs, outputs)
    session = tf.compat.v1.Session(graph=graph)
    return Reference("TensorFlow", _session_run(session, inputs, outputs), tuple(nchw_in), tuple(nchw_out))


def _is_checkpoint(path: Path) -> bool:
    text = str(path)
    return (
        path.suffix in (".meta", ".index")
        or Path(text + ".index").exists()
        or (path.is_dir() and ((path / "checkpoint").exists() or any(path.glob("*.index"))))
    )


def _checkpoint_meta(source: Path) -> tuple[Path | None, str]:
    """(the .meta file or None, the checkpoint prefix)."""
    if source.suffix == ".meta":
        return source, str(source)[:-5]
    prefix = str(source)[:-6] if source.suffix == ".index" else str(source)
    if source.is_dir():
        indexes = sorted(source.glob("*.index"), key=lambda p: p.stat().st_mtime)
        prefix = str(indexes[-1])[:-6] if indexes else str(source / "ckpt")
    meta = Path(prefix + ".meta")
    return (meta if meta.exists() else None), prefix


def convert_checkpoint(source: Path, output: Path, options: ConvertOptions) -> Reference:
    meta, prefix = _checkpoint_meta(source)
    if meta is None:
        raise TrtforgeError(
            f"{source} is a TensorFlow 2 checkpoint: it holds weights but no graph, so it cannot be converted. "
            f"Rebuild the model in Python, restore the weights and export it, e.g. model = build_model(); "
            f"tf.train.Checkpoint(model=model).restore('{prefix}').expect_partial(); "
            f"then model.export('saved_model') (or model.save('model.keras')), "
            f"and run: trtforge convert saved_model -o model.onnx"
        )
    tf = _tf()
    from tensorflow.core.protobuf import meta_graph_pb2
    from tf2onnx import tf_loader

    meta_graph = meta_graph_pb2.MetaGraphDef()
    meta_graph.ParseFromString(meta.read_bytes())
    _need_names(meta, meta_graph.graph_def, options)
    graph = tf.Graph()
    with graph.as_default():
        saver = tf.compat.v1.train.import_meta_graph(str(meta), clear_devices=True)
    inputs, outputs = _graph_tensors(meta, graph, options, meta_graph.graph_def)
    try:
        frozen, inputs, outputs = tf_loader.from_checkpoint(str(meta), inputs, outputs)
    except Exception as exc:
        raise TrtforgeError(f"TensorFlow could not restore {prefix}: {str(exc).strip().splitlines()[-1]}") from None
    nchw_in, nchw_out = _convert_graph(meta, output, options, frozen, graph, inputs, outputs)
    session = tf.compat.v1.Session(graph=graph)
    with graph.as_default():
        saver.restore(session, prefix)
    return Reference("TensorFlow (checkpoint)", _session_run(session, inputs, outputs), tuple(nchw_in), tuple(nchw_out))


# --- TFLite --------------------------------------------------------------------------------------


def _is_tflite(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".tflite"


def _signature_names(interpreter: Any) -> dict[str, str]:
    """Tensor name -> signature key ('serving_default_image:0' -> 'image') when the model has one signature."""
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        return {}
    runner = interpreter.get_signature_runner(next(iter(signatures)))
    by_index = {d["index"]: d["name"] for d in interpreter.get_input_details() + interpreter.get_output_details()}
    keys = {**runner.get_input_details(), **runner.get_output_details()}
    return {by_index[d["index"]]: key for key, d in keys.items() if d["index"] in by_index}


def convert_tflite(source: Path, output: Path, options: ConvertOptions) -> Reference:
    tf = _tf()
    from tf2onnx.convert import from_tflite

    try:
        interpreter = tf.lite.Interpreter(model_path=str(source))
    except Exception as exc:
        raise TrtforgeError(f"{source} is not a readable TFLite model: {str(exc).strip().splitlines()[-1]}") from None
    _refuse_resource_variables(source, interpreter)
    ins, outs = interpreter.get_input_details(), interpreter.get_output_details()
    names = _signature_names(interpreter)
    name = lambda d: names.get(d["name"], d["name"])  # noqa: E731
    tensor = {name(d): d["name"] for d in ins + outs}
    nchw_in = layout_names(options.inputs_as_nchw, {name(d): len(d["shape"]) for d in ins}, "input")
    nchw_out = layout_names(options.outputs_as_nchw, {name(d): len(d["shape"]) for d in outs}, "output")
    # tf2onnx's TFLite path transposes the wrong tensor for outputs_as_nchw when outputs share an
    # op (two outputs of one StatefulPartitionedCall): outputs get a boundary Transpose instead.
    _tf2onnx(
        from_tflite,
        source,
        tflite_path=str(source),
        opset=options.opset,
        inputs_as_nchw=[tensor[n] for n in nchw_in] or None,
        output_path=str(output),
    )
    _refuse_unconverted(source, output)
    _rename_file(output, names, nchw_out)
    note = ""
    if options.batch is not None:
        # tf2onnx's TFLite path ignores shape overrides: set the batch on the ONNX graph, checked.
        from trtforge.graph.model import load, save
        from trtforge.graph.shapes import set_batch

        save(set_batch(load(output), options.batch), output)
        note = f"batch {options.batch} set on the ONNX graph (a TFLite file has no export-time batch)"

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for d in ins:
            if tuple(d["shape"]) != feeds[name(d)].shape:
                interpreter.resize_tensor_input(d["index"], list(feeds[name(d)].shape))
        interpreter.allocate_tensors()
        for d in ins:
            interpreter.set_tensor(d["index"], feeds[name(d)].astype(d["dtype"]))
        interpreter.invoke()
        return {name(d): interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()}

    quantized = _quantized_weights(interpreter)
    spread = (lambda feeds: _kernel_spread(source, feeds, run, name)) if quantized else None
    return Reference("the TFLite interpreter", run, tuple(nchw_in), tuple(nchw_out), note, quantized, spread)


def _quantized_weights(interpreter: Any) -> str:
    """'int8 weights' (or another type) when the model's constant tensors are quantized, else ''."""
    kinds = {
        np.dtype(t["dtype"]).name
        for t in interpreter.get_tensor_details()
        if t["dtype"] in (np.int8, np.uint8, np.int16, np.float16) and len(t["shape"]) > 1
    }
    return " and ".join(f"{k} weights" for k in sorted(kinds))


def _kernel_spread(
    source: Path, feeds: dict[str, np.ndarray], run: Callable[..., dict[str, np.ndarray]], name: Callable[[Any], str]
) -> dict[str, float]:
    """Per output: max |default kernels - reference kernels| of the TFLite interpreter itself."""
    tf = _tf()
    reference = tf.lite.Interpreter(
        model_path=str(source), experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF
    )
    for d in reference.get_input_details():
        reference.resize_tensor_input(d["index"], list(feeds[name(d)].shape))
    reference.allocate_tensors()
    for d in reference.get_input_details():
        reference.set_tensor(d["index"], feeds[name(d)].astype(d["dtype"]))
    reference.invoke()
    default = run(feeds)
    return {
        name(d): float(
            np.abs(reference.get_tensor(d["index"]).astype(np.float64) - default[name(d)].astype(np.float64)).max()
        )
        for d in reference.get_output_details()
    }


_STATE_OPS = {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"}


def _refuse_resource_variables(source: Path, interpreter: Any) -> None:
    """A streaming TFLite model keeps its state in resource variables, which tf2onnx cannot convert."""
    try:
        ops = {o["op_name"] for o in interpreter._get_ops_details()}
    except Exception:  # a private API: without it, tf2onnx's own failure is reported
        return
    state = sorted(ops & _STATE_OPS)
    if state:
        raise TrtforgeError(
            f"{source} keeps state between calls in resource variables ({', '.join(state)}: a streaming "
            "model), which tf2onnx cannot convert and ONNX has no op for; nothing was written; export the "
            "model without them (a non-streaming version, or one taking the state as an input and "
            "returning it as an output)"
        )


def unconverted_ops(model: Any) -> dict[str, str]:
    """Ops tf2onnx passed through unconverted (``TFL_<name>``, not an ONNX op): ``{op: first node}``."""
    import onnx

    found: dict[str, str] = {}
    for node in model.graph.node:
        if node.op_type.startswith("TFL_") and not onnx.defs.has(node.op_type, node.domain):
            found.setdefault(node.op_type[len("TFL_") :], node.name)
    return found


def _refuse_unconverted(source: Path, output: Path) -> None:
    import onnx

    found = unconverted_ops(onnx.load(str(output), load_external_data=False))
    if found:
        ops = ", ".join(f"{op} (node {node!r})" for op, node in found.items())
        raise TrtforgeError(
            f"{source} uses TFLite custom op(s) {ops} that tf2onnx cannot convert and ONNX has no op "
            "for; nothing was written; export the model without them (e.g. a standard transposed "
            "convolution plus bias instead of MediaPipe's Convolution2DTransposeBias), or convert the "
            "op yourself (a tf2onnx custom-op handler, then a TensorRT plugin for the engine)"
        )


def _rename_file(path: Path, names: dict[str, str], nchw_outputs: list[str]) -> None:
    """Give the ONNX inputs/outputs the model's signature names; NHWC outputs become NCHW."""
    import onnx

    from trtforge.converters.edits import rename, transpose_boundary

    model = onnx.load(str(path))
    inputs = tuple((i.name, names[i.name]) for i in model.graph.input if i.name in names)
    outputs = tuple((o.name, names[o.name]) for o in model.graph.output if o.name in names)
    rename(model, inputs, outputs)
    transpose_boundary(model, [], nchw_outputs)
    onnx.save(model, str(path))


register(Converter("savedmodel", _is_saved_model, convert_saved_model, TF2ONNX_MAX_OPSET))
register(Converter("keras", _is_keras, convert_keras, TF2ONNX_MAX_OPSET))
register(Converter("h5", _is_h5, convert_keras, TF2ONNX_MAX_OPSET))
register(Converter("pb", _is_frozen_graph, convert_frozen_graph, TF2ONNX_MAX_OPSET))
register(Converter("tflite", _is_tflite, convert_tflite, TF2ONNX_MAX_OPSET))
register(Converter("checkpoint", _is_checkpoint, convert_checkpoint, TF2ONNX_MAX_OPSET))
