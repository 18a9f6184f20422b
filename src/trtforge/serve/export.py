"""``export triton``: an engine as a Triton model repository entry, written whole or not at all.

``REPO/NAME/config.pbtxt`` and ``REPO/NAME/1/model.onnx`` (ONNX Runtime engine, platform
``onnxruntime_onnx``), ``model.plan`` (TensorRT, ``tensorrt_plan``) or, with the Python backend,
``model.py`` + ``model.engine`` + its manifest.  The folder is staged beside its target and renamed
onto it once the config has been parsed with Triton's protobuf and checked against the manifest.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from trtforge._files import check_folder_output
from trtforge.engine import Manifest, manifest_path, read_verified
from trtforge.errors import TrtforgeError
from trtforge.serve.python_model import MODEL_PY
from trtforge.serve.triton_config import (
    InstanceKind,
    ServingBackend,
    TritonModel,
    check_config,
    config_text,
    plan_model,
    with_preferred_batch,
)

LOG = logging.getLogger("trtforge.serve")

__all__ = ["export_triton", "resolve_engine"]


def resolve_engine(source: str | os.PathLike[str]) -> tuple[Path, str]:
    """The engine file and a default model name: ``ENGINE`` itself, or ``DEPLOY_DIR/model.engine``."""
    p = Path(source)
    if p.is_dir():
        engine = p / "model.engine"
        if not engine.is_file():
            raise TrtforgeError(
                f"{p} is a folder without model.engine; give an engine file or a deploy output "
                "folder (trtforge deploy writes model.engine for the selected engine)"
            )
        return engine, p.resolve().name
    if not p.exists():
        raise TrtforgeError(f"engine not found: {p}")
    return p, p.name.split(".")[0]


def _preferred(engine: Path, model: TritonModel, asked: Sequence[int] | str) -> tuple[int, ...]:
    if asked != "auto":
        return tuple(int(b) for b in asked)
    if model.engine_batch is not None or not model.max_batch:
        raise TrtforgeError(
            "--preferred-batch auto sweeps the engine's batch, but this engine takes a fixed batch "
            f"({model.engine_batch}) or is exported without batching; give the sizes instead"
        )
    from trtforge.serve.sweep import batch_sweep, preferred_batches, sweep_table

    points = batch_sweep(engine, model.max_batch)
    chosen = preferred_batches(points)
    LOG.info("batch sweep of %s (in process, samples/s):\n%s", engine, sweep_table(points, chosen))
    return tuple(chosen)


def _write_version(
    folder: Path, engine: Path, data: bytes, manifest: Manifest, backend: ServingBackend, filename: str
) -> None:
    folder.mkdir()
    if backend is ServingBackend.PYTHON:
        (folder / "model.py").write_text(MODEL_PY)
        shutil.copyfile(engine, folder / "model.engine")
        shutil.copyfile(manifest_path(engine), folder / "model.engine.json")
    else:
        (folder / filename).write_bytes(data)


def export_triton(
    source: str | os.PathLike[str],
    repo: str | os.PathLike[str],
    name: str | None = None,
    backend: ServingBackend | str = ServingBackend.ONNXRUNTIME,
    max_batch: int | None = None,
    instances: int = 1,
    kind: InstanceKind | str | None = None,
    max_queue_delay_us: int = 100,
    preferred_batch: Sequence[int] | str = (),
) -> Path:
    """Write ``REPO/NAME`` for Triton from a trtforge engine (or a deploy folder); returns that folder.

    ``preferred_batch``: dynamic_batching's preferred sizes, or ``"auto"`` to take them from a batch
    sweep of the engine (:mod:`trtforge.serve.sweep`; the table is logged).  An existing
    ``REPO/NAME`` is replaced only once the new one is complete.
    """
    engine, default_name = resolve_engine(source)
    data, manifest = read_verified(engine)
    model = plan_model(manifest, name or default_name, backend, max_batch, instances, kind, max_queue_delay_us)
    model = with_preferred_batch(model, _preferred(engine, model, preferred_batch))
    text = config_text(model)
    check_config(text, model, manifest)
    repo = Path(repo)
    check_folder_output("-o", repo / model.name, [engine, manifest_path(engine)])
    try:
        repo.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrtforgeError(f"cannot create model repository {repo}: {exc.strerror}") from None
    target = repo / model.name
    stage = Path(tempfile.mkdtemp(prefix=f".{model.name}.", dir=repo))
    try:
        (stage / "config.pbtxt").write_text(text)
        _write_version(stage / "1", engine, data, manifest, model.backend, model.filename)
        os.chmod(stage, 0o755)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{model.name}.old.", dir=repo))
            os.replace(target, old / model.name)
        os.replace(stage, target)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return target
