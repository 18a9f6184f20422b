"""A Triton model configuration (``config.pbtxt``) from an engine's manifest, and its check.

The text is written here and then parsed with Triton's own ``ModelConfig`` protobuf (shipped in
tritonclient) and compared field by field with the manifest, so a repository trtforge writes is
one Triton reads as meant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from trtforge.config import TensorSpec, _Choice
from trtforge.engine import Manifest
from trtforge.errors import TrtforgeError, require

DATA_TYPES = {
    "bool": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "uint16": "TYPE_UINT16",
    "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64",
    "int8": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "float16": "TYPE_FP16",
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
    "bfloat16": "TYPE_BF16",
}
DEFAULT_MAX_BATCH = 8


class ServingBackend(_Choice):
    """Which Triton backend runs the model: the engine's own (``onnxruntime``: ONNX Runtime for an
    onnxruntime engine, TensorRT for a tensorrt plan) or ``python`` (trtforge's runner)."""

    ONNXRUNTIME = "onnxruntime"
    PYTHON = "python"

    @classmethod
    def _what(cls) -> str:
        return "Triton backend"


class InstanceKind(_Choice):
    CPU = "cpu"
    GPU = "gpu"

    @classmethod
    def _what(cls) -> str:
        return "instance kind"


# Engine backend -> (Triton platform, file name in the version folder).
PLATFORMS = {"onnxruntime": ("onnxruntime_onnx", "model.onnx"), "tensorrt": ("tensorrt_plan", "model.plan")}
CUDA_OPTIONS_LEFT_OUT = ("device_id", "enable_cuda_graph")
"""ONNX Runtime CUDA options trtforge chose that the config does not carry: Triton places each
instance on its GPU, and ORT's CUDA graphs need fixed shapes and bound buffers, which Triton's
ONNX Runtime backend does not keep for batched requests."""


@dataclass(frozen=True)
class TritonModel:
    """What a Triton model serves: its IO as Triton sees it and how requests are scheduled."""

    name: str
    backend: ServingBackend
    platform: str | None
    """``onnxruntime_onnx`` / ``tensorrt_plan``; None for the Python backend."""
    filename: str
    max_batch: int
    """Triton's max_batch_size: 0 = requests go to the model whole, without batching."""
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    engine_batch: int | None
    """The engine's fixed batch, or None when it takes any batch."""
    profile_batch: int | None = None
    """A dynamic-batch TensorRT engine's largest batch (its first profile's max), else None."""
    instances: int = 1
    kind: InstanceKind = InstanceKind.CPU
    max_queue_delay_us: int = 100
    preferred_batch: tuple[int, ...] = ()
    """dynamic_batching's preferred_batch_size (empty: Triton batches as large as it can)."""
    cuda_options: tuple[tuple[str, str], ...] = ()
    """ONNX Runtime CUDA provider options chosen at build, as the ``cuda`` gpu_execution_accelerator."""
    cc_filenames: tuple[tuple[str, str], ...] = ()
    """``cc_model_filenames``: compute capability -> the plan built for it (a TensorRT plan that runs
    on those GPUs only); no ``model.plan`` then, so Triton on another GPU finds no plan to load."""

    def dims(self, spec: TensorSpec) -> list[int]:
        """Triton dims: the batch axis left out when batching, a dynamic dimension as -1."""
        shape = spec.shape[1:] if self.max_batch else spec.shape
        return [d if isinstance(d, int) and d >= 0 else -1 for d in shape]


def engine_batch(specs: list[TensorSpec]) -> int | None:
    """The leading dimension shared by all inputs: an int when fixed, None when dynamic."""
    firsts = {s.shape[0] if s.shape else "scalar" for s in specs}
    if "scalar" in firsts or len(firsts) != 1:
        raise TrtforgeError(
            "the engine's inputs do not share a leading batch dimension "
            f"({', '.join(f'{s.name}:{s.shape_text()}' for s in specs)}); serve it with --max-batch 0"
        )
    first = firsts.pop()
    return first if isinstance(first, int) and first >= 0 else None


def profile_max_batch(manifest: Manifest) -> int | None:
    """The largest batch a TensorRT engine's first optimisation profile takes (None without profiles)."""
    facts = manifest.build.get("tensorrt")
    profiles = facts.get("profiles") if isinstance(facts, dict) else None
    if not isinstance(profiles, list) or not profiles or not isinstance(profiles[0], dict):
        return None
    tops = [r["max"][0] for r in profiles[0].values() if isinstance(r, dict) and r.get("max")]
    return int(min(tops)) if tops else None


_CC = re.compile(r"[0-9]{1,2}\.[0-9]{1,2}")


def plan_targets(manifest: Manifest) -> tuple[str, ...]:
    """The compute capabilities a TensorRT plan was built for, exactly: its ``runs_on`` record (empty
    when it also runs on later GPUs: hardware compatibility), else the GPU it was built on."""
    facts = manifest.build.get("tensorrt")
    runs_on = facts.get("runs_on") if isinstance(facts, dict) else None
    if isinstance(runs_on, dict):
        ccs = runs_on.get("compute_capabilities")
        if runs_on.get("and_later") or not isinstance(ccs, list):
            return ()
        return tuple(str(c) for c in ccs if _CC.fullmatch(str(c)))
    cc = str(manifest.device.get("compute_capability", ""))
    return (cc,) if _CC.fullmatch(cc) else ()


def cc_filenames(manifest: Manifest) -> tuple[tuple[str, str], ...]:
    """``(("9.0", "model.sm90.plan"),)`` for a plan built for compute capability 9.0 only."""
    ccs = plan_targets(manifest)
    if len(ccs) != 1:  # one plan, one GPU generation; a plan for several is not something TensorRT builds
        return ()
    return ((ccs[0], f"model.sm{ccs[0].replace('.', '')}.plan"),)


def _data_type(spec: TensorSpec) -> str:
    try:
        return DATA_TYPES[spec.dtype]
    except KeyError:
        raise TrtforgeError(
            f"tensor {spec.name!r} has dtype {spec.dtype}, which Triton has no type for; "
            f"expected one of: {', '.join(DATA_TYPES)}"
        ) from None


def _default_kind(manifest: Manifest) -> InstanceKind:
    on_gpu = manifest.backend != "onnxruntime" or manifest.device.get("kind") == "cuda"
    return InstanceKind.GPU if on_gpu else InstanceKind.CPU


def _cuda_options(manifest: Manifest, backend: ServingBackend, kind: InstanceKind) -> tuple[tuple[str, str], ...]:
    recorded = manifest.build.get("provider_options")
    if backend is not ServingBackend.ONNXRUNTIME or kind is not InstanceKind.GPU or not isinstance(recorded, dict):
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in recorded.items() if k not in CUDA_OPTIONS_LEFT_OUT))


def plan_model(
    manifest: Manifest,
    name: str,
    backend: ServingBackend | str = ServingBackend.ONNXRUNTIME,
    max_batch: int | None = None,
    instances: int = 1,
    kind: InstanceKind | str | None = None,
    max_queue_delay_us: int = 100,
) -> TritonModel:
    """How Triton serves the engine: platform, batching (from the engine's batch axis) and IO.

    The engine's own backend batches only when the engine takes any batch; the Python backend
    batches a fixed-batch engine too (trtforge's runner runs a batch in chunks the engine takes).
    ``kind`` defaults to where the engine was built for (GPU for CUDA and TensorRT engines).
    """
    backend = ServingBackend.parse(backend)
    kind = _default_kind(manifest) if kind is None else InstanceKind.parse(kind)
    if instances < 1 or (max_batch is not None and max_batch < 0) or max_queue_delay_us < 0:
        raise TrtforgeError(
            f"--instances must be >= 1 (got {instances}), --max-batch >= 0 (got {max_batch}) "
            f"and --max-queue-delay-us >= 0 (got {max_queue_delay_us})"
        )
    if not name or not all(c.isalnum() or c in "._-" for c in name):
        raise TrtforgeError(f"bad model name {name!r}: use letters, digits, '.', '_' and '-'")
    for spec in (*manifest.inputs, *manifest.outputs):
        _data_type(spec)
    fixed = engine_batch(manifest.inputs) if max_batch != 0 else None
    top = profile_max_batch(manifest) if fixed is None else None
    if backend is ServingBackend.PYTHON:
        platform, filename = None, "model.py"
        batch = DEFAULT_MAX_BATCH if max_batch is None else max_batch
    else:
        if manifest.backend not in PLATFORMS:
            raise TrtforgeError(
                f"Triton has no backend for {manifest.backend} engines (it serves "
                f"{', '.join(PLATFORMS)}); export with --backend python, which runs it with trtforge"
            )
        platform, filename = PLATFORMS[manifest.backend]
        if fixed is not None and max_batch:
            raise TrtforgeError(
                f"the engine takes a fixed batch of {fixed}, so Triton's {platform} cannot batch "
                f"requests into it; leave out --max-batch (or use 0), rebuild from an ONNX with a "
                "dynamic batch, or export with --backend python, which runs batches in chunks"
            )
        if top is not None and max_batch is not None and max_batch > top:
            raise TrtforgeError(
                f"--max-batch {max_batch} is more than the engine's profile takes ({top}); use at "
                f"most {top}, rebuild with a larger --max-shapes, or export with --backend python, "
                "which runs batches in chunks"
            )
        default = DEFAULT_MAX_BATCH if top is None else min(DEFAULT_MAX_BATCH, top)
        batch = 0 if fixed is not None else (default if max_batch is None else max_batch)
        if manifest.backend == "tensorrt" and kind is InstanceKind.CPU:
            raise TrtforgeError("a TensorRT plan runs on a GPU only; use --kind gpu (the default for it)")
    by_cc = cc_filenames(manifest) if platform == "tensorrt_plan" else ()
    filename = by_cc[0][1] if by_cc else filename
    return TritonModel(
        name,
        backend,
        platform,
        filename,
        batch,
        tuple(manifest.inputs),
        tuple(manifest.outputs),
        fixed,
        top,
        instances,
        kind,
        max_queue_delay_us,
        cuda_options=_cuda_options(manifest, backend, kind),
        cc_filenames=by_cc,
    )


def with_preferred_batch(model: TritonModel, sizes: tuple[int, ...]) -> TritonModel:
    """``model`` with dynamic_batching's preferred sizes, each from 1 to its max_batch_size."""
    import dataclasses

    if sizes and not model.max_batch:
        raise TrtforgeError(f"--preferred-batch needs batching, but model {model.name} has max_batch_size 0")
    bad = [b for b in sizes if not 1 <= b <= model.max_batch]
    if bad:
        raise TrtforgeError(f"preferred batch sizes {bad} are outside 1..{model.max_batch} (the max batch)")
    return dataclasses.replace(model, preferred_batch=tuple(sorted(set(sizes))))


def _tensor_block(model: TritonModel, spec: TensorSpec) -> str:
    dims = ", ".join(str(d) for d in model.dims(spec))
    return f'  {{\n    name: "{spec.name}"\n    data_type: {_data_type(spec)}\n    dims: [ {dims} ]\n  }}'


def config_text(model: TritonModel) -> str:
    """The ``config.pbtxt`` text for ``model``."""
    head = f'name: "{model.name}"\n'
    head += f'platform: "{model.platform}"\n' if model.platform else 'backend: "python"\n'
    lines = [
        head + f"max_batch_size: {model.max_batch}",
        "input [\n" + ",\n".join(_tensor_block(model, s) for s in model.inputs) + "\n]",
        "output [\n" + ",\n".join(_tensor_block(model, s) for s in model.outputs) + "\n]",
    ]
    if model.max_batch:
        preferred = (
            f"\n  preferred_batch_size: [ {', '.join(map(str, model.preferred_batch))} ]"
            if model.preferred_batch
            else ""
        )
        lines.append(f"dynamic_batching {{{preferred}\n  max_queue_delay_microseconds: {model.max_queue_delay_us}\n}}")
    kind = "KIND_GPU" if model.kind is InstanceKind.GPU else "KIND_CPU"
    lines.append(f"instance_group [\n  {{\n    kind: {kind}\n    count: {model.instances}\n  }}\n]")
    if model.cuda_options:
        params = "".join(f'\n      parameters {{ key: "{k}" value: "{v}" }}' for k, v in model.cuda_options)
        lines.append(
            "# ONNX Runtime CUDA options trtforge chose at build (device_id and CUDA graphs left to Triton)\n"
            "optimization { execution_accelerators {\n  gpu_execution_accelerator: [ {\n"
            f'      name: "cuda"{params}\n  }} ]\n}}}}'
        )
    for cc, filename in model.cc_filenames:
        lines.append(f'cc_model_filenames {{ key: "{cc}" value: "{filename}" }}')
    return "\n".join(lines) + "\n"


def parse_config(text: str):  # -> tritonclient.grpc.model_config_pb2.ModelConfig
    """``text`` parsed with Triton's ModelConfig protobuf; a parse error is a bug in the writer."""
    pb = require("tritonclient.grpc.model_config_pb2", "serve", "checking a Triton model configuration")
    text_format = require("google.protobuf.text_format", "serve", "checking a Triton model configuration")
    return text_format.Parse(text, pb.ModelConfig())


def check_config(text: str, model: TritonModel, manifest: Manifest) -> None:
    """Parse ``text`` with Triton's protobuf and compare it with ``model`` and the engine's
    ``manifest`` (names, types, dims, batching); a mismatch is a bug in the writer."""
    pb = require("tritonclient.grpc.model_config_pb2", "serve", "checking a Triton model configuration")
    parsed = parse_config(text)
    wrong: list[str] = []

    def expect(what: str, got: object, want: object) -> None:
        if got != want:
            wrong.append(f"{what}: {got!r} != {want!r}")

    expect("name", parsed.name, model.name)
    expect("platform", parsed.platform, model.platform or "")
    expect("backend", parsed.backend, "" if model.platform else "python")
    expect("max_batch_size", parsed.max_batch_size, model.max_batch)
    for got_list, specs, what in (
        (parsed.input, manifest.inputs, "input"),
        (parsed.output, manifest.outputs, "output"),
    ):
        expect(f"{what} names", [t.name for t in got_list], [s.name for s in specs])
        for got, spec in zip(got_list, specs):
            expect(f"{spec.name} data_type", pb.DataType.Name(got.data_type), _data_type(spec))
            expect(f"{spec.name} dims", list(got.dims), model.dims(spec))
    expect("dynamic_batching", parsed.HasField("dynamic_batching"), model.max_batch > 0)
    expect("preferred_batch_size", tuple(parsed.dynamic_batching.preferred_batch_size), model.preferred_batch)
    expect("instance count", [g.count for g in parsed.instance_group], [model.instances])
    accelerators = parsed.optimization.execution_accelerators.gpu_execution_accelerator
    expect(
        "cuda options",
        [(a.name, sorted(a.parameters.items())) for a in accelerators],
        [("cuda", sorted(model.cuda_options))] if model.cuda_options else [],
    )
    expect("cc_model_filenames", dict(parsed.cc_model_filenames), dict(model.cc_filenames))
    expect("default_model_filename", parsed.default_model_filename, "")
    if wrong:
        raise RuntimeError(f"trtforge wrote a Triton config that does not say what it meant: {'; '.join(wrong)}")
