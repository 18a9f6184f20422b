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

from trtforge import __version__
from trtforge._files import atomic_path, existing_file, sha256_bytes, sha256_file
from trtforge.config import TensorSpec
from trtforge.errors import TrtforgeError

FORMAT_VERSION = 1
_CPU_FLAGS_OF_INTEREST = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni",
                          "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "neon", "asimddp")


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
    return {"kind": "cpu", "name": name, "machine": platform.machine(),
            "cores": os.cpu_count(), "flags": [f for f in _CPU_FLAGS_OF_INTEREST if f in flags]}


def manifest_path(engine: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(engine)}.json")



def kind_of(path: str | os.PathLike[str]) -> str:
    """``engine`` (a manifest sits beside it), ``onnx`` (an ``.onnx`` file without one) or ``source``.

    The one rule every command uses to tell what it was given; a source is a framework model
    (SavedModel folder, Keras, TFLite, PyTorch...).
    """
    p = Path(path)
    if manifest_path(p).exists() and not p.is_dir():
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
        try:
            version = int(data["format_version"])  # type: ignore[call-overload]
            if version > FORMAT_VERSION:
                raise TrtforgeError(
                    f"{where} was written by a newer trtforge (manifest format {version}); upgrade trtforge"
                )
            return cls(
                backend=str(data["backend"]), backend_version=str(data["backend_version"]),
                precision=str(data["precision"]), device=dict(data["device"]),  # type: ignore[call-overload]
                inputs=[TensorSpec.from_json(t) for t in data["inputs"]],  # type: ignore[attr-defined]
                outputs=[TensorSpec.from_json(t) for t in data["outputs"]],  # type: ignore[attr-defined]
                build=dict(data["build"]),  # type: ignore[call-overload]
                calibration=data.get("calibration"),  # type: ignore[arg-type]
                source_sha256=str(data["source_sha256"]), engine_sha256=str(data["engine_sha256"]),
                trtforge_version=str(data["trtforge_version"]), created=str(data["created"]),
                format_version=version,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TrtforgeError(f"{where} is not a trtforge manifest (missing or bad field: {exc})") from None


def save(engine_path: str | os.PathLike[str], data: bytes, manifest: Manifest) -> Path:
    """Write the engine and then its manifest, each atomically."""
    target = Path(engine_path)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
        with atomic_path(manifest_path(target)) as mtmp:
            mtmp.write_text(json.dumps(manifest.to_json(), indent=2) + "\n")
    return target


def read_manifest(engine_path: str | os.PathLike[str]) -> Manifest:
    where = manifest_path(engine_path)
    if not where.exists():
        raise TrtforgeError(
            f"no manifest beside {engine_path} (expected {where}); trtforge loads engines it built, "
            "or rebuild this one with trtforge build"
        )
    try:
        data = json.loads(where.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TrtforgeError(f"{where} is not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise TrtforgeError(f"{where} is not a trtforge manifest")
    return Manifest.from_json(data, where)


def read_verified(engine_path: str | os.PathLike[str]) -> tuple[bytes, Manifest]:
    """The engine's bytes and manifest, after checking the bytes against the manifest's sha256."""
    path = existing_file(engine_path, "engine")
    manifest = read_manifest(path)
    data = path.read_bytes()
    digest = sha256_bytes(data)
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
