"""trtforge inspect MODEL_OR_ENGINE"""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="show a model's or engine's inputs, outputs and contents")
    p.add_argument("path", help="ONNX model, or engine built by trtforge")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from trtforge.engine import manifest_path, read_manifest

    if args.path.endswith(".onnx") or not manifest_path(args.path).exists():
        from trtforge.graph.inspect import summarize
        from trtforge.graph.model import load

        summary = summarize(load(args.path))
        if args.json:
            print(json.dumps(summary.to_json(), indent=2))
            return 0
        print(f"ONNX model {args.path} ({summary.producer or 'unknown producer'})")
        print("opsets: " + ", ".join(f"{d} {v}" for d, v in summary.opsets.items()))
        for kind, specs in (("input", summary.inputs), ("output", summary.outputs)):
            for t in specs:
                print(f"{kind:6s} {t.name}: {t.dtype} {t.shape_text()}")
        print(f"parameters: {summary.parameters:,} ({summary.parameter_bytes / 1024:.1f} KiB)")
        print("ops: " + ", ".join(f"{op} x{n}" for op, n in summary.op_counts.items()))
        return 0
    manifest = read_manifest(args.path)
    if args.json:
        print(json.dumps(manifest.to_json(), indent=2))
        return 0
    print(f"engine {args.path}: {manifest.backend} {manifest.backend_version}, {manifest.precision}, "
          f"built {manifest.created} by trtforge {manifest.trtforge_version}")
    for kind, specs in (("input", manifest.inputs), ("output", manifest.outputs)):
        for t in specs:
            print(f"{kind:6s} {t.name}: {t.dtype} {t.shape_text()}")
    print(f"device: {manifest.device}")
    print(f"build: {manifest.build}")
    if manifest.calibration:
        print(f"calibration: {manifest.calibration}")
    return 0
