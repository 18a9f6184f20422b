"""trtforge inspect MODEL_OR_ENGINE [--json]"""

from __future__ import annotations

import argparse
import json

_SHOW = 8  # node names listed per dynamic dim in text output (--json lists all)


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="show a model's or engine's inputs, outputs and contents")
    p.add_argument(
        "path", help="ONNX model, engine built by trtforge, or a source: .tflite, Keras .h5/.keras, SavedModel"
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from trtforge.engine import kind_of

    kind = kind_of(args.path)
    if kind != "source":
        return _engine(args) if kind == "engine" else _model(args)
    form = _source_form(args.path)
    return _source(args, form) if form else _model(args)


def _source_form(path: str) -> str | None:
    """The source form (tflite, keras, h5, savedmodel) ``inspect`` describes, or None."""
    from pathlib import Path

    from trtforge.converters import converters
    from trtforge.converters.describe import DESCRIBED

    found = Path(path)
    return next((n for n, c in converters().items() if n in DESCRIBED and found.exists() and c.detect(found)), None)


def _source(args: argparse.Namespace, form: str) -> int:
    from trtforge.converters.describe import describe_source

    s = describe_source(args.path, form)
    if args.json:
        print(json.dumps(s.to_json(), indent=2))
        return 0
    print(f"{form} model {args.path} (convert it with: trtforge convert {args.path} -o MODEL.onnx)")
    for kind, specs in (("input", s.inputs), ("output", s.outputs)):
        for t in specs:
            print(f"{kind:6s} {t.name}: {t.dtype} {t.shape_text()}")
    if s.parameters is not None:
        print(f"parameters: {s.parameters:,}")
    print(("layers: " if form in ("keras", "h5") else "ops: ") + ", ".join(f"{op} x{n}" for op, n in s.ops.items()))
    for note in s.notes:
        print(note)
    return 0


def _model(args: argparse.Namespace) -> int:
    from trtforge.graph.inspect import summarize
    from trtforge.graph.model import load

    s = summarize(load(args.path))
    if args.json:
        print(json.dumps(s.to_json(), indent=2))
        return 0
    print(f"ONNX model {args.path} ({s.producer or 'unknown producer'})")
    print("opsets: " + ", ".join(f"{d} {v}" for d, v in s.opsets.items()))
    print("domains used: " + ", ".join(s.domains))
    for kind, specs in (("input", s.inputs), ("output", s.outputs)):
        for t in specs:
            print(f"{kind:6s} {t.name}: {t.dtype} {t.shape_text()}")
    print(f"parameters: {s.parameters:,} ({s.parameter_bytes / 1024:.1f} KiB)")
    print("ops: " + ", ".join(f"{op} x{n}" for op, n in s.op_counts.items()))
    for dim, where in s.dynamic_dims.items():
        users = s.dim_users.get(dim, [])
        shown = ", ".join(users[:_SHOW]) + (f", ... ({len(users)} in all)" if len(users) > _SHOW else "")
        print(f"dynamic dim {dim!r}: {', '.join(where)}; nodes: {shown or 'none known'}")
    if s.custom_ops:
        print(
            "custom-domain ops (TensorRT needs plugins for these): "
            + ", ".join(f"{op} x{n}" for op, n in s.custom_ops.items())
        )
    return 0


def _engine(args: argparse.Namespace) -> int:
    from trtforge.engine import describe as describe_engine

    details = describe_engine(args.path)
    if args.json:
        print(json.dumps(details, indent=2, default=str))
        return 0
    m = details["manifest"]
    assert isinstance(m, dict)
    print(
        f"engine {args.path}: {m['backend']} {m['backend_version']}, {m['precision']}, "
        f"built {m['created']} by trtforge {m['trtforge_version']}"
    )
    for kind in ("input", "output"):
        for t in m[f"{kind}s"]:
            print(f"{kind:6s} {t['name']}: {t['dtype']} {'x'.join(map(str, t['shape'])) or 'scalar'}")
    print(f"device: {m['device']}")
    print(f"build: {m['build']}")
    if m.get("calibration"):
        print(f"calibration: {m['calibration']}")
    if "backend" in details:
        print(f"{m['backend']} says:")
        print(json.dumps(details["backend"], indent=2, default=str))
    return 0
