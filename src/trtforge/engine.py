"""The built artifact: an engine file and the JSON manifest beside it (``X.engine.json``).

The manifest says what the engine is (backend, precision, IO), how and where it was
built, and the sha256 of the engine and of its source ONNX, which :func:`load` checks.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtforge import __version__
from trtforge._files import existing_file, has_sidecar, read_pair, sha256_file, write_pair
from trtforge.config import TensorSpec
from trtforge.errors import TrtforgeError

FORMAT_VERSION = 1
_CPU_FLAGS_OF_INTEREST = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_bf16",
    "amx_int8",
    "neon",
    "asimddp",
)


def cpu_facts() -> dict[str, object]:
    from trtforge.precision.quantize import cpu_flags

    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = cpu_flags()
    return {
        "kind": "cpu",
        "name": name,
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "flags": [f for f in _CPU_FLAGS_OF_INTEREST if f in flags],
    }


def manifest_path(engine: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(engine)}.json")


def kind_of(path: str | os.PathLike[str]) -> str:
    """``engine`` (a manifest sits beside it), ``onnx`` (an ``.onnx`` file without one) or ``source``.

    The one rule every command uses to tell what it was given; a source is a framework model
    (SavedModel folder, Keras, TFLite, PyTorch...).
    """
    p = Path(path)
    if not p.is_dir() and has_sidecar(p, manifest_path(p)):
        return "engine"
    return "onnx" if p.suffix.lower() == ".onnx" else "source"


@dataclass(frozen=True)
class Manifest:
    backend: str
    backend_version: str
    precision: str
    device: dict[str, object]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    build: dict[str, object]
    source_sha256: str
    engine_sha256: str
    calibration: dict[str, object] | None = None
    trtforge_version: str = __version__
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, object]:
        return {
            "format_version": self.format_version,
            "trtforge_version": self.trtforge_version,
            "created": self.created,
            "backend": self.backend,
            "backend_version": self.backend_version,
            "precision": self.precision,
            "device": self.device,
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "build": self.build,
            "calibration": self.calibration,
            "source_sha256": self.source_sha256,
            "engine_sha256": self.engine_sha256,
        }

    @classmethod
    def from_json(cls, data: dict[str, object], where: Path) -> Manifest:
        """A manifest from its JSON, each field checked against the schema (one error naming the field)."""
        version = _field(data, "format_version", int, where)
        if version > FORMAT_VERSION:
            raise TrtforgeError(
                f"{where} was written by a newer trtforge (manifest format {version}); upgrade trtforge"
            )
        text = {k: _field(data, k, str, where) for k in _TEXT_FIELDS}
        calibration = data.get("calibration")
        if calibration is not None and not isinstance(calibration, dict):
            raise _bad_field(where, "calibration", "an object or null")
        return cls(
            device=_field(data, "device", dict, where),
            build=_field(data, "build", dict, where),
            inputs=_tensors(data, "inputs", where),
            outputs=_tensors(data, "outputs", where),
            calibration=calibration,
            format_version=version,
            **text,
        )


_TEXT_FIELDS = (
    "backend",
    "backend_version",
    "precision",
    "source_sha256",
    "engine_sha256",
    "trtforge_version",
    "created",
)
_TYPE_WORDS = {int: "an integer", str: "a string", dict: "an object", list: "a list"}


def _bad_field(where: Path, name: str, expected: str) -> TrtforgeError:
    return TrtforgeError(
        f"{where} is not a valid trtforge manifest: field {name!r} must be {expected}; "
        "rebuild the engine with trtforge build"
    )


def _field(data: dict[str, object], name: str, kind: type, where: Path) -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _bad_field(where, name, _TYPE_WORDS[kind])
    return value


def _tensors(data: dict[str, object], name: str, where: Path) -> list[TensorSpec]:
    specs = []
    for i, item in enumerate(_field(data, name, list, where)):
        at = f"{name}[{i}]"
        if not isinstance(item, dict):
            raise _bad_field(where, at, "an object with name, dtype and shape")
        tensor_name, dtype, shape = (
            _field(item, "name", str, where),
            _field(item, "dtype", str, where),
            item.get("shape"),
        )
        if not isinstance(shape, list) or not all(
            (isinstance(d, int) and not isinstance(d, bool) and d >= -1) or isinstance(d, str) for d in shape
        ):
            raise _bad_field(where, f"{at}.shape", "a list of dimensions (integers or names)")
        specs.append(TensorSpec(tensor_name, dtype, tuple(shape)))
    return specs


def save(engine_path: str | os.PathLike[str], data: bytes, manifest: Manifest) -> Path:
    """Write the engine and its manifest as one unit (see :func:`trtforge._files.write_pair`)."""
    target = Path(engine_path)
    write_pair(target, data, manifest_path(target), json.dumps(manifest.to_json(), indent=2) + "\n")
    return target


def parse_manifest(raw: bytes, where: Path) -> Manifest:
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise TrtforgeError(f"{where} is not a trtforge manifest (not UTF-8 text); rebuild the engine") from None
    except json.JSONDecodeError as exc:
        raise TrtforgeError(f"{where} is not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise TrtforgeError(f"{where} is not a trtforge manifest (expected a JSON object)")
    return Manifest.from_json(data, where)


def read_manifest(engine_path: str | os.PathLike[str]) -> Manifest:
    return read_verified(engine_path)[1]


def read_verified(engine_path: str | os.PathLike[str]) -> tuple[bytes, Manifest]:
    """The engine's bytes and manifest, after checking the bytes against the manifest's sha256."""
    path = existing_file(engine_path, "engine")
    where = manifest_path(path)
    try:
        data, digest, raw = read_pair(path, where)
    except OSError as exc:
        raise TrtforgeError(f"cannot read engine {path}: {exc.strerror or exc}") from None
    if raw is None:
        raise TrtforgeError(
            f"no manifest beside {engine_path} (expected {where}); trtforge loads engines it built, "
            "or rebuild this one with trtforge build"
        )
    manifest = parse_manifest(raw, where)
    if digest != manifest.engine_sha256:
        raise TrtforgeError(
            f"{path} does not match its manifest (sha256 {digest[:12]}..., manifest says "
            f"{manifest.engine_sha256[:12]}...); the file was changed or replaced: rebuild it"
        )
    return data, manifest


def source_digest(path: str | os.PathLike[str]) -> str:
    return sha256_file(path)


def describe(path: str | os.PathLike[str]) -> dict[str, object]:
    """An engine's manifest, plus what its backend can tell when it has ``describe(data) -> dict``."""
    from trtforge.backends.base import Describable, get_backend

    data, manifest = read_verified(path)
    details: dict[str, object] = {"manifest": manifest.to_json()}
    backend = get_backend(manifest.backend)
    if isinstance(backend, Describable):
        try:
            details["backend"] = backend.describe(data)
        except TrtforgeError as exc:  # e.g. the backend's package is not installed here
            details["backend"] = {"note": str(exc)}
    return details
